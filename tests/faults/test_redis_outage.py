"""Redis stopped under a running service (issue 10, Faults).

`manage.py serve` (granian, a Celery worker and beat) runs on a private Redis, which is killed for
OUTAGE_SECONDS and started again on the same port, empty: every message it held is gone.

While it is down, requests that only need the database keep working (an Encrypt/Decrypt load, all 200), and so do
the operations whose follow-up work is done by a worker, because the database is the source of truth: CreateGrant
answers at once (its propagation message cannot be sent; the grant token works meanwhile, the grant itself is not
yet in effect) and ScheduleKeyDeletion records its date. /readyz says the broker is down; no process exits.

When Redis is back, the worker and beat reconnect by themselves; beat's grant sweeper finds the grant by its columns
and makes it effective, and the deletion sweep (sent twice, as a duplicated beat tick) destroys the key once: one
tombstone, one DeleteKey event, one PropagateGrant event.

The outage lasts a minute, as the issue asks. The worker reconnects with kombu's backoff (2 s more per try, capped
at 30 s), so recovery can take up to that cap after Redis is back, which the bound below allows for.
"""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from tests.faults.conftest import ACCOUNT_ID, World, wait_until
from tests.faults.load import Load

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

OUTAGE_SECONDS = 60.0
RECOVERY_BOUND_SECONDS = 35.0
GRANTEE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/grantee"


def encrypt_denied(client, key_id: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        client.encrypt(KeyId=key_id, Plaintext=b"probe")
    except ClientError as error:
        if error.response["Error"]["Code"] == "AccessDeniedException":
            return True
        raise
    return False


def test_redis_outage(world: World) -> None:
    world.start_redis()
    serve = world.serve()
    admin, grantee = world.client(), world.client("grantee")
    key_id = admin.create_key(Description="used through the outage")["KeyMetadata"]["KeyId"]
    doomed = admin.create_key(Description="deleted through the outage")["KeyMetadata"]
    assert encrypt_denied(grantee, key_id)

    assert world.redis is not None
    load = Load([world.client() for _ in range(2)], key_id, limit=OUTAGE_SECONDS + 30)
    world.redis.stop()
    stopped = time.monotonic()
    load.start()
    try:
        wait_until(
            lambda: world.get("/readyz")[1].get("checks", {}).get("broker", {}).get("ok") is False,
            timeout=10,
            what="/readyz reporting the broker down",
        )
        started = time.monotonic()
        grant = admin.create_grant(
            KeyId=key_id, GranteePrincipal=GRANTEE_ARN, Operations=["Encrypt", "Decrypt"]
        )
        grant_seconds = time.monotonic() - started
        started = time.monotonic()
        scheduled = admin.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=7)
        schedule_seconds = time.monotonic() - started
        assert scheduled["KeyState"] == "PendingDeletion"
        # The grant token works at once; the grant itself waits for a worker, which cannot hear about it yet.
        grantee.encrypt(KeyId=key_id, Plaintext=b"with the token", GrantTokens=[grant["GrantToken"]])
        time.sleep(3)  # past the grant's propagation time (KMS_GRANT_PROPAGATION_SECONDS=2)
        assert encrypt_denied(grantee, key_id)
        time.sleep(max(0.0, stopped + OUTAGE_SECONDS - time.monotonic()))
        assert serve.alive(), world.logs()
        denied_at_end = encrypt_denied(grantee, key_id)
    finally:
        load.stop()
        world.redis.start()
    restarted = time.monotonic()

    # Back: the worker and beat reconnect (the heartbeat makes /readyz green), the sweeper propagates the grant.
    world.wait_ready(serve, timeout=RECOVERY_BOUND_SECONDS)
    ready_after = time.monotonic() - restarted
    wait_until(
        lambda: not encrypt_denied(grantee, key_id), timeout=RECOVERY_BOUND_SECONDS, what="grant in effect"
    )
    grant_after = time.monotonic() - restarted
    # The deletion sweep, as beat sends it every minute, twice (a duplicated or overlapping tick).
    world.send_task("keys.tasks.destroy_due_keys")
    world.send_task("keys.tasks.destroy_due_keys")
    wait_until(
        lambda: world.scalar("SELECT count(*) FROM keys_deletedkey WHERE key_id = %s", doomed["KeyId"]) > 0,
        timeout=RECOVERY_BOUND_SECONDS,
        what="the key destroyed",
    )
    deleted_after = time.monotonic() - restarted
    wait_until(
        lambda: (
            world.scalar(
                "SELECT count(*) FROM jobs_jobrun WHERE job = 'destroy-due-keys' AND finished_at IS NOT NULL"
            )
            >= 2
        ),
        timeout=30,
        what="both deletion sweeps finished",
    )
    report = {
        **load.summary(),
        "outage_s": round(restarted - stopped, 1),
        "create_grant_s": round(grant_seconds, 3),
        "schedule_deletion_s": round(schedule_seconds, 3),
        "ready_after_s": round(ready_after, 1),
        "grant_effective_after_s": round(grant_after, 1),
        "key_destroyed_after_s": round(deleted_after, 1),
    }
    print("redis outage:", json.dumps(report))

    # The database-only load never noticed; the enqueueing operations answered promptly.
    assert load.summary()["errors"] == {}, report
    assert load.summary()["ok"] > 0
    assert grant_seconds < 2 and schedule_seconds < 2, report
    assert denied_at_end, "the grant took effect without a worker while the broker was down"
    assert serve.alive(), world.logs()

    # Done exactly once: one tombstone and one DeleteKey event for the key, one PropagateGrant event for the grant.
    assert world.scalar("SELECT count(*) FROM keys_deletedkey WHERE key_id = %s", doomed["KeyId"]) == 1
    assert world.scalar("SELECT count(*) FROM keys_key WHERE key_id = %s", doomed["KeyId"]) == 0
    assert (
        world.scalar(
            "SELECT count(*) FROM audit_auditevent WHERE operation = 'DeleteKey' AND key_arn = %s "
            "AND decision = 'allowed'",
            doomed["Arn"],
        )
        == 1
    )
    runs = world.query(
        "SELECT processed, error, finished_at IS NOT NULL FROM jobs_jobrun WHERE job = 'destroy-due-keys'"
    )
    assert sum(processed for processed, _, _ in runs) == 1, runs
    assert all(finished and not error for _, error, finished in runs), runs
    assert world.scalar("SELECT count(*) FROM grants_grant WHERE grant_id = %s AND effective_at IS NOT NULL",
                        grant["GrantId"]) == 1  # fmt: skip
    propagations = world.scalar(
        "SELECT count(*) FROM audit_auditevent WHERE operation = 'PropagateGrant' AND decision = 'allowed' "
        "AND request_parameters->>'GrantId' = %s",
        grant["GrantId"],
    )
    assert propagations == 1
    # The propagation message was lost (said once in the log) and the sweeper made up for it.
    assert serve.output().count("Could not enqueue the propagation of grant") == 1, world.logs()
    verified = world.manage("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
