"""A worker killed in the middle of a task (issue 10, Faults).

KEYS keys are scheduled for deletion (a 7-day window lasting 7 seconds, KMS_DAY_SECONDS=1) through a real web server
on a private cluster and Redis. Once all are due, a Celery worker (prefork, concurrency 2, as `serve` starts it)
runs the deletion sweep; after it has destroyed a few keys the worker's whole process group is SIGKILLed, as an
OOM kill or a lost host would end it: no warm shutdown, no acknowledgement, a transaction cut off mid-way.

A new worker then runs the sweep twice at once (beat's next tick and a duplicate). Every due key is destroyed
exactly once: one tombstone and one DeleteKey audit event each, none left pending; the killed run's JobRun stays
as it died (started, never finished), the later runs finish without error and their counts add up to exactly the
keys the killed run did not destroy; and the audit chain verifies.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.faults.conftest import World, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

KEYS = 150
JOB = "destroy-due-keys"


def test_worker_killed_mid_sweep(world: World) -> None:
    world.start_redis()
    world.web_server()
    first = world.celery_worker("first")
    clients = [world.client() for _ in range(4)]

    def make_doomed_key(index: int) -> str:
        client = clients[index % len(clients)]
        key_id = client.create_key(Description=f"doomed {index}")["KeyMetadata"]["KeyId"]
        client.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
        return str(key_id)

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        doomed = set(pool.map(make_doomed_key, range(KEYS)))
    all_due_at = time.monotonic() + 7.5
    wait_until(lambda: "ready." in first.output(), timeout=60, what="the first worker ready")
    time.sleep(max(0.0, all_due_at - time.monotonic()))

    def destroyed() -> int:
        return int(world.scalar("SELECT count(*) FROM keys_deletedkey"))

    world.send_task("keys.tasks.destroy_due_keys")
    wait_until(lambda: destroyed() >= 10, timeout=60, interval=0.01, what="the sweep under way")
    first.kill()
    destroyed_by_killed_run = destroyed()
    assert 0 < destroyed_by_killed_run < KEYS, "the sweep was not interrupted mid-way; raise KEYS"
    killed_runs = world.query("SELECT id, processed, finished_at, error FROM jobs_jobrun WHERE job = %s", JOB)

    second = world.celery_worker("second")
    wait_until(lambda: "ready." in second.output(), timeout=60, what="the second worker ready")
    killed_at = time.monotonic()
    world.send_task("keys.tasks.destroy_due_keys")
    world.send_task("keys.tasks.destroy_due_keys")
    wait_until(lambda: destroyed() >= KEYS, timeout=60, what="every due key destroyed")
    wait_until(
        lambda: (
            world.scalar("SELECT count(*) FROM jobs_jobrun WHERE job = %s AND finished_at IS NOT NULL", JOB)
            >= 2
        ),
        timeout=30,
        what="both sweeps after the kill finished",
    )
    runs = world.query(
        "SELECT id, processed, finished_at IS NOT NULL, error FROM jobs_jobrun WHERE job = %s", JOB
    )
    report = {
        "keys": KEYS,
        "destroyed_before_kill": destroyed_by_killed_run,
        "finished_after_new_worker_s": round(time.monotonic() - killed_at, 1),
        "runs": [{"processed": p, "finished": f, "error": e} for _, p, f, e in runs],
    }
    print("worker killed:", json.dumps(report))

    # Exactly once: every doomed key has one tombstone and one DeleteKey event, and none is left.
    tombstones = dict(world.query("SELECT key_id::text, count(*) FROM keys_deletedkey GROUP BY key_id"))
    assert set(tombstones) == doomed and set(tombstones.values()) == {1}, report
    assert world.scalar("SELECT count(*) FROM keys_key WHERE state = 'PendingDeletion'") == 0
    events = dict(
        world.query(
            "SELECT key_arn, count(*) FROM audit_auditevent WHERE operation = 'DeleteKey' AND decision = 'allowed' "
            "GROUP BY key_arn"
        )
    )
    assert len(events) == KEYS and set(events.values()) == {1}, report
    assert {arn.rsplit("/", 1)[1] for arn in events} == doomed
    assert (
        world.scalar(
            "SELECT count(*) FROM audit_auditevent WHERE operation = 'DeleteKey' AND decision <> 'allowed'"
        )
        == 0
    )

    # JobRun: the killed run is left as it died, started and never finished; the later runs account for the rest.
    [(killed_id, killed_processed, killed_finished, _)] = killed_runs
    assert killed_processed == 0 and killed_finished is None
    later = [
        (processed, finished, error) for run_id, processed, finished, error in runs if run_id != killed_id
    ]
    assert len(later) == 2 and all(finished and not error for _, finished, error in later), report
    assert sum(processed for processed, _, _ in later) == KEYS - destroyed_by_killed_run, report

    verified = world.manage("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
