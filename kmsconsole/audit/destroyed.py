"""Keys of the reader's account destroyed since: what the overview, the notable panel and a key's page say about a
key whose deletion window ended, instead of warning about it as pending deletion or answering a bare "not found".

Only the reader's own keys are answered (a tombstone is its key owner's: another account's key is never said to
be destroyed), and only to a reader who may read the trail, whose events already say so (the worker's DeleteKey).
The DeleteKey event is linked only where its page would open for the reader (`kmsconsole.api.reads.
linkable_events`): each function is asked inside the reading page's own operation (`ctx`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from keys.models import DeletedKey
from kmsconsole.api.reads import linkable_events
from kmsconsole.audit.models import AuditEvent
from kmsconsole.operations import OperationContext


@dataclass(frozen=True)
class Destroyed:
    key_arn: str
    deleted_at: datetime
    # The DeleteKey event that destroyed it (the deletion sweep's); None if the trail has none (retention) or its
    # page would not open for the reader.
    event_id: uuid.UUID | None


def destroyed_keys(ctx: OperationContext, key_arns: Iterable[str]) -> dict[str, Destroyed]:
    """The keys of the reader's account among `key_arns` that have been destroyed, by ARN, with their DeleteKey
    events where the reader may open them."""
    account_id = ctx.caller.account_id
    own = {arn for arn in key_arns if f":{account_id}:key/" in arn}
    if not own:
        return {}
    tombstones = list(DeletedKey.objects.filter(account_id=account_id, arn__in=own))
    if not tombstones:
        return {}
    deleting = dict(
        linkable_events(ctx)
        .filter(
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


def destroyed_key(ctx: OperationContext, key_id: str) -> Destroyed | None:
    """The key `key_id` (a key id as typed in a URL) of the reader's account, if it has been destroyed."""
    try:
        parsed = uuid.UUID(key_id)
    except ValueError:
        return None
    tombstone = DeletedKey.objects.filter(account_id=ctx.caller.account_id, key_id=parsed).first()
    if tombstone is None:
        return None
    return destroyed_keys(ctx, [tombstone.arn]).get(tombstone.arn)
