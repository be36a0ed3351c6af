"""ScheduleKeyDeletion, CancelKeyDeletion and the destruction of due keys (crypto-shredding, tombstones)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from keys.models import DeletedKey, Key, KeyMaterial, KeyState
from keys.services import deletion, lifecycle
from kmsconsole.audit.models import AuditEvent
from kmsconsole.operations import KEY_USE_OPERATIONS
from tests.conftest import WorkerProcesses, as_operator
from tests.rows import update_sealed

pytestmark = pytest.mark.django_db(transaction=True)


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"], raised.value.response["Error"].get("Message", "")


def test_schedule_and_cancel(admin_kms: Any, create_key: Callable[..., dict[str, Any]]) -> None:
    metadata = create_key()
    key_id, arn = metadata["KeyId"], metadata["Arn"]
    before = timezone.now()
    answer = admin_kms.schedule_key_deletion(KeyId=key_id)
    assert (answer["KeyId"], answer["KeyState"], answer["PendingWindowInDays"]) == (
        arn,
        "PendingDeletion",
        30,
    )
    assert abs(answer["DeletionDate"] - (before + timedelta(days=30))) < timedelta(minutes=1)
    described = admin_kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (
        described["KeyState"] == "PendingDeletion"
        and not described["Enabled"]
        and "DeletionDate" in described
    )
    assert error_of(lambda: admin_kms.schedule_key_deletion(KeyId=key_id)) == (
        "KMSInvalidStateException", f"{arn} is pending deletion.")  # fmt: skip
    assert admin_kms.cancel_key_deletion(KeyId=key_id)["KeyId"] == arn
    described = admin_kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert described["KeyState"] == "Disabled" and "DeletionDate" not in described
    assert error_of(lambda: admin_kms.cancel_key_deletion(KeyId=key_id)) == (
        "KMSInvalidStateException", f"{arn} is not pending deletion.")  # fmt: skip


@pytest.mark.parametrize(
    ("days", "bound"), [(6, "greater than or equal to 7"), (31, "less than or equal to 30")]
)
def test_the_window_is_seven_to_thirty_days(admin_kms: Any, create_key: Callable[..., dict[str, Any]],
                                            days: int, bound: str) -> None:  # fmt: skip
    key_id = create_key()["KeyId"]
    assert error_of(lambda: admin_kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=days)) == (
        "ValidationException",
        f"1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy constraint: "
        f"Member must have value {bound}",
    )
    assert Key.objects.get(key_id=key_id).state == KeyState.ENABLED


def test_using_a_key_pending_deletion_is_refused_and_notable(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    metadata = create_key()
    admin_kms.schedule_key_deletion(KeyId=metadata["KeyId"], PendingWindowInDays=7)
    assert error_of(lambda: admin_kms.enable_key(KeyId=metadata["KeyId"])) == (
        "KMSInvalidStateException", f"{metadata['Arn']} is pending deletion.")  # fmt: skip
    # A management call refused (its administrator at work) is not a use: nothing depends on the key through it.
    event = AuditEvent.objects.filter(operation="EnableKey").get()
    assert (event.decision, event.notable) == ("failed", "")
    assert error_of(lambda: admin_kms.encrypt(KeyId=metadata["KeyId"], Plaintext=b"x"))[0] == (
        "KMSInvalidStateException"
    )
    event = AuditEvent.objects.filter(operation="Encrypt").get()
    assert (event.decision, event.notable) == ("failed", "use of a key pending deletion")


def test_the_operations_that_use_a_key_are_declared() -> None:
    """Which refusals on a key pending deletion are uses (the mark, every reader of it): declared one by one in
    the operation table, so a new operation is a use only when it says so."""
    declared = {
        *("Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext"),
        *("GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "Sign", "Verify", "GenerateMac"),
        *("VerifyMac", "GetPublicKey", "DeriveSharedSecret", "Encapsulate", "Decapsulate", "CreateGrant"),
    }
    assert declared == KEY_USE_OPERATIONS


def test_a_day_can_be_shortened_for_demos(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]], settings: Any
) -> None:
    settings.KMS_DAY_SECONDS = 1
    key_id = create_key()["KeyId"]
    answer = admin_kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert abs(answer["DeletionDate"] - (timezone.now() + timedelta(seconds=7))) < timedelta(seconds=5)


def test_due_keys_are_destroyed_once_with_a_tombstone(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    doomed, kept = create_key(), create_key()
    admin_kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=7)
    admin_kms.schedule_key_deletion(KeyId=kept["KeyId"], PendingWindowInDays=30)
    pk = Key.objects.get(key_id=doomed["KeyId"]).pk
    first = deletion.keys_destroy_due(now=timezone.now() + timedelta(days=8))
    assert (first.job, first.processed, first.error) == ("destroy-due-keys", 1, "")
    assert first.finished_at is not None
    assert deletion.keys_destroy_due(now=timezone.now() + timedelta(days=8)).processed == 0  # idempotent
    assert not KeyMaterial.objects.filter(key_id=pk).exists()
    assert error_of(lambda: admin_kms.describe_key(KeyId=doomed["KeyId"]))[0] == "NotFoundException"
    assert admin_kms.describe_key(KeyId=kept["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    tombstone = DeletedKey.objects.get()
    assert (tombstone.arn, tombstone.material_versions_destroyed) == (doomed["Arn"], 1)
    assert tombstone.deletion_scheduled_by == "arn:aws:iam::111122223333:user/admin"
    event = AuditEvent.objects.filter(operation="DeleteKey").get()
    assert (event.interface, event.decision, event.key_arn) == ("worker", "allowed", doomed["Arn"])
    assert event.caller_arn == "kmsconsole:operator/deletion-sweep"
    out = StringIO()
    call_command("audit", "verify", stdout=out)
    assert "intact" in out.getvalue()


def test_racing_sweeps_destroy_each_key_exactly_once(account: Any) -> None:
    keys = [as_operator("CreateKey", lambda ctx: lifecycle.key_create(ctx=ctx)) for _ in range(200)]
    past = timezone.now() - timedelta(seconds=1)
    update_sealed(
        Key.objects.filter(pk__in=[k.pk for k in keys]), state=KeyState.PENDING_DELETION, deletion_date=past
    )
    counts: list[int] = []
    errors: list[BaseException] = []

    def sweep() -> None:
        try:
            counts.append(deletion.keys_destroy_due().processed)
        except BaseException as exc:  # reported below, so a failing thread fails the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(counts) == 200
    assert DeletedKey.objects.count() == 200 and not Key.objects.exists()
    assert AuditEvent.objects.filter(operation="DeleteKey").count() == 200
    out = StringIO()
    call_command("audit", "verify", stdout=out)
    assert "intact" in out.getvalue()


@pytest.mark.timeout(240)
def test_two_real_workers_racing_two_sweeps_over_200_due_keys(
    account: Any, real_worker: WorkerProcesses
) -> None:
    """Two worker processes (two threads each) take the same sweep twice over 200 due keys: each key is destroyed
    exactly once, with one tombstone and one DeleteKey event, and the audit chain still verifies."""
    from keys.tasks import destroy_due_keys
    from kmsconsole.jobs.models import JobRun

    keys = [as_operator("CreateKey", lambda ctx: lifecycle.key_create(ctx=ctx)) for _ in range(200)]
    update_sealed(
        Key.objects.filter(pk__in=[k.pk for k in keys]),
        state=KeyState.PENDING_DELETION,
        deletion_date=timezone.now() - timedelta(seconds=1),
    )
    for _ in range(2):
        destroy_due_keys.apply_async(queue=real_worker.queue)
    workers = [real_worker.start(), real_worker.start()]
    deadline = time.monotonic() + 180
    while (
        time.monotonic() < deadline
        and JobRun.objects.filter(job="destroy-due-keys", finished_at__isnull=False).count() < 2
    ):
        for worker in workers:
            assert worker.poll() is None, real_worker.output()
        time.sleep(0.5)
    runs = list(JobRun.objects.filter(job="destroy-due-keys"))
    assert len(runs) == 2 and not any(run.error for run in runs), [(r.processed, r.error) for r in runs]
    assert sum(run.processed for run in runs) == 200
    assert DeletedKey.objects.count() == 200 and not Key.objects.exists()
    assert AuditEvent.objects.filter(operation="DeleteKey").count() == 200
    out = StringIO()
    call_command("audit", "verify", stdout=out)
    assert "intact" in out.getvalue()


@pytest.mark.timeout(120)
def test_lost_messages_lose_nothing(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]], real_worker: WorkerProcesses
) -> None:
    """The sweep's messages are only a trigger: purge them (as a Redis FLUSHALL would), and the next sweep still
    destroys every due key, because the deletion date is a column."""
    from keys.tasks import destroy_due_keys
    from kmsconsole.celery import app

    doomed = [create_key()["KeyId"] for _ in range(3)]
    for key_id in doomed:
        admin_kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    update_sealed(Key.objects.filter(key_id__in=doomed), deletion_date=timezone.now() - timedelta(seconds=1))
    destroy_due_keys.apply_async(queue=real_worker.queue)
    with app.connection_for_write() as conn:
        assert conn.default_channel.queue_purge(real_worker.queue) == 1
    assert Key.objects.filter(key_id__in=doomed).count() == 3
    destroy_due_keys.apply_async(queue=real_worker.queue)  # beat's next tick
    real_worker.start()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and Key.objects.filter(key_id__in=doomed).exists():
        time.sleep(0.3)
    assert DeletedKey.objects.count() == 3


def wait_until_blocked_on_a_lock(deadline: float) -> None:
    """PostgreSQL: until another session (the worker, mid-transaction) waits on a row lock. SQLite has no such
    view; its worker blocks at BEGIN IMMEDIATE instead, so a fixed pause lets it get there."""
    if connection.vendor != "postgresql":
        time.sleep(4)
        return
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.2)
    raise AssertionError("the worker never reached the audit write")


@pytest.mark.timeout(150)
def test_a_worker_killed_mid_deletion_leaves_nothing_half_deleted(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]], real_worker: WorkerProcesses
) -> None:
    """Hold the audit chain's head while a worker destroys a key: its transaction has deleted the key's rows and
    waits to write the DeleteKey event. Kill it there (SIGKILL): the database rolls the half-done deletion back,
    and a restarted worker destroys the key once."""
    import signal

    from keys.tasks import destroy_due_keys
    from kmsconsole.audit.models import AuditChainHead

    key = create_key()
    admin_kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    update_sealed(
        Key.objects.filter(key_id=key["KeyId"]), deletion_date=timezone.now() - timedelta(seconds=1)
    )
    materials_before = KeyMaterial.objects.filter(key__key_id=key["KeyId"]).count()
    holding, release = threading.Event(), threading.Event()

    def hold_the_chain_head() -> None:
        from django.db import transaction

        try:
            with transaction.atomic():
                AuditChainHead.objects.select_for_update().get(pk=1)
                holding.set()
                release.wait(timeout=60)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_chain_head)
    holder.start()
    assert holding.wait(timeout=10)
    try:
        destroy_due_keys.apply_async(queue=real_worker.queue)
        worker = real_worker.start(threads=1)
        wait_until_blocked_on_a_lock(deadline=time.monotonic() + 30)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        release.set()
        holder.join(timeout=30)
    assert Key.objects.filter(key_id=key["KeyId"], state=KeyState.PENDING_DELETION).exists()
    assert KeyMaterial.objects.filter(key__key_id=key["KeyId"]).count() == materials_before
    assert not DeletedKey.objects.exists()
    destroy_due_keys.apply_async(queue=real_worker.queue)
    real_worker.start()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not DeletedKey.objects.exists():
        time.sleep(0.3)
    assert DeletedKey.objects.count() == 1 and not Key.objects.filter(key_id=key["KeyId"]).exists()
    assert AuditEvent.objects.filter(operation="DeleteKey").count() == 1
