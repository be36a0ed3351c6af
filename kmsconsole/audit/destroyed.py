"""Keys of the reader's account destroyed since: what the overview, the notable panel and a key's page say about a
key whose deletion window ended, instead of warning about it as pending deletion or answering a bare "not found".

Only the reader's own keys are answered (a tombstone is its key owner's: another account's key is never said to
be destroyed), and only to a reader who may read the trail, whose events already say so (the worker's DeleteKey).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from keys.models import DeletedKey
from kmsconsole.audit.models import AuditEvent


@dataclass(frozen=True)
class Destroyed:
    key_arn: str
    deleted_at: datetime
    # The DeleteKey event that destroyed it (the deletion sweep's), or None if the trail has none (retention).
    event_id: uuid.UUID | None


def destroyed_keys(account_id: str, key_arns: Iterable[str]) -> dict[str, Destroyed]:
    """The keys of `account_id` among `key_arns` that have been destroyed, by ARN, with their DeleteKey events."""
    own = {arn for arn in key_arns if f":{account_id}:key/" in arn}
    if not own:
        return {}
    tombstones = list(DeletedKey.objects.filter(account_id=account_id, arn__in=own))
    if not tombstones:
        return {}
    deleting = dict(
        AuditEvent.objects.filter(
            operation="DeleteKey",
            decision=AuditEvent.Decision.ALLOWED,
            key_arn__in=[tombstone.arn for tombstone in tombstones],
        )
        .order_by("time", "seq")
        .values_list("key_arn", "event_id")
    )
    return {
        tombstone.arn: Destroyed(tombstone.arn, tombstone.deleted_at, deleting.get(tombstone.arn))
        for tombstone in tombstones
    }


def destroyed_key(account_id: str, key_id: str) -> Destroyed | None:
    """The key `key_id` (a key id as typed in a URL) of `account_id`, if it has been destroyed."""
    try:
        parsed = uuid.UUID(key_id)
    except ValueError:
        return None
    tombstone = DeletedKey.objects.filter(account_id=account_id, key_id=parsed).first()
    if tombstone is None:
        return None
    return destroyed_keys(account_id, [tombstone.arn]).get(tombstone.arn)
