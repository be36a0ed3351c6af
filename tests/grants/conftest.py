"""Fixtures for grants: personas of this account and of a partner account, key factories, boto3 helpers, and a
real Celery worker on a queue of the test's own.

Most tests run with KMS_GRANT_PROPAGATION_SECONDS=0 (grants effective at once), so they test the rules; the
propagation tests set it back above 0 and let a worker (or the sweeper) make grants effective.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from botocore.exceptions import ClientError

from grants.tasks import propagate_grant
from kmsconsole.audit.models import AuditEvent
from kmsconsole.celery import app
from tests.conftest import Persona, WorkerProcesses

ACCOUNT = "111122223333"
PARTNER = "444455556666"
DENIED = "AccessDeniedException"


def error_of(send: Callable[[], Any]) -> tuple[str, str]:
    """The (code, message) of a call that must fail."""
    with pytest.raises(ClientError) as raised:
        send()
    error = raised.value.response["Error"]
    return error["Code"], error.get("Message", "")


def last_event(operation: str) -> AuditEvent:
    event = AuditEvent.objects.filter(operation=operation).order_by("-seq").first()
    assert event is not None, f"no {operation} event"
    return event


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: str, *actions: str, sid: str = "Allow", **extra: Any) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": list(actions),
        "Resource": "*",
    }


ROOT = allow(f"arn:aws:iam::{ACCOUNT}:root", "kms:*", sid="Enable IAM User Permissions")


def identity_policy(*actions: str, resource: str = "*", effect: str = "Allow") -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": effect, "Action": list(actions), "Resource": resource}],
        }
    )


@pytest.fixture(autouse=True)
def grants_take_effect_at_once(settings: Any) -> None:
    settings.KMS_GRANT_PROPAGATION_SECONDS = 0
    settings.KMS_GRANT_REVOCATION_PROPAGATION = "immediate"


@pytest.fixture
def admin_kms(kms_client: Callable[..., Any], admin: Persona) -> Any:
    return kms_client(admin)


@pytest.fixture
def key_arn(admin_kms: Any) -> Callable[..., str]:
    """Create a key as the admin (default key policy unless `Policy` is given); returns its ARN."""

    def make(**params: Any) -> str:
        return str(admin_kms.create_key(**params)["KeyMetadata"]["Arn"])

    return make


@dataclass
class GrantWorker:
    """A real Celery worker (the suite's shared `real_worker`) that this test's propagation tasks are routed to:
    the live server runs in this process, so its tasks go to the worker's queue, which no other test consumes."""

    workers: WorkerProcesses

    @property
    def queue(self) -> str:
        return self.workers.queue

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        return self.workers.start(threads=1, **env)

    def purge(self) -> int:
        """Drop every message waiting in this test's queue (what a flushed Redis does to it)."""
        with app.connection_for_write() as conn:
            return int(conn.default_channel.queue_purge(self.queue) or 0)

    def wait_for(self, done: Callable[[], bool], *, seconds: float = 45) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            for worker in self.workers.processes:
                assert worker.poll() is None, self.workers.output()
            assert time.monotonic() < deadline, "the worker did not finish in time"
            time.sleep(0.2)


@pytest.fixture
def grant_worker(real_worker: WorkerProcesses, monkeypatch: pytest.MonkeyPatch) -> Iterator[GrantWorker]:
    worker = GrantWorker(real_worker)
    monkeypatch.setattr(
        propagate_grant, "apply_async", partial(propagate_grant.apply_async, queue=worker.queue)
    )
    yield worker
    real_worker.stop()
    worker.purge()  # messages due after the test must not wait in the broker for some future worker
