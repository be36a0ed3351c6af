"""A broker writer cannot steer the workers (THREAT_MODEL.md §8): remote control is off, so a `shutdown` or
`ping` broadcast reaches no worker, while the worker keeps consuming its tasks (the heartbeat the health page
reads)."""

from __future__ import annotations

import time

import pytest

from kmsconsole.celery import app
from kmsconsole.jobs.models import WorkerHeartbeat
from kmsconsole.jobs.tasks import heartbeat
from tests.conftest import WorkerProcesses

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def _heartbeat_from(workers: WorkerProcesses, after: float) -> None:
    """Send the heartbeat task to the test's worker and wait until it has recorded it."""
    started = time.time()
    heartbeat.apply_async(queue=workers.queue)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = WorkerHeartbeat.objects.filter(hostname__startswith=workers.queue).first()
        if seen is not None and seen.seen_at.timestamp() >= min(after, started) - 1:
            return
        assert all(worker.poll() is None for worker in workers.processes), "the worker stopped"
        time.sleep(0.2)
    raise AssertionError("the worker did not consume the heartbeat")


def test_workers_ignore_remote_control(real_worker: WorkerProcesses) -> None:
    worker = real_worker.start()
    _heartbeat_from(real_worker, 0)
    assert app.control.ping(timeout=2) == []  # no worker answers a broadcast
    app.control.broadcast("shutdown")
    time.sleep(2)
    assert worker.poll() is None
    WorkerHeartbeat.objects.all().delete()
    _heartbeat_from(real_worker, time.time())
