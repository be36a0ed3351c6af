"""The encryption-context index of the audit trail: each key/value pair of a request's encryption contexts as a
row of AuditContextEntry, so "every request with tenant=42" is an index lookup, not a read of every event's JSON.

The audit writer (kmsconsole.audit.writer) inserts the pairs with the event, in the same statement or
transaction, so they commit (or roll back) with it; `context_pairs` is what it indexes. It costs nothing for a
request without an encryption context. `reindex()` fills the table for events written before the index existed
(`manage.py audit reindex-context`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from kmsconsole.audit.models import AuditContextEntry, AuditEvent

# Where a request carries encryption contexts (KMS parameter names): the cryptographic operations' own,
# ReEncrypt's two, and a grant's constraints.
CONTEXT_PATHS: tuple[tuple[str, ...], ...] = (
    ("EncryptionContext",),
    ("SourceEncryptionContext",),
    ("DestinationEncryptionContext",),
    ("Constraints", "EncryptionContextSubset"),
    ("Constraints", "EncryptionContextEquals"),
)
KEY_CHARS = AuditContextEntry._meta.get_field("key").max_length or 128
VALUE_CHARS = AuditContextEntry._meta.get_field("value").max_length or 256
_BATCH = 2000


def _at(params: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = params
    for name in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def context_pairs(params: Mapping[str, Any] | None) -> set[tuple[str, str]]:
    """The (key, value) pairs of every encryption context in a request's (recorded) parameters, cut to the
    index's lengths. Values that are not text (a malformed request that was refused) are left out."""
    pairs: set[tuple[str, str]] = set()
    if not isinstance(params, Mapping):
        return pairs
    for path in CONTEXT_PATHS:
        context = _at(params, path)
        if not isinstance(context, Mapping):
            continue
        for key, value in context.items():
            if isinstance(key, str) and isinstance(value, str):
                pairs.add((key[:KEY_CHARS], value[:VALUE_CHARS]))
    return pairs


def _unindexed() -> Iterator[tuple[int, Any]]:
    rows = (
        AuditEvent.objects.filter(request_parameters__isnull=False, context_entries__isnull=True)
        .order_by("seq")
        .values_list("pk", "request_parameters")
    )
    return rows.iterator(chunk_size=_BATCH)


def reindex() -> int:
    """Index every event that has encryption-context pairs but no entries yet; returns how many events."""
    indexed = 0
    batch: list[AuditContextEntry] = []
    for pk, params in _unindexed():
        pairs = context_pairs(params)
        if not pairs:
            continue
        indexed += 1
        batch.extend(AuditContextEntry(event_id=pk, key=key, value=value) for key, value in sorted(pairs))
        if len(batch) >= _BATCH:
            AuditContextEntry.objects.bulk_create(batch)
            batch = []
    AuditContextEntry.objects.bulk_create(batch)
    return indexed
