"""Rotation: EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand, ListKeyRotations,
and the automatic rotation the beat sweep performs (kms-spec §9.3).

Rotating adds a key material version and makes it current; old versions stay, so old ciphertext still decrypts.
Only symmetric encryption keys of origin AWS_KMS rotate. On an asymmetric or HMAC key, Enable/DisableKeyRotation,
RotateKeyOnDemand and ListKeyRotations are UnsupportedOperationException with an empty message, which is what AWS
sends where it is on record (RotateKeyOnDemand on an RSA key, recorded from AWS in LocalStack's snapshot tests;
EnableKeyRotation, in terraform-aws-modules/terraform-aws-kms#20; the other two answer alike), while
GetKeyRotationStatus answers KeyRotationEnabled false, as AWS does (the AWS provider for Terraform reads it for
every key of origin AWS_KMS, asymmetric and HMAC ones included, and fails on any error but NotFound). There are
no imported keys (origin EXTERNAL) here, as CreateKey refuses that origin; were there one, this service would
refuse it in all five with `<arn> origin is EXTERNAL which is not valid for this operation.`: this service's
choice, not AWS's, which rotates imported symmetric keys on demand.

Automatic rotation is driven by `Key.next_rotation_at`, the database being the source of truth: the beat sweep
(`key_rotate_due`) picks Enabled keys whose date has come and claims each with a conditional UPDATE that moves
the date forward, so when two sweeps race only one rotates a key. The claim and the rotation commit together;
a rotation that fails gives the claim back, so the next sweep tries again. Disabled and pending-deletion keys
are not rotated: when an overdue key is enabled again, the next sweep rotates it at once and the schedule
restarts from that day (AWS: "rotates it immediately" once overdue). Each rotation the sweep makes is the
`RotateKey` service event, run through `perform()` as the operator over the "worker" interface, so it is
audited like any request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from keys.crypto import KeySpec
from keys.materials import create_material
from keys.models import Key, KeyMaterial, KeyState
from keys.services.access import expect_operation, key_for
from kmsconsole.core import clock, errors
from kmsconsole.core.context import RequestMeta, operator_caller
from kmsconsole.core.pagination import list_limit, page
from kmsconsole.jobs.models import JobRun
from kmsconsole.jobs.runs import job_run
from kmsconsole.operations import OperationContext, perform

# EnableKeyRotation's RotationPeriodInDays.
ROTATION_PERIOD_MIN_DAYS = 90
ROTATION_PERIOD_MAX_DAYS = 2560
ROTATION_PERIOD_DEFAULT_DAYS = 365
# RotateKeyOnDemand: at most this many per key, ever (kms-spec §12.1, not adjustable).
ON_DEMAND_ROTATIONS_PER_KEY = 25
# RotateKeyOnDemand is refused while an automatic rotation is due this soon (or overdue, i.e. in progress).
ON_DEMAND_CONFLICT_WINDOW = timedelta(minutes=20)
# ListKeyRotations.
LIST_ROTATIONS_DEFAULT_LIMIT = 100
LIST_ROTATIONS_MAX_LIMIT = 1000
ROTATIONS_ONLY = "ROTATIONS_ONLY"
ALL_KEY_MATERIAL = "ALL_KEY_MATERIAL"
INCLUDE_KEY_MATERIAL = (ALL_KEY_MATERIAL, ROTATIONS_ONLY)
# The beat sweep: its name in the job-run records, how many due keys one run handles at most (the rest wait a
# minute for the next run), and the operator name it acts under.
ROTATION_SWEEP_JOB = "rotate-due-keys"
ROTATION_SWEEP_BATCH = 500
ROTATION_WORKER = "rotation-sweep"
# The operation the sweep performs: an AWS service event, not an API (kms-spec §11).
ROTATE_KEY_EVENT = "RotateKey"

ON_DEMAND_LIMIT_MESSAGE = (
    "The on-demand rotations limit has been reached for the given keyId. "
    "No more on-demand rotations can be performed for this key: {arn}"
)


@dataclass(frozen=True)
class RotationStatus:
    """What GetKeyRotationStatus reports. `enabled` is computed: false while the key is pending deletion, though
    the stored setting is kept (and reported again once the deletion is cancelled)."""

    key: Key
    enabled: bool
    period_days: int | None
    next_rotation_at: datetime | None


def _check_origin(key: Key) -> None:
    if key.origin == "EXTERNAL":
        raise errors.UnsupportedOperationException(
            f"{key.arn} origin is EXTERNAL which is not valid for this operation."
        )


def _check_rotatable(key: Key) -> None:
    _check_origin(key)
    if not key.rotatable:
        raise errors.UnsupportedOperationException("")


def _check_include(value: str) -> None:
    if value not in INCLUDE_KEY_MATERIAL:
        raise errors.ValidationException(
            f"1 validation error detected: Value '{value[:64]}' at 'includeKeyMaterial' failed to "
            f"satisfy constraint: Member must satisfy enum value set: [{', '.join(INCLUDE_KEY_MATERIAL)}]"
        )


def _check_period(days: int) -> None:
    errors.check_value_range(
        "rotationPeriodInDays", days, minimum=ROTATION_PERIOD_MIN_DAYS, maximum=ROTATION_PERIOD_MAX_DAYS
    )


def key_rotation_enable(
    *, ctx: OperationContext, key_id: str, rotation_period_days: int | None = None
) -> Key:
    """Turn on automatic rotation every `rotation_period_days` (default 365), or change the period.

    kms:EnableKeyRotation (key policy) with kms:RotationPeriodInDays = the period (default-filled). The key must
    be Enabled. First enabled: the first rotation is one period from now. A new period on an enabled key keeps
    the schedule's starting point (the last rotation or the enable date): the next date becomes that point plus
    the new period, or now if that has passed.
    """
    expect_operation(ctx, "EnableKeyRotation")
    period = ROTATION_PERIOD_DEFAULT_DAYS if rotation_period_days is None else rotation_period_days
    _check_period(period)
    key = key_for(ctx, key_id, lock=True, condition_values={"kms:RotationPeriodInDays": period})
    _check_rotatable(key)
    now = timezone.now()
    if key.rotation_enabled and key.next_rotation_at is not None and key.rotation_period_days:
        if key.rotation_period_days == period:
            return key
        started = key.next_rotation_at - clock.days(key.rotation_period_days)
        key.next_rotation_at = max(started + clock.days(period), now)
    else:
        key.next_rotation_at = now + clock.days(period)
    key.rotation_enabled = True
    key.rotation_period_days = period
    key.save(update_fields=["rotation_enabled", "rotation_period_days", "next_rotation_at"])
    return key


def key_rotation_disable(*, ctx: OperationContext, key_id: str) -> Key:
    """Turn off automatic rotation. kms:DisableKeyRotation (key policy); the key must be Enabled."""
    expect_operation(ctx, "DisableKeyRotation")
    key = key_for(ctx, key_id, lock=True)
    _check_rotatable(key)
    if key.rotation_enabled or key.next_rotation_at is not None:
        key.rotation_enabled = False
        key.rotation_period_days = None
        key.next_rotation_at = None
        key.save(update_fields=["rotation_enabled", "rotation_period_days", "next_rotation_at"])
    return key


def key_rotation_status(*, ctx: OperationContext, key_id: str) -> RotationStatus:
    """Whether automatic rotation is on, its period and next date, in any key state (cross-account by key ARN).
    kms:GetKeyRotationStatus (key policy). Always off for an asymmetric or HMAC key (see the module's note)."""
    return rotation_status_of(key_for(ctx, key_id))


def rotation_status_of(key: Key) -> RotationStatus:
    """GetKeyRotationStatus's answer on `key`, once the caller is authorized: what every interface shows as a key's
    rotation status (the REST key list too), so none can disagree with it. Off for an asymmetric or HMAC key and
    while the key is pending deletion; an imported key's is refused."""
    _check_origin(key)
    if not key.rotatable:
        return RotationStatus(key=key, enabled=False, period_days=None, next_rotation_at=None)
    enabled = key.rotation_enabled and key.state != KeyState.PENDING_DELETION
    return RotationStatus(
        key=key,
        enabled=enabled,
        period_days=key.rotation_period_days if enabled else None,
        next_rotation_at=key.next_rotation_at if enabled else None,
    )


def key_rotate_on_demand(*, ctx: OperationContext, key_id: str) -> KeyMaterial:
    """Rotate now, leaving the automatic schedule as it is. kms:RotateKeyOnDemand (key policy); the key must be
    Enabled; at most 25 on-demand rotations per key (LimitExceededException); ConflictException while an
    automatic rotation is overdue or due within 20 minutes."""
    key = key_for(ctx, key_id, lock=True)
    _check_rotatable(key)
    done = key.materials.filter(rotation_type=KeyMaterial.RotationType.ON_DEMAND).count()
    if done >= ON_DEMAND_ROTATIONS_PER_KEY:
        raise errors.LimitExceededException(ON_DEMAND_LIMIT_MESSAGE.format(arn=key.arn))
    due = key.next_rotation_at
    if key.rotation_enabled and due is not None and due <= timezone.now() + ON_DEMAND_CONFLICT_WINDOW:
        raise errors.ConflictException(
            f"An automatic rotation of {key.arn} is in progress or due within the next "
            f"{int(ON_DEMAND_CONFLICT_WINDOW.total_seconds() // 60)} minutes. Try again later."
        )
    return create_material(key, rotation_type=KeyMaterial.RotationType.ON_DEMAND)


def key_rotations(
    *, ctx: OperationContext, key_id: str, include_key_material: str = ROTATIONS_ONLY
) -> tuple[Key, QuerySet[KeyMaterial]]:
    """A key's material versions, oldest first, as a queryset to page (ListKeyRotations's checks first)."""
    _check_include(include_key_material)
    key = key_for(ctx, key_id)
    _check_rotatable(key)
    materials = KeyMaterial.objects.filter(key=key).order_by("created_at", "id")
    if include_key_material == ROTATIONS_ONLY:
        materials = materials.exclude(rotation_type="")
    return key, materials


def key_rotations_list(
    *,
    ctx: OperationContext,
    key_id: str,
    include_key_material: str = ROTATIONS_ONLY,
    limit: int | None = None,
    marker: str | None = None,
) -> tuple[Key, Sequence[KeyMaterial], str | None]:
    """One page of a key's material versions, oldest first: those rotations made (ROTATIONS_ONLY, the default),
    or every version including the original (ALL_KEY_MATERIAL). kms:ListKeyRotations (key policy), any state."""
    _check_include(include_key_material)
    limit = list_limit(limit, default=LIST_ROTATIONS_DEFAULT_LIMIT, maximum=LIST_ROTATIONS_MAX_LIMIT)
    key, materials = key_rotations(ctx=ctx, key_id=key_id, include_key_material=include_key_material)
    rows, next_marker = page(
        materials, scope=f"ListKeyRotations:{key.pk}:{include_key_material}", limit=limit, marker=marker
    )
    return key, rows, next_marker


def key_rotate(*, ctx: OperationContext, key_id: str) -> KeyMaterial:
    """One automatic rotation (the RotateKey service event), for a key the sweep has claimed."""
    key = key_for(ctx, key_id, lock=True)
    _check_rotatable(key)
    return create_material(key, rotation_type=KeyMaterial.RotationType.AUTOMATIC)


def _due_keys(now: datetime) -> list[tuple[int, datetime, int, str]]:
    """Keys whose automatic rotation is due: (pk, due date, period in days, account id), the most overdue first."""
    rows = (
        Key.objects.filter(
            rotation_enabled=True,
            state=KeyState.ENABLED,
            next_rotation_at__lte=now,
            key_spec=KeySpec.SYMMETRIC_DEFAULT,
            origin="AWS_KMS",
        )
        .order_by("next_rotation_at", "pk")
        .values_list("pk", "next_rotation_at", "rotation_period_days", "account__account_id")[
            :ROTATION_SWEEP_BATCH
        ]
    )
    return [(pk, due, period, account_id) for pk, due, period, account_id in rows if period]


def _following(due: datetime, period_days: int, now: datetime) -> datetime:
    """The rotation after the one due at `due`: one period later, or one period from now for an overdue key."""
    following = due + clock.days(period_days)
    return following if following > now else now + clock.days(period_days)


def _rotate_if_claimed(pk: int, *, due: datetime, period_days: int, now: datetime) -> bool:
    """Claim one due key and rotate it, in one transaction. False when another sweep claimed it first (its
    UPDATE matched: ours then matches nothing) or the key changed since it was picked.

    The key's row MAC covers the schedule, so the claim writes the new MAC in the same statement, computed from
    the row as loaded and checked, and only if the row still has the MAC it was checked with. A key that fails its
    check is not claimed: the rotation below then fails closed on it, audited, and it stays due."""
    failure: errors.KmsError | None = None
    with transaction.atomic():
        key = Key.objects.select_related("account").filter(pk=pk).first()
        if key is None:
            return False
        claimed = 0
        try:
            key.check_row()  # read again in place if a write committed between the key and its children
        except errors.KmsError:
            pass  # logged; perform() below records the failure
        else:
            checked_mac = key.mac
            key.next_rotation_at = _following(due, period_days, now)
            key.refresh_mac()
            claimed = Key.objects.filter(
                pk=pk,
                mac=checked_mac,
                next_rotation_at=due,
                rotation_period_days=period_days,
                rotation_enabled=True,
                state=KeyState.ENABLED,
            ).update(next_rotation_at=key.next_rotation_at, mac=key.mac)
            if not claimed:
                return False
        try:
            perform(
                ROTATE_KEY_EVENT,
                caller=operator_caller(key.account.account_id, ROTATION_WORKER),
                meta=RequestMeta(interface="worker"),
                params={"KeyId": key.arn},
                service=lambda ctx: _rotation_result(key_rotate(ctx=ctx, key_id=key.arn)),
            )
        except errors.KmsError as error:
            # perform() undid the rotation and recorded the failure; give the claim back for the next sweep.
            if claimed:
                Key.objects.filter(pk=pk).update(next_rotation_at=due, mac=checked_mac)
            failure = error
    if failure is not None:
        raise failure
    return True


def _rotation_result(material: KeyMaterial) -> dict[str, str]:
    return {"KeyId": material.key.arn, "KeyMaterialId": material.material_id}


def key_rotate_due(*, now: datetime | None = None) -> JobRun:
    """The beat sweep: rotate every Enabled key whose automatic rotation is due. Safe to run concurrently and
    repeatedly (each due key is rotated once per due date). Leaves a JobRun: how many keys it rotated, and
    which failed and why (a failing key does not stop the others)."""
    with job_run(ROTATION_SWEEP_JOB, counts_by_account=True) as run:
        moment = now or timezone.now()
        for pk, due, period_days, account_id in _due_keys(moment):
            try:
                if _rotate_if_claimed(pk, due=due, period_days=period_days, now=moment):
                    run.count(account_id)
            except errors.KmsError as error:
                key = Key.objects.select_related("account").filter(pk=pk).first()
                run.fail(f"{key.arn if key else f'key #{pk}'}: {error}", account_id=account_id)
    return run.run
