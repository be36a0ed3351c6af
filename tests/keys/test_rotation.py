"""Enable/DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand, ListKeyRotations over boto3, and the
automatic rotation sweep: in-process, racing itself, and on a real Celery worker.

Encrypt is not here yet, so rotation is proven by key material versions: a new current version (DescribeKey's
CurrentKeyMaterialId), the old ones kept and still opening.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.db import connections
from django.utils import timezone

from keys.models import Key, KeyMaterial
from keys.services import rotation
from keys.tasks import rotate_due_keys
from kmsconsole.audit.models import AuditEvent
from kmsconsole.celery import app
from kmsconsole.core import errors
from kmsconsole.core.rootkey import sealer
from kmsconsole.jobs.models import JobRun
from tests.conftest import Persona, WorkerProcesses
from tests.rows import update_sealed

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]
SWEEP = rotation.ROTATION_SWEEP_JOB


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response["Error"]
    return error["Code"], error.get("Message", "")


def identity_policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def make_due(key_id: str, *, ago: timedelta = timedelta(minutes=1)) -> datetime:
    """Move a key's next automatic rotation into the past (the column the sweep reads)."""
    due = timezone.now() - ago
    update_sealed(Key.objects.filter(key_id=key_id), next_rotation_at=due)
    return due


def materials(key_id: str) -> list[KeyMaterial]:
    return list(KeyMaterial.objects.filter(key__key_id=key_id).order_by("pk"))


def test_enable_change_period_and_disable(admin_kms: Any, create_key: Callable[..., dict[str, Any]]) -> None:
    key_id = create_key()["KeyId"]
    status = admin_kms.get_key_rotation_status(KeyId=key_id)
    status.pop("ResponseMetadata")
    assert status == {"KeyRotationEnabled": False, "KeyId": key_id}
    before = timezone.now()
    admin_kms.enable_key_rotation(KeyId=key_id)
    status = admin_kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 365
    first_date = status["NextRotationDate"]
    assert (
        before + timedelta(days=365) - timedelta(seconds=5)
        <= first_date
        <= timezone.now() + timedelta(days=365)
    )
    admin_kms.enable_key_rotation(KeyId=key_id)  # the same period again changes nothing
    assert admin_kms.get_key_rotation_status(KeyId=key_id)["NextRotationDate"] == first_date
    # A new period counts from the same starting point.
    admin_kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    status = admin_kms.get_key_rotation_status(KeyId=key_id)
    assert status["RotationPeriodInDays"] == 90
    assert abs(status["NextRotationDate"] - (first_date - timedelta(days=275))) < timedelta(seconds=1)
    admin_kms.disable_key_rotation(KeyId=key_id)
    status = admin_kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is False
    assert "RotationPeriodInDays" not in status and "NextRotationDate" not in status
    admin_kms.disable_key_rotation(KeyId=key_id)  # idempotent
    event = AuditEvent.objects.filter(operation="EnableKeyRotation", decision="allowed").first()
    assert event is not None and event.request_parameters == {"KeyId": key_id, "RotationPeriodInDays": 90}


@pytest.mark.parametrize(
    ("days", "bound"), [(89, "greater than or equal to 90"), (2561, "less than or equal to 2560")]
)
def test_rotation_period_limits(
    kms_client: Callable[..., Any],
    admin: Persona,
    create_key: Callable[..., dict[str, Any]],
    days: int,
    bound: str,
) -> None:
    key_id = create_key()["KeyId"]
    client = kms_client(admin, parameter_validation=False)
    assert error_of(lambda: client.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=days)) == (
        "ValidationException",
        f"1 validation error detected: Value '{days}' at 'rotationPeriodInDays' failed to satisfy constraint: "
        f"Member must have value {bound}",
    )
    client.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=2560)


def test_rotation_period_condition_key(
    kms_client: Callable[..., Any],
    create_key: Callable[..., dict[str, Any]],
    make_user: Callable[..., Persona],
) -> None:
    user = make_user(
        "rotator",
        identity_policy(
            {
                "Effect": "Allow",
                "Action": "kms:EnableKeyRotation",
                "Resource": "*",
                "Condition": {"NumericLessThanEquals": {"kms:RotationPeriodInDays": "180"}},
            }
        ),
    )
    key_id = create_key()["KeyId"]
    client = kms_client(user)
    client.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=180)
    # Omitted, the period is the default 365, and the condition sees that.
    code, message = error_of(lambda: client.enable_key_rotation(KeyId=key_id))
    assert code == "AccessDeniedException" and "kms:EnableKeyRotation" in message
    assert Key.objects.get(key_id=key_id).rotation_period_days == 180


@pytest.mark.parametrize(
    "spec",
    [
        {"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"},
        {"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"},
        {"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"},
    ],
)
def test_only_symmetric_keys_rotate(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]], spec: dict[str, str]
) -> None:
    """The changes and the history are UnsupportedOperationException with AWS's empty message; the status is
    "off" (AWS answers it for every key of its own material: the AWS provider for Terraform reads it of each)."""
    key_id = create_key(**spec)["KeyId"]
    for call in (
        lambda: admin_kms.enable_key_rotation(KeyId=key_id),
        lambda: admin_kms.disable_key_rotation(KeyId=key_id),
        lambda: admin_kms.rotate_key_on_demand(KeyId=key_id),
        lambda: admin_kms.list_key_rotations(KeyId=key_id),
    ):
        assert error_of(call) == ("UnsupportedOperationException", "")
    status = admin_kms.get_key_rotation_status(KeyId=key_id)
    status.pop("ResponseMetadata")
    assert status == {"KeyRotationEnabled": False, "KeyId": key_id}
    # Off in any state, as for a symmetric key (a disabled or pending-deletion key is read too).
    admin_kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert admin_kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False
    assert len(materials(key_id)) == 1


def test_rotation_in_key_states(admin_kms: Any, create_key: Callable[..., dict[str, Any]]) -> None:
    key = create_key()
    key_id, arn = key["KeyId"], key["Arn"]
    admin_kms.enable_key_rotation(KeyId=key_id)
    admin_kms.disable_key(KeyId=key_id)
    disabled = ("DisabledException", f"{arn} is disabled.")
    assert error_of(lambda: admin_kms.enable_key_rotation(KeyId=key_id)) == disabled
    assert error_of(lambda: admin_kms.disable_key_rotation(KeyId=key_id)) == disabled
    assert error_of(lambda: admin_kms.rotate_key_on_demand(KeyId=key_id)) == disabled
    # Disabling the key does not change the rotation status (it only pauses rotation).
    assert admin_kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    assert admin_kms.list_key_rotations(KeyId=key_id)["Rotations"] == []

    admin_kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    pending = ("KMSInvalidStateException", f"{arn} is pending deletion.")
    assert error_of(lambda: admin_kms.enable_key_rotation(KeyId=key_id)) == pending
    assert error_of(lambda: admin_kms.rotate_key_on_demand(KeyId=key_id)) == pending
    status = admin_kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is False and "NextRotationDate" not in status
    assert Key.objects.get(key_id=key_id).rotation_enabled is True  # the stored setting is kept...
    # ...and reported again once the deletion is cancelled (CancelKeyDeletion leaves the key Disabled).
    admin_kms.cancel_key_deletion(KeyId=key_id)
    status = admin_kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 365


def test_rotate_on_demand_adds_a_current_material_and_keeps_the_old(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    key = create_key()
    key_id, original = key["KeyId"], key["CurrentKeyMaterialId"]
    admin_kms.enable_key_rotation(KeyId=key_id)
    scheduled = admin_kms.get_key_rotation_status(KeyId=key_id)["NextRotationDate"]
    response = admin_kms.rotate_key_on_demand(KeyId=key_id)
    assert response["KeyId"] == key_id
    current = admin_kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert current != original and len(current) == 64
    old, new = materials(key_id)
    assert (old.material_id, old.is_current, old.rotation_type) == (original, False, "")
    assert (new.material_id, new.is_current, new.rotation_type) == (current, True, "ON_DEMAND")
    for material in (old, new):  # both versions stay sealed and open, so old ciphertext keeps decrypting
        assert len(sealer().open(bytes(material.sealed), bound_to=material.sealing_identity)) == 32
    # On-demand rotation leaves the automatic schedule alone.
    assert admin_kms.get_key_rotation_status(KeyId=key_id)["NextRotationDate"] == scheduled

    rotations = admin_kms.list_key_rotations(KeyId=key_id)
    assert rotations["Truncated"] is False
    [entry] = rotations["Rotations"]
    assert entry["KeyId"] == key_id and entry["KeyMaterialId"] == current
    assert entry["KeyMaterialState"] == "CURRENT" and entry["RotationType"] == "ON_DEMAND"
    assert entry["RotationDate"] <= timezone.now()
    everything = admin_kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")[
        "Rotations"
    ]
    assert [e["KeyMaterialId"] for e in everything] == [original, current]
    assert everything[0]["KeyMaterialState"] == "NON_CURRENT"
    assert "RotationDate" not in everything[0] and "RotationType" not in everything[0]
    event = AuditEvent.objects.filter(operation="RotateKeyOnDemand", decision="allowed").get()
    assert event.key_arn == key["Arn"] and event.interface == "kms"


def test_twenty_five_on_demand_rotations_per_key(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    key = create_key()
    for _ in range(rotation.ON_DEMAND_ROTATIONS_PER_KEY):
        admin_kms.rotate_key_on_demand(KeyId=key["KeyId"])
    assert error_of(lambda: admin_kms.rotate_key_on_demand(KeyId=key["KeyId"])) == (
        "LimitExceededException",
        "The on-demand rotations limit has been reached for the given keyId. "
        f"No more on-demand rotations can be performed for this key: {key['Arn']}",
    )
    assert len(materials(key["KeyId"])) == 26
    # Automatic rotations do not count toward the on-demand limit.
    admin_kms.enable_key_rotation(KeyId=key["KeyId"])
    make_due(key["KeyId"])
    assert rotation.key_rotate_due().processed == 1


def test_on_demand_conflicts_with_a_due_automatic_rotation(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    key = create_key()
    admin_kms.enable_key_rotation(KeyId=key["KeyId"])
    update_sealed(
        Key.objects.filter(key_id=key["KeyId"]), next_rotation_at=timezone.now() + timedelta(minutes=19)
    )
    code, message = error_of(lambda: admin_kms.rotate_key_on_demand(KeyId=key["KeyId"]))
    assert code == "ConflictException" and key["Arn"] in message
    update_sealed(
        Key.objects.filter(key_id=key["KeyId"]), next_rotation_at=timezone.now() + timedelta(minutes=21)
    )
    admin_kms.rotate_key_on_demand(KeyId=key["KeyId"])
    # Without automatic rotation there is nothing to conflict with.
    admin_kms.disable_key_rotation(KeyId=key["KeyId"])
    admin_kms.rotate_key_on_demand(KeyId=key["KeyId"])


def test_list_key_rotations_pages(
    kms_client: Callable[..., Any], admin: Persona, admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    key_id, other = create_key()["KeyId"], create_key()["KeyId"]
    for _ in range(5):
        admin_kms.rotate_key_on_demand(KeyId=key_id)
    first = admin_kms.list_key_rotations(KeyId=key_id, Limit=2)
    assert first["Truncated"] and len(first["Rotations"]) == 2
    seen = [r["KeyMaterialId"] for r in first["Rotations"]]
    marker = first["NextMarker"]
    while marker:
        page = admin_kms.list_key_rotations(KeyId=key_id, Limit=2, Marker=marker)
        seen += [r["KeyMaterialId"] for r in page["Rotations"]]
        marker = page.get("NextMarker")
    assert seen == [m.material_id for m in materials(key_id)[1:]]
    assert error_of(lambda: admin_kms.list_key_rotations(KeyId=other, Marker=first["NextMarker"]))[0] == (
        "InvalidMarkerException"
    )
    unchecked = kms_client(admin, parameter_validation=False)
    assert error_of(lambda: unchecked.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="SOME")) == (
        "ValidationException",
        "1 validation error detected: Value 'SOME' at 'includeKeyMaterial' failed to satisfy constraint: "
        "Member must satisfy enum value set: [ALL_KEY_MATERIAL, ROTATIONS_ONLY]",
    )
    assert (
        error_of(lambda: unchecked.list_key_rotations(KeyId=key_id, Limit=1001))[0] == "ValidationException"
    )


def test_rotation_operations_are_authorized_on_the_key(
    kms_client: Callable[..., Any], create_key: Callable[..., dict[str, Any]], outsider: Persona
) -> None:
    key = create_key()
    client = kms_client(outsider)
    for operation, call in (
        ("EnableKeyRotation", lambda: client.enable_key_rotation(KeyId=key["KeyId"])),
        ("GetKeyRotationStatus", lambda: client.get_key_rotation_status(KeyId=key["KeyId"])),
        ("RotateKeyOnDemand", lambda: client.rotate_key_on_demand(KeyId=key["KeyId"])),
        ("ListKeyRotations", lambda: client.list_key_rotations(KeyId=key["KeyId"])),
    ):
        code, message = error_of(call)
        assert code == "AccessDeniedException" and f"kms:{operation} on resource: {key['Arn']}" in message
        assert AuditEvent.objects.filter(operation=operation, decision="denied", key_arn=key["Arn"]).exists()
    assert len(materials(key["KeyId"])) == 1


def test_the_sweep_rotates_due_enabled_keys_once(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    due_key, later, disabled, deleting = (create_key() for _ in range(4))
    for key in (due_key, later, disabled, deleting):
        admin_kms.enable_key_rotation(KeyId=key["KeyId"])
    due = make_due(due_key["KeyId"], ago=timedelta(hours=1))
    make_due(disabled["KeyId"], ago=timedelta(days=400))
    admin_kms.disable_key(KeyId=disabled["KeyId"])
    make_due(deleting["KeyId"])
    admin_kms.schedule_key_deletion(KeyId=deleting["KeyId"], PendingWindowInDays=7)

    run = rotation.key_rotate_due()
    assert (run.processed, run.error) == (1, "") and run.finished_at is not None
    rotated = materials(due_key["KeyId"])
    assert [(m.rotation_type, m.is_current) for m in rotated] == [("", False), ("AUTOMATIC", True)]
    assert admin_kms.describe_key(KeyId=due_key["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"] == (
        rotated[1].material_id
    )
    assert Key.objects.get(key_id=due_key["KeyId"]).next_rotation_at == due + timedelta(days=365)
    [entry] = admin_kms.list_key_rotations(KeyId=due_key["KeyId"])["Rotations"]
    assert entry["RotationType"] == "AUTOMATIC"
    for key in (later, disabled, deleting):
        assert len(materials(key["KeyId"])) == 1
    event = AuditEvent.objects.filter(operation="RotateKey").get()
    assert (event.decision, event.interface, event.key_arn) == ("allowed", "worker", due_key["Arn"])
    assert event.caller_arn == "kmsconsole:operator/rotation-sweep"
    assert event.response_elements == {"KeyId": due_key["Arn"], "KeyMaterialId": rotated[1].material_id}

    # Idempotent: nothing is due any more.
    assert rotation.key_rotate_due().processed == 0
    # An overdue key enabled again rotates at the next sweep, and its schedule restarts from then.
    admin_kms.enable_key(KeyId=disabled["KeyId"])
    before = timezone.now()
    assert rotation.key_rotate_due().processed == 1
    assert Key.objects.get(key_id=disabled["KeyId"]).next_rotation_at >= before + timedelta(days=365)
    assert list(JobRun.objects.filter(job=SWEEP).order_by("pk").values_list("processed", flat=True)) == [
        1,
        0,
        1,
    ]


def test_rotation_periods_count_configured_days(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]], settings: Any
) -> None:
    """With KMS_DAY_SECONDS=1 (demos and tests), a 90-day period lasts 90 seconds."""
    settings.KMS_DAY_SECONDS = 1
    key_id = create_key()["KeyId"]
    before = timezone.now()
    admin_kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    next_date = admin_kms.get_key_rotation_status(KeyId=key_id)["NextRotationDate"]
    assert before + timedelta(seconds=89) <= next_date <= timezone.now() + timedelta(seconds=91)
    assert rotation.key_rotate_due(now=next_date - timedelta(seconds=1)).processed == 0
    assert rotation.key_rotate_due(now=next_date + timedelta(seconds=1)).processed == 1
    stored = Key.objects.get(key_id=key_id).next_rotation_at
    assert stored is not None and abs(stored - (next_date + timedelta(seconds=90))) < timedelta(seconds=1)


def test_a_failed_rotation_is_recorded_and_retried(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = create_key()
    admin_kms.enable_key_rotation(KeyId=key["KeyId"])
    due = make_due(key["KeyId"])

    def broken(*args: Any, **kwargs: Any) -> KeyMaterial:
        raise errors.KMSInternalException("The material store is unavailable.")

    monkeypatch.setattr(rotation, "create_material", broken)
    run = rotation.key_rotate_due()
    assert run.processed == 0
    assert run.error == f"{key['Arn']}: KMSInternalException: The material store is unavailable."
    assert Key.objects.get(key_id=key["KeyId"]).next_rotation_at == due  # the claim was given back
    failed = AuditEvent.objects.filter(operation="RotateKey").get()
    assert (failed.decision, failed.error_code) == ("failed", "KMSInternalException")
    monkeypatch.undo()
    assert rotation.key_rotate_due().processed == 1
    assert len(materials(key["KeyId"])) == 2


def test_two_sweeps_racing_rotate_each_key_once(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both sweeps read the same due keys before either claims one: each key goes to one of them."""
    keys = [create_key()["KeyId"] for _ in range(4)]
    for key_id in keys:
        admin_kms.enable_key_rotation(KeyId=key_id)
        make_due(key_id)
    both_read = threading.Barrier(2, timeout=30)
    read_due_keys = rotation._due_keys

    def due_keys_then_wait(now: datetime) -> list[tuple[int, datetime, int, str]]:
        rows = read_due_keys(now)
        both_read.wait()
        return rows

    monkeypatch.setattr(rotation, "_due_keys", due_keys_then_wait)
    results: list[int] = []

    def sweep() -> None:
        try:
            results.append(rotation.key_rotate_due().processed)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(results) == 4 and len(results) == 2
    for key_id in keys:
        assert [m.rotation_type for m in materials(key_id)] == ["", "AUTOMATIC"]
    assert AuditEvent.objects.filter(operation="RotateKey", decision="allowed").count() == 4


@pytest.mark.timeout(120)
def test_a_real_worker_rotates_due_keys_once_when_the_sweep_runs_twice(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]], real_worker: WorkerProcesses
) -> None:
    keys = [create_key()["KeyId"] for _ in range(6)]
    for key_id in keys:
        admin_kms.enable_key_rotation(KeyId=key_id)
        make_due(key_id)
    # Both sweeps wait in the queue before the worker starts, so its two threads take them at once.
    for _ in range(2):
        rotate_due_keys.apply_async(queue=real_worker.queue)
    worker = real_worker.start()
    deadline = time.monotonic() + 90
    while (
        time.monotonic() < deadline
        and JobRun.objects.filter(job=SWEEP, finished_at__isnull=False).count() < 2
    ):
        assert worker.poll() is None, worker.stdout.read().decode() if worker.stdout else ""
        time.sleep(0.3)
    runs = list(JobRun.objects.filter(job=SWEEP))
    assert len(runs) == 2 and all(run.finished_at and not run.error for run in runs), [
        (run.processed, run.error) for run in runs
    ]
    first, second = runs
    assert first.started_at < second.finished_at and second.started_at < first.finished_at  # they overlapped
    assert sum(run.processed for run in runs) == len(keys)
    for key_id in keys:
        assert [m.rotation_type for m in materials(key_id)] == ["", "AUTOMATIC"]
    events = AuditEvent.objects.filter(operation="RotateKey")
    assert events.count() == len(keys)
    assert set(events.values_list("decision", "interface", "caller_arn")) == {
        ("allowed", "worker", "kmsconsole:operator/rotation-sweep")
    }


def test_beat_runs_the_sweep_every_minute(settings: Any) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["rotate-due-keys"]
    assert entry == {"task": "keys.tasks.rotate_due_keys", "schedule": 60.0}
    assert rotate_due_keys.name in app.tasks
