"""Scheduled key deletion: ScheduleKeyDeletion, CancelKeyDeletion, and the worker's destruction of due keys.

The deletion date is a column; a beat sweep picks the due keys and destroys each in its own transaction,
claimed with a conditional DELETE so that two workers racing over the same key destroy it once. Destruction is
crypto-shredding: every sealed material version is deleted with the key, so nothing left can decrypt its
ciphertext; a tombstone (DeletedKey) keeps what the audit trail needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from grants.models import Grant
from keys.models import Alias, DeletedKey, Key, KeyState, key_arn
from keys.services.access import key_for
from kmsconsole.audit.recorder import NothingToDo
from kmsconsole.core import clock, errors
from kmsconsole.core.context import RequestMeta, operator_caller
from kmsconsole.jobs.models import JobRun
from kmsconsole.jobs.runs import job_run
from kmsconsole.operations import OperationContext, perform
from policies.authorization import authorize

PENDING_WINDOW_MIN_DAYS = 7
PENDING_WINDOW_MAX_DAYS = 30
PENDING_WINDOW_DEFAULT_DAYS = 30


def key_schedule_deletion(*, ctx: OperationContext, key_id: str, pending_window_days: int | None) -> Key:
    """Put the key in PendingDeletion; the workers destroy it once the window has passed."""
    days = PENDING_WINDOW_DEFAULT_DAYS if pending_window_days is None else pending_window_days
    key = key_for(
        ctx, key_id, lock=True, condition_values={"kms:ScheduleKeyDeletionPendingWindowInDays": days}
    )
    errors.check_value_range(
        "pendingWindowInDays", days, minimum=PENDING_WINDOW_MIN_DAYS, maximum=PENDING_WINDOW_MAX_DAYS
    )
    now = timezone.now()
    key.state = KeyState.PENDING_DELETION
    key.pending_window_days = days
    key.deletion_date = now + clock.days(days)
    key.deletion_scheduled_at = now
    key.deletion_scheduled_by = ctx.caller.arn
    key.save(
        update_fields=[
            "state", "pending_window_days", "deletion_date", "deletion_scheduled_at", "deletion_scheduled_by",
        ]
    )  # fmt: skip
    return key


def key_cancel_deletion(*, ctx: OperationContext, key_id: str) -> Key:
    """Take the key out of PendingDeletion. As on AWS it comes back Disabled, not Enabled."""
    key = key_for(ctx, key_id, lock=True)
    key.state = KeyState.DISABLED
    key.deletion_date = None
    key.pending_window_days = None
    key.deletion_scheduled_at = None
    key.deletion_scheduled_by = ""
    key.save(
        update_fields=[
            "state", "deletion_date", "pending_window_days", "deletion_scheduled_at", "deletion_scheduled_by",
        ]
    )  # fmt: skip
    return key


@dataclass(frozen=True)
class Destroyed:
    """A destroyed key's tombstone, and what went with the key (its DeleteKey event's response elements)."""

    tombstone: DeletedKey
    removed: dict[str, Any]


def _destroy(ctx: OperationContext, key_pk: int, now: datetime) -> Destroyed:
    # The key's aliases first, in primary key order, then the key (the lock order of `keys.services.aliases`):
    # the deletion below deletes them with it, and UpdateAlias and DeleteAlias lock an alias's row, then its key.
    # Taking the key first, then meeting a held alias row in the cascade, deadlocked with them. An alias moved
    # away meanwhile is skipped (PostgreSQL re-checks the condition once the row is free); none can be moved to
    # or created for a key pending deletion.
    alias_rows = list(
        Alias.objects.select_for_update(of=("self",))
        .filter(key_id=key_pk)
        .order_by("pk")
        .values_list("pk", "name")
    )
    # The claim: lock the row only if it is still pending deletion and due. A second worker waits on the lock,
    # then finds the row gone; a CancelKeyDeletion (which locks the row too) is ordered before or after, never
    # in between.
    key = (
        Key.objects.select_for_update(of=("self",))
        .select_related("account")
        .filter(pk=key_pk, state=KeyState.PENDING_DELETION, deletion_date__lte=now)
        .first()
    )
    if key is None:
        raise NothingToDo()
    ctx.audit.key_arn = key.arn
    key.check_row()  # a deletion date moved in the database does not destroy a key
    authorize(ctx, resource=key.arn)
    # Its grants too, in primary key order, before the first write: deleting the key's rows bumps its generation
    # row (a trigger), and a RevokeGrant or RetireGrant locks its grant's row, then bumps that row, in one
    # statement. Deleting the material versions first (as the cascade does) and then meeting a grant row so held
    # was a deadlock (`policies.principal_locks`: row locks, then generation rows).
    grants = list(
        Grant.objects.select_for_update().filter(key=key).order_by("pk").values_list("pk", flat=True)
    )
    material_ids = list(key.materials.order_by("created_at", "pk").values_list("material_id", flat=True))
    # What goes with the key, for its DeleteKey event: nothing secret (a KeyMaterialId is public, DescribeKey
    # answers it; the sealed material is never read here).
    destroyed = {
        "Aliases": sorted(name for _, name in alias_rows),
        "GrantsDeleted": len(grants),
        "TagsDeleted": key.tags.count(),
        "PolicyVersionsDeleted": key.policy_versions.count(),
        "KeyMaterialVersionsDestroyed": len(material_ids),
        "KeyMaterialIds": material_ids,
    }
    tombstone = DeletedKey(
        key_id=key.key_id,
        arn=key.arn,
        account_id=key.account.account_id,
        key_spec=key.key_spec,
        created_at=key.created_at,
        deletion_scheduled_at=key.deletion_scheduled_at,
        deletion_scheduled_by=key.deletion_scheduled_by,
        deletion_date=key.deletion_date or now,
        deleted_at=now,
        material_versions_destroyed=len(material_ids),
    )
    # Deleting the key deletes its sealed material versions, aliases, tags, grants and policy history with it.
    key.delete()
    tombstone.save()
    return Destroyed(tombstone, destroyed)


def key_destroy(
    *, key_pk: int, account_id: str, key_arn: str, now: datetime | None = None
) -> DeletedKey | None:
    """Destroy one due key, audited as AWS's DeleteKey service event (with what went with the key: its aliases,
    the counts of its grants, tags and policy versions, its material versions' ids); None when there was nothing
    to do."""
    moment = now or timezone.now()
    holder: list[DeletedKey] = []

    def service(ctx: OperationContext) -> dict[str, Any]:
        destroyed = _destroy(ctx, key_pk, moment)
        holder.append(destroyed.tombstone)
        # The event names what went with the key: the aliases by name, the rest by count, the material versions
        # by id too (never the material).
        return {"KeyId": destroyed.tombstone.arn, **destroyed.removed}

    try:
        perform(
            "DeleteKey",
            caller=operator_caller(account_id, "deletion-sweep"),
            meta=RequestMeta(interface="worker", user_agent="kmsconsole deletion sweep"),
            params={"KeyId": key_arn},
            service=service,
        )
    except NothingToDo:
        return None
    return holder[0]


def due_keys(now: datetime, limit: int = 500) -> list[tuple[int, str, str]]:
    """Keys whose deletion date has passed: (pk, account id, key ARN), oldest first."""
    rows = (
        Key.objects.filter(state=KeyState.PENDING_DELETION, deletion_date__lte=now)
        .order_by("deletion_date", "pk")
        .values_list("pk", "account__account_id", "key_id")[:limit]
    )
    return [(pk, account_id, key_arn(account_id, str(key_id))) for pk, account_id, key_id in rows]


DELETION_SWEEP_JOB = "destroy-due-keys"


def keys_destroy_due(now: datetime | None = None) -> JobRun:
    """The beat sweep: destroy every key whose deletion date has passed. Safe to run concurrently and repeatedly
    (each key is destroyed once). Leaves a JobRun: how many keys this run destroyed, and which failed and why."""
    with job_run(DELETION_SWEEP_JOB, counts_by_account=True) as run:
        moment = now or timezone.now()
        for pk, account_id, arn in due_keys(moment):
            try:
                if key_destroy(key_pk=pk, account_id=account_id, key_arn=arn, now=moment) is not None:
                    run.count(account_id)
            except errors.KmsError as error:
                run.fail(f"{arn}: {error}", account_id=account_id)
    return run.run
