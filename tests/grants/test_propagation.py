"""Eventual consistency, processed by workers: a new grant fails until a real Celery worker has propagated it, and
works at once with its grant token; the beat sweeper finishes grants whose messages were lost; delayed retirement
goes through the same worker path; propagation is idempotent and races safely; transient errors are retried."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.core.management import call_command
from django.db import OperationalError, connections
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from grants import tasks
from grants.models import Grant
from grants.services.propagation import PROPAGATION_SWEEP_JOB, grant_propagate, grants_propagate_due
from grants.tasks import propagate_due_grants, propagate_grant
from kmsconsole.audit.models import AuditEvent
from kmsconsole.celery import app
from kmsconsole.core import errors
from kmsconsole.jobs.models import JobRun
from tests.conftest import Persona
from tests.grants.conftest import DENIED, GrantWorker, error_of, identity_policy, last_event

pytestmark = pytest.mark.django_db(transaction=True)

DESCRIBE = ["DescribeKey"]
NOT_YET = "has not taken effect yet; pass its grant token in GrantTokens to use it now"


def explaining(client: Any) -> Any:
    client.meta.events.register(
        "before-sign.kms.*", lambda request, **_: request.headers.add_header("X-Kms-Explain", "1")
    )
    return client


def propagation_events(grant_id: str) -> list[AuditEvent]:
    return [
        e
        for e in AuditEvent.objects.filter(operation="PropagateGrant")
        if e.request_parameters["GrantId"] == grant_id
    ]


@pytest.mark.timeout(120)
def test_a_new_grant_works_with_its_token_at_once_and_without_it_once_a_worker_propagated_it(
    settings: Any,
    grant_worker: GrantWorker,
    admin_kms: Any,
    key_arn: Callable[..., str],
    make_user: Callable[..., Persona],
    kms_client: Any,
) -> None:
    settings.KMS_GRANT_PROPAGATION_SECONDS = 3
    grant_worker.start(KMS_GRANT_PROPAGATION_SECONDS="3")
    arn = key_arn()
    # The trace quotes the key policy and tags and notes the caller's grants: explaining needs reading all three,
    # besides kmsconsole:Explain.
    app_user = make_user(
        "app",
        identity_policy("kmsconsole:Explain", "kms:GetKeyPolicy", "kms:ListResourceTags", "kms:ListGrants"),
    )
    child = make_user("child")
    app_kms = explaining(kms_client(app_user))
    created = admin_kms.create_grant(
        KeyId=arn, GranteePrincipal=app_user.arn, Operations=["DescribeKey", "CreateGrant"]
    )
    grant_id, token = created["GrantId"], created["GrantToken"]
    assert Grant.objects.get(grant_id=grant_id).effective_at is None

    # Not yet: AccessDenied, and the explanation says why and what would work.
    with pytest.raises(ClientError) as raised:
        app_kms.describe_key(KeyId=arn)
    assert raised.value.response["Error"]["Code"] == DENIED
    trace = json.loads(raised.value.response["ResponseMetadata"]["HTTPHeaders"]["x-kms-explanation"])
    assert any(NOT_YET in note for note in trace)
    event = last_event("DescribeKey")
    assert event.reason == f"denied: grant {grant_id} would allow kms:DescribeKey, but it {NOT_YET}"
    # What was missing decided it, not the grant (which allowed nothing yet): policies.engine.Decision.decided_by.
    assert event.decided_by == "missing: a grant in effect"

    # With its token it works at once (CreateGrant takes GrantTokens; the child grant must be within it).
    def delegate(**extra: Any) -> Any:
        return app_kms.create_grant(KeyId=arn, GranteePrincipal=child.arn, Operations=DESCRIBE, **extra)

    assert error_of(delegate)[0] == DENIED
    assert delegate(GrantTokens=[token])["GrantId"]
    assert last_event("CreateGrant").decided_by == f"grant {grant_id}"

    # A worker propagates it; then no token is needed.
    grant_worker.wait_for(
        lambda: Grant.objects.filter(grant_id=grant_id, effective_at__isnull=False).exists()
    )
    grant = Grant.objects.get(grant_id=grant_id)
    assert grant.effective_at is not None and grant.effective_at >= grant.propagate_after
    assert app_kms.describe_key(KeyId=arn)["KeyMetadata"]["Arn"] == arn
    assert last_event("DescribeKey").reason == f"allowed by grant {grant_id}"
    assert delegate()["GrantId"]
    [event] = propagation_events(grant_id)
    assert (event.decision, event.interface, event.caller_arn, event.key_arn) == (
        "allowed",
        "worker",
        "kmsconsole:operator/grant-propagation",
        arn,
    )
    assert event.response_elements == {"GrantId": grant_id, "Change": "effective"}
    call_command("audit", "verify", stdout=io.StringIO())  # the hash chain holds


@pytest.mark.timeout(120)
def test_the_sweeper_propagates_grants_whose_messages_were_lost(
    settings: Any,
    grant_worker: GrantWorker,
    admin_kms: Any,
    key_arn: Callable[..., str],
    make_user: Callable[..., Persona],
    kms_client: Any,
) -> None:
    settings.KMS_GRANT_PROPAGATION_SECONDS = 1
    arn = key_arn()
    app_user = make_user("app")
    grant_ids = [
        admin_kms.create_grant(KeyId=arn, GranteePrincipal=app_user.arn, Operations=DESCRIBE)["GrantId"]
        for _ in range(3)
    ]
    # The broker loses every message (a flushed Redis): nothing but the database knows about the grants now.
    assert grant_worker.purge() == len(grant_ids)
    assert grant_worker.purge() == 0
    time.sleep(1.1)
    assert error_of(lambda: kms_client(app_user).describe_key(KeyId=arn))[0] == DENIED

    grant_worker.start(KMS_GRANT_PROPAGATION_SECONDS="1")
    propagate_due_grants.apply_async(queue=grant_worker.queue)
    grant_worker.wait_for(
        lambda: JobRun.objects.filter(job=PROPAGATION_SWEEP_JOB, finished_at__isnull=False).exists()
    )
    run = JobRun.objects.get(job=PROPAGATION_SWEEP_JOB)
    assert (run.processed, run.error) == (3, "") and run.succeeded
    assert Grant.objects.filter(grant_id__in=grant_ids, effective_at__isnull=True).count() == 0
    assert kms_client(app_user).describe_key(KeyId=arn)["KeyMetadata"]["Arn"] == arn


@pytest.mark.timeout(120)
def test_delayed_retirement_goes_through_the_worker(
    settings: Any,
    grant_worker: GrantWorker,
    admin_kms: Any,
    key_arn: Callable[..., str],
    make_user: Callable[..., Persona],
    kms_client: Any,
) -> None:
    arn = key_arn()
    app_user, child = make_user("app"), make_user("child")
    revoked = admin_kms.create_grant(
        KeyId=arn, GranteePrincipal=app_user.arn, Operations=["CreateGrant", "DescribeKey"]
    )
    retired = admin_kms.create_grant(KeyId=arn, GranteePrincipal=app_user.arn, Operations=["DescribeKey"])
    settings.KMS_GRANT_PROPAGATION_SECONDS = 2
    settings.KMS_GRANT_REVOCATION_PROPAGATION = "delayed"
    app_kms = kms_client(app_user)
    admin_kms.revoke_grant(KeyId=arn, GrantId=revoked["GrantId"])
    admin_kms.retire_grant(GrantToken=retired["GrantToken"])

    # Gone for callers at once: not listed, its id unknown, its token refused...
    assert admin_kms.list_grants(KeyId=arn)["Grants"] == []
    assert (
        error_of(lambda: admin_kms.revoke_grant(KeyId=arn, GrantId=revoked["GrantId"]))[0]
        == "NotFoundException"
    )
    code, _ = error_of(
        lambda: app_kms.create_grant(
            KeyId=arn, GranteePrincipal=child.arn, Operations=DESCRIBE, GrantTokens=[revoked["GrantToken"]]
        )
    )
    assert code == "InvalidGrantTokenException"
    # ...but, as on AWS, the grants still allow until a worker has removed them.
    assert app_kms.describe_key(KeyId=arn)["KeyMetadata"]["Arn"] == arn
    # The worker starts only now: on a slow machine the checks above could take longer than the 2 s delay.
    grant_worker.start(KMS_GRANT_PROPAGATION_SECONDS="2", KMS_GRANT_REVOCATION_PROPAGATION="delayed")
    grant_worker.wait_for(lambda: not Grant.objects.exists())
    assert error_of(lambda: app_kms.describe_key(KeyId=arn))[0] == DENIED
    for grant in (revoked, retired):
        [event] = propagation_events(grant["GrantId"])
        assert event.response_elements == {"GrantId": grant["GrantId"], "Change": "removed"}


def test_propagation_is_idempotent_and_sweeps_race_safely(
    settings: Any,
    grant_worker: GrantWorker,
    admin_kms: Any,
    key_arn: Callable[..., str],
    make_user: Callable[..., Persona],
) -> None:
    settings.KMS_GRANT_PROPAGATION_SECONDS = 60
    arn = key_arn()
    app_user = make_user("app")
    grant_ids = [
        admin_kms.create_grant(KeyId=arn, GranteePrincipal=app_user.arn, Operations=DESCRIBE)["GrantId"]
        for _ in range(6)
    ]
    first = grant_ids[0]
    assert grant_propagate(grant_id=first) is None  # not due yet
    assert grants_propagate_due().processed == 0
    later = timezone.now() + timedelta(seconds=61)
    assert grant_propagate(grant_id=first, now=later) == "effective"
    assert grant_propagate(grant_id=first, now=later) is None
    assert grant_propagate(grant_id="ab" * 32, now=later) is None  # a grant that is gone
    assert len(propagation_events(first)) == 1

    results: list[int] = []

    def sweep() -> None:
        try:
            results.append(grants_propagate_due(now=later).processed)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(results) == len(grant_ids) - 1 and len(results) == 2
    assert not Grant.objects.filter(effective_at__isnull=True).exists()
    assert AuditEvent.objects.filter(operation="PropagateGrant").count() == len(grant_ids)
    runs = JobRun.objects.filter(job=PROPAGATION_SWEEP_JOB, finished_at__isnull=False)
    assert runs.count() == 3 and all(run.error == "" for run in runs)
    call_command("audit", "verify", stdout=io.StringIO())  # the hash chain holds


def test_a_broker_that_is_down_costs_a_delay_not_the_grant(
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    admin_kms: Any,
    key_arn: Callable[..., str],
    make_user: Callable[..., Persona],
    kms_client: Any,
) -> None:
    settings.KMS_GRANT_PROPAGATION_SECONDS = 1

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(propagate_grant, "apply_async", refuse)
    arn = key_arn()
    app_user = make_user("app")
    grant_id = admin_kms.create_grant(KeyId=arn, GranteePrincipal=app_user.arn, Operations=DESCRIBE)[
        "GrantId"
    ]
    assert Grant.objects.filter(grant_id=grant_id, effective_at__isnull=True).exists()
    assert grants_propagate_due(now=timezone.now() + timedelta(seconds=2)).processed == 1
    assert kms_client(app_user).describe_key(KeyId=arn)["KeyMetadata"]["Arn"] == arn


def test_the_task_retries_transient_database_errors_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def flaky(*, grant_id: str) -> None:
        calls.append(grant_id)
        try:
            raise OperationalError("database is locked")
        except OperationalError as exc:
            # How perform() hands a database failure on: wrapped in KMSInternalException.
            raise errors.KMSInternalException("An internal error occurred. Retry the request.") from exc

    monkeypatch.setattr(tasks, "grant_propagate", flaky)
    result = propagate_grant.apply(args=("ab" * 32,))
    assert result.state == "FAILURE" and len(calls) == 1 + tasks.MAX_RETRIES

    def broken(*, grant_id: str) -> None:
        calls.append(grant_id)
        raise errors.KMSInternalException("not transient")

    calls.clear()
    monkeypatch.setattr(tasks, "grant_propagate", broken)
    assert propagate_grant.apply(args=("ab" * 32,)).state == "FAILURE" and len(calls) == 1


def test_beat_runs_the_sweeper_every_few_seconds(settings: Any) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["propagate-due-grants"]
    assert entry == {"task": "grants.tasks.propagate_due_grants", "schedule": 5.0}
    assert {propagate_due_grants.name, propagate_grant.name} <= set(app.tasks)
    assert propagate_grant.acks_late and propagate_due_grants.acks_late
