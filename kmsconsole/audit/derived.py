"""An event's unchained columns, derived from its chained fields so the key owner's side of the trail has indexes.

- `key_owner_account` (kmsconsole.audit.scope.key_owner_account): the account that owns a key of the event when
  the caller is of another account; it finds the key owner's side.
- `decided_by_caller_policy` (kmsconsole.audit.shown.hidden_from_key_owner): on the key owner's side, whether
  `decided_by` is what the key's owner sees as "an identity policy of the caller's account"; it finds that label for
  the "decided by" filter without a regular expression on every event of the key owner's side.

The recorder sets both when it writes an event (both writer paths store them), the migration that added them filled
the events before (audit.0008, with its own copy of the rules), `reindex()` (`manage.py audit reindex-key-owners`)
sets them again where they differ, and the verification walk reports a difference (`mismatched`,
kmsconsole.audit.verification). Neither is chained, so no reader trusts either alone: each query that uses one also
tests the chained fields it is derived from (kmsconsole.audit.scope, kmsconsole.audit.shown). An edited value can
hide an event from its key's owner (or from the label's filter) until the columns are rebuilt; it never shows an
event to an account that owns none of its keys, nor matches a label the chained field does not have.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from kmsconsole.audit.expressions import RE_ENCRYPT, SOURCE_KEY_ELEMENT, ReEncryptSource
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.scope import event_key_owner
from kmsconsole.audit.shown import hidden_from_key_owner

DERIVED_FIELDS = ("key_owner_account", "decided_by_caller_policy")
# What the derivation reads: chained fields all.
SOURCE_FIELDS = ("key_arn", "caller_account", "operation", "response_elements", "decided_by")
_REINDEX_BATCH = 5000


def derived_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The derived columns of an event, from its chained fields (the recorder's values, a walked row)."""
    owner = event_key_owner(values)
    # Only on the key owner's side, the only events its index covers: no other event is written (or backfilled)
    # differently for it.
    policy = bool(owner) and hidden_from_key_owner(values["decided_by"])
    return {"key_owner_account": owner, "decided_by_caller_policy": policy}


def mismatched(row: Mapping[str, Any]) -> tuple[str, ...]:
    """The derived columns of a stored row (with `SOURCE_FIELDS` and `DERIVED_FIELDS`) that differ from what its
    chained fields give."""
    expected = derived_values(row)
    return tuple(name for name in DERIVED_FIELDS if row[name] != expected[name])


def reindex(*, batch: int = _REINDEX_BATCH) -> int:
    """Set every event's derived columns from its chained fields where they differ (events written by a process
    running older code; a value edited in the database); returns how many events changed. Walks the trail in
    primary-key order, one short transaction per batch, so writers are never held up for long. Only an allowed
    ReEncrypt's `SourceKeyId` is read of the response elements."""
    changed = 0
    last_pk = 0
    while True:
        with transaction.atomic():
            rows = list(
                AuditEvent.objects.filter(pk__gt=last_pk)
                .order_by("pk")
                .annotate(source=ReEncryptSource())
                .values(
                    "pk", "key_arn", "caller_account", "operation", "decided_by", "source", *DERIVED_FIELDS
                )[:batch]
            )
            if not rows:
                return changed
            wrong: dict[tuple[Any, ...], list[int]] = {}
            for row in rows:
                source = row.pop("source")
                row["response_elements"] = (
                    {SOURCE_KEY_ELEMENT: source} if row["operation"] == RE_ENCRYPT else None
                )
                expected = derived_values(row)
                if any(row[name] != expected[name] for name in DERIVED_FIELDS):
                    wrong.setdefault(tuple(expected[name] for name in DERIVED_FIELDS), []).append(row["pk"])
            for columns, pks in wrong.items():
                values = dict(zip(DERIVED_FIELDS, columns, strict=True))
                changed += AuditEvent.objects.filter(pk__in=pks).update(**values)
            last_pk = rows[-1]["pk"]
