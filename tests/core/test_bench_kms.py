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
    # Twelve measured, and each of the three threads warmed up with two.
    assert audited.filter(caller_arn__endswith=":user/kms-bench").count() == 18


def test_bench_kms_inprocess_refuses_a_run_whose_requests_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap refusals (a bad signature here; a quota's throttling in practice) must not pass for a fast path."""
    from django.core.management.base import CommandError

    from kmsconsole.bench import inprocess

    signed = inprocess.prepared_requests

    def with_a_wrong_signature(op: str, **options: Any) -> Any:
        requests = []
        for environ, body in signed(op, **options):
            header = environ["HTTP_AUTHORIZATION"]
            wrong = header[:-1] + ("1" if header[-1] == "0" else "0")
            requests.append(({**environ, "HTTP_AUTHORIZATION": wrong}, body))
        return requests

    monkeypatch.setattr(inprocess, "prepared_requests", with_a_wrong_signature)
    with pytest.raises(CommandError, match="Not every request succeeded"):
        call_command("bench", "kms-inprocess", requests=4, threads=2, warmup_requests=0, stdout=io.StringIO())


def test_a_failing_thread_fails_the_run() -> None:
    from kmsconsole.bench.inprocess import run_in_process

    calls = []

    def application(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append(environ["PATH_INFO"])
        if len(calls) == 3:
            raise RuntimeError("the application failed")
        start_response("200 OK", [])
        return [b"{}"]

    with pytest.raises(RuntimeError, match="the application failed"):
        run_in_process(application, [({"PATH_INFO": "/"}, b"")], count=6, threads=2, warmup=1)
