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
