"""PostgreSQL restarted during a load run (issue 10, Faults).

`manage.py serve` (2 granian processes with 8 threads each, a Celery worker and beat) runs on a private cluster; four
boto3 clients (no retries, 2 s connect and 5 s read timeouts) Encrypt and Decrypt in a loop while the cluster is
stopped (fast shutdown, which also ends every open connection) and started again a few seconds later.

While it is down, each failed request is a JSON AWS error that botocore's standard retry mode would retry, answered
well within the timeout: never an HTML page, a stack trace, a dropped connection or a hang. Once it is back every
process reconnects by itself within a bounded time, /readyz is green again, the service is still running, and the
audit trail has exactly one "allowed" event for each request that was answered 200, and none for the others.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.faults.conftest import World, wait_until
from tests.faults.load import JSON_CONTENT_TYPE, Load

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

DOWN_SECONDS = 4.0
# After PostgreSQL is accepting connections again, every thread must succeed within this many seconds.
RECOVERY_BOUND_SECONDS = 10.0
RETRYABLE_CODES = {"KMSInternalException", "DependencyTimeoutException", "ServiceUnavailableException"}


def test_postgres_restart_during_load(world: World) -> None:
    serve = world.serve(KMS_WEB_WORKERS="2")
    admin = world.client()
    key_id = admin.create_key(Description="fault load")["KeyMetadata"]["KeyId"]
    load = Load([world.client() for _ in range(4)], key_id, limit=90)
    load.start()
    try:
        wait_until(lambda: sum(o.ok for o in load.outcomes) >= 20, timeout=30, what="load warm-up")
        stopping = time.monotonic()
        world.postgres.stop("fast")
        down = time.monotonic()
        time.sleep(DOWN_SECONDS)
        status, readiness = world.get("/readyz")
        starting = time.monotonic()
        world.postgres.start()
        up = time.monotonic()  # pg_ctl saw it ready (it may have accepted connections a little earlier)

        def every_thread_succeeded_since_up() -> bool:
            return all(
                any(o.ok and o.started >= up and o.thread == t for o in load.outcomes)
                for t in range(len(load.clients))
            )

        wait_until(every_thread_succeeded_since_up, timeout=30, what="every client thread succeeding again")
        recovered = time.monotonic()
        time.sleep(2)  # steady state after recovery: these must all succeed
    finally:
        load.stop()

    outcomes = list(load.outcomes)
    summary = load.summary()
    failures = [o for o in outcomes if not o.ok]
    last_failure = max((o.finished for o in failures), default=up)
    report = {
        **summary,
        "down_for_s": round(up - stopping, 2),
        "recovered_after_up_s": round(recovered - up, 2),
        "last_failure_after_up_s": round(last_failure - up, 2),
        "slowest_failure_s": round(max((o.finished - o.started for o in failures), default=0), 3),
        "ok_while_down": sum(o.ok for o in outcomes if down <= o.started and o.finished <= starting),
        "slowest_ok_before_stop_s": round(
            max((o.finished - o.started for o in outcomes if o.ok and o.finished < stopping), default=0), 3
        ),
        "failures_started_before_stop": sum(o.started < stopping for o in failures),
    }
    print("postgres restart:", json.dumps(report))

    # The outage was felt: requests failed while the database was down.
    assert failures, report
    assert report["ok_while_down"] == 0, (
        report
    )  # nothing answered 200 without its audit event in the database
    assert status == 503 and readiness["checks"]["database"]["ok"] is False, readiness
    for failure in failures:
        # An AWS error in AWS's JSON shape, retryable by the SDK, answered quickly: never a hang, a dropped
        # connection, an HTML error page or a trace.
        assert failure.status >= 500, failure
        assert failure.error_code in RETRYABLE_CODES, failure
        assert failure.content_type == JSON_CONTENT_TYPE, failure
        assert failure.retryable, failure
        assert failure.request_id, failure
        assert "Traceback" not in failure.message and "<" not in failure.message, failure
        assert failure.finished - failure.started < 4.5, failure
        # Only because the database went away: a failure ends after the stop began (a request already in flight
        # then fails too, however long it had run), and starts before recovery was due.
        assert stopping <= failure.finished and failure.started <= up + RECOVERY_BOUND_SECONDS, failure
    assert recovered - up < RECOVERY_BOUND_SECONDS, report
    # Everything after recovery succeeded.
    assert all(o.ok for o in outcomes if o.started >= last_failure + 0.001), report

    # The whole service survived: web, worker and beat still run, and the worker's heartbeat makes /readyz green.
    assert serve.alive(), world.logs()
    world.wait_ready(serve, timeout=30)

    # Nothing lost, nothing extra: one allowed event per 200 answer, and no allowed event for a failed request.
    ok_ids = [o.request_id for o in outcomes if o.ok]
    failed_ids = {o.request_id for o in failures}
    assert len(set(ok_ids)) == len(ok_ids)
    rows = world.query(
        "SELECT request_id, count(*) FROM audit_auditevent WHERE decision = 'allowed' "
        "AND operation IN ('Encrypt', 'Decrypt') GROUP BY request_id"
    )
    allowed = dict(rows)
    assert set(allowed) == set(ok_ids), {
        "answered 200 without an event": sorted(set(ok_ids) - set(allowed))[:5],
        "event without a 200": sorted(set(allowed) - set(ok_ids))[:5],
    }
    assert all(count == 1 for count in allowed.values())
    assert not failed_ids & set(allowed)
    verified = world.manage("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
