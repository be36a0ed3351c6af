"""`manage.py bench kms` end to end, briefly: it sets up its own principal and key through the services, drives
the live server with SigV4-signed requests, and reports throughput with no errors. The real measurement runs
against `manage.py serve` (README, Benchmarks); this only proves the command works."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db(transaction=True)


def test_bench_kms_drives_the_endpoint_without_errors(live_server: Any) -> None:
    out = io.StringIO()
    call_command(
        "bench",
        "kms",
        endpoint=live_server.url,
        op="encrypt",
        concurrency=2,
        duration=2,
        warmup=0.3,
        json=True,
        stdout=out,
    )
    results = json.loads(out.getvalue())
    ours = results["kmsconsole"]
    assert ours["requests_per_second"] > 0
    assert ours["errors"] == {}
    assert ours["p50_ms"] > 0


@pytest.mark.parametrize("op", ["encrypt", "decrypt"])
def test_bench_kms_inprocess_runs_the_whole_request_path(op: str) -> None:
    """Each measured request is a real one: signed, authorized, done and audited (one event each)."""
    from kmsconsole.audit.models import AuditEvent

    out = io.StringIO()
    call_command(
        "bench", "kms-inprocess", op=op, requests=12, threads=3, warmup_requests=2, json=True, stdout=out
    )
    result = json.loads(out.getvalue())
    assert result["statuses"] == {"200 OK": 12}
    assert result["cpu_ms_per_request"] > 0 and result["threads"] == 3
    operation = {"encrypt": "Encrypt", "decrypt": "Decrypt"}[op]
    audited = AuditEvent.objects.filter(operation=operation, interface="kms", decision="allowed")
    assert audited.filter(caller_arn__endswith=":user/kms-bench").count() == 14  # with the warm-up
