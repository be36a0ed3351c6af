"""The two sides from which an account reads the audit trail.

Every event is stored once, as one link of the chain. An account reads it from one of two sides:

- `Scope.CALLER` (the default): the requests of the account's own principals, on any key (`caller_account`);
- `Scope.KEY_OWNER`: the requests of other accounts' principals (or of the operator acting in another account) on
  the account's keys, allowed or refused, as CloudTrail gives a key's owner a copy of a cross-account request.

The two are disjoint for a reader (the first needs the caller's account to be the reader's, the second needs it to
be another), so an event is seen through at most one of them, and shaped for that side by
`kmsconsole.audit.shown`.

The key owner's side is found through `AuditEvent.key_owner_account`, a column the recorder fills from the chained
`key_arn` and `caller_account` (`key_owner_account()`) and a partial index covers. The column is not chained (like
`AuditContextEntry`, it is derived from chained fields and can be rebuilt: `manage.py audit reindex-key-owners`),
so a reader never trusts it alone: the key owner's query also requires the chained `key_arn` to name one of the
reader's keys and the chained `caller_account` to be another account (`scope_events`, `scope_of`). A value edited
in the database can therefore hide an event from its key owner until the column is rebuilt, but never show it to
an account that does not own the key.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet

from keys.models import key_arn
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core import errors

# A key ARN as the service writes it: arn:<partition>:kms:<region>:<account>:key/<id>.
_KEY_ARN = re.compile(r"^arn:[\w-]+:kms:[\w-]*:(?P<account>[0-9]{12}):key/", re.ASCII)
_REINDEX_BATCH = 5000


class Scope(StrEnum):
    CALLER = "caller"
    KEY_OWNER = "key-owner"

    @property
    def label(self) -> str:
        return SCOPE_LABELS[self]


SCOPE_LABELS = {
    Scope.CALLER: "Requests by this account",
    Scope.KEY_OWNER: "Requests by other accounts on this account's keys",
}
DEFAULT_SCOPE = Scope.CALLER


def parse_scope(value: str | None) -> Scope:
    """The scope a request names ("" or None: the default). Raises ValueError for anything else."""
    if not value:
        return DEFAULT_SCOPE
    return Scope(value)


def checked_scope(value: str | None) -> Scope:
    """`parse_scope` inside an operation: anything else fails the read with ValidationException, so the refused
    read is audited (as the REST API's serializer does, kmsconsole.api.serializers.AuditScopeQuery)."""
    try:
        return parse_scope(value)
    except ValueError:
        named = value if len(value or "") <= 64 else f"{(value or '')[:64]}..."
        choices = ", ".join(scope.value for scope in Scope)
        raise errors.ValidationException(f"scope must be one of {choices}, not {named!r}.") from None


def key_owner_account(*, key_arn: str, caller_account: str) -> str:
    """What the recorder stores as an event's `key_owner_account`: the account of the event's key when that is not
    the caller's account, else "" (no key, or the caller's own key)."""
    match = _KEY_ARN.match(key_arn)
    if match is None or match["account"] == caller_account:
        return ""
    return match["account"]


def own_keys_prefix(account_id: str) -> str:
    """The beginning every key ARN of the account shares (arn:<partition>:kms:<region>:<account>:key/)."""
    return key_arn(account_id, "")


def _key_owner_side(account_id: str) -> Q:
    # key_owner_account finds the rows (its partial index); the chained key_arn and caller_account decide.
    return (
        Q(key_owner_account=account_id)
        & Q(key_arn__startswith=own_keys_prefix(account_id))
        & ~Q(caller_account=account_id)
    )


def scope_filter(account_id: str, scope: Scope) -> Q:
    """The events a reader of `account_id` sees through `scope`."""
    if scope is Scope.KEY_OWNER:
        return _key_owner_side(account_id)
    return Q(caller_account=account_id)


def scope_events(account_id: str, scope: Scope) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(scope_filter(account_id, scope))


def own_key_events(account_id: str) -> QuerySet[AuditEvent]:
    """Every event on the account's keys, whoever the caller (its own principals' through one scope, other
    accounts' through the other), by the chained key_arn."""
    return AuditEvent.objects.filter(key_arn__startswith=own_keys_prefix(account_id))


def either_scope(account_id: str) -> Q:
    """The events a reader of `account_id` sees through one scope or the other (an event's page)."""
    return scope_filter(account_id, Scope.CALLER) | scope_filter(account_id, Scope.KEY_OWNER)


def scope_of(event: AuditEvent, account_id: str) -> Scope | None:
    """The scope through which a reader of `account_id` sees `event` (None: neither), as `scope_filter` decides."""
    if event.caller_account == account_id:
        return Scope.CALLER
    if event.key_owner_account == account_id and event.key_arn.startswith(own_keys_prefix(account_id)):
        return Scope.KEY_OWNER
    return None


def reindex_key_owners(events: Any = AuditEvent, *, batch: int = _REINDEX_BATCH) -> int:
    """Set every event's `key_owner_account` from its chained fields where it differs (events written before the
    column existed, or by a process running older code; a value edited in the database); returns how many
    changed. Walks the trail in primary-key order, one short transaction per batch, so writers are never held up
    for long. `events`: the model (a migration passes its historical one)."""
    changed = 0
    last_pk = 0
    while True:
        with transaction.atomic():
            rows = list(
                events.objects.filter(pk__gt=last_pk)
                .order_by("pk")
                .values_list("pk", "key_arn", "caller_account", "key_owner_account")[:batch]
            )
            if not rows:
                return changed
            wrong: dict[str, list[int]] = {}
            for pk, arn, caller_account, stored in rows:
                owner = key_owner_account(key_arn=arn, caller_account=caller_account)
                if owner != stored:
                    wrong.setdefault(owner, []).append(pk)
            for owner, pks in wrong.items():
                changed += events.objects.filter(pk__in=pks).update(key_owner_account=owner)
            last_pk = rows[-1][0]
