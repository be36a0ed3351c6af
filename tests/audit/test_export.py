"""Exports of the filtered trail: CSV (safe to open in a spreadsheet) and JSON Lines (every field and the chain
hashes), streamed in chunks, refused without the permission, and audited themselves with their filters."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.http import StreamingHttpResponse
from django.test import Client
from django.utils import timezone

from kmsconsole.audit import export
from kmsconsole.audit.chain import link_hash
from kmsconsole.audit.models import AuditEvent
from tests.audit.dashboard_support import ALICE, BOB, KEY_1, KEY_2, append, event_values
from tests.conftest import Persona
from tests.console.conftest import audit_events

pytestmark = pytest.mark.django_db

CSV_URL = "/console/audit/export.csv"
JSONL_URL = "/console/audit/export.jsonl"
HOSTILE = {
    "user_agent": '=HYPERLINK("http://evil.example","click")',
    "error_message": "+1+cmd|' /C calc'!A0",
    "reason": "-2+3",
    "decided_by": "@SUM(A1)",
}


@pytest.fixture
def trail() -> list[AuditEvent]:
    start = timezone.now() - timedelta(days=3)
    rows = [
        event_values(time=start + timedelta(seconds=i), caller_arn=ALICE if i % 2 else BOB, key_arn=KEY_1)
        for i in range(30)
    ]
    rows.append(event_values(time=start + timedelta(seconds=40), caller_arn=ALICE, key_arn=KEY_2, **HOSTILE))
    append(rows)
    return list(AuditEvent.objects.filter(time__gte=start).order_by("seq"))


def body_of(response: Any) -> str:
    assert isinstance(response, StreamingHttpResponse), "exports stream"
    return b"".join(response.streaming_content).decode()


def test_csv_has_the_filtered_rows_and_defuses_formulas(
    console: Callable[..., Client], admin: Persona, trail: list[AuditEvent]
) -> None:
    response = console(admin).get(CSV_URL, {"range": "7d", "principal": ALICE})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-events-')
    rows = list(csv.DictReader(io.StringIO(body_of(response))))
    expected = [e for e in trail if e.caller_arn == ALICE]
    assert [int(r["seq"]) for r in rows] == [e.seq for e in expected], "oldest first, only the filtered"
    hostile = rows[-1]
    assert hostile["user_agent"] == "'" + HOSTILE["user_agent"]
    assert hostile["error_message"] == "'" + HOSTILE["error_message"]
    assert hostile["reason"] == "'-2+3" and hostile["decided_by"] == "'@SUM(A1)"
    assert json.loads(hostile["request_parameters"]) == {"KeyId": KEY_1}
    assert rows[0]["hash"] == expected[0].hash and rows[0]["prev_hash"] == expected[0].prev_hash


def test_jsonl_has_every_field_and_the_links_verify(
    console: Callable[..., Client], admin: Persona, trail: list[AuditEvent]
) -> None:
    response = console(admin).get(JSONL_URL, {"range": "7d", "key": KEY_1})
    assert response.status_code == 200 and response["Content-Type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in body_of(response).splitlines()]
    assert [r["seq"] for r in records] == [e.seq for e in trail if e.key_arn == KEY_1]
    assert set(records[0]) == set(export.EVENT_FIELDS)
    for record in records:
        values = export.record_values(record)
        # Exactly what was chained: each record re-hashes to its own hash.
        assert link_hash(record["prev_hash"], values) == record["hash"]


def test_the_export_is_audited_with_its_filters(
    console: Callable[..., Client], admin: Persona, trail: list[AuditEvent]
) -> None:
    body_of(console(admin).get(CSV_URL, {"range": "7d", "decision": "allowed", "key": KEY_2}))
    (event,) = audit_events("kmsconsole:ExportAuditEvents")
    assert (event.caller_arn, event.decision) == (admin.arn, "allowed")
    params = event.request_parameters
    assert params["Format"] == "csv"
    assert params["Filters"]["decision"] == "allowed" and params["Filters"]["key"] == KEY_2
    assert "since" in params["Filters"]


def test_refused_without_the_permission_and_nothing_is_exported(
    console: Callable[..., Client], outsider: Persona, trail: list[AuditEvent]
) -> None:
    for url in (CSV_URL, JSONL_URL):
        response = console(outsider).get(url, {"range": "all"})
        assert response.status_code == 403
        assert ALICE not in response.content.decode()
    assert {e.decision for e in audit_events("kmsconsole:ExportAuditEvents")} == {"denied"}


def test_bad_filters_are_a_400_in_words_and_a_name_of_nothing_exports_nothing(
    console: Callable[..., Client], admin: Persona
) -> None:
    response = console(admin).get(CSV_URL, {"account": "nope"})
    assert response.status_code == 400 and "An account id is 12 digits." in response.content.decode()
    response = console(admin).get(JSONL_URL, {"key": "not-a-key"})
    assert response.status_code == 400 and "Give a key id, a key ARN" in response.content.decode()
    assert [(e.decision, e.error_code) for e in audit_events("kmsconsole:ExportAuditEvents")] == [
        ("failed", "ValidationException")
    ] * 2
    # A well-formed alias that does not exist: an allowed export of no events (AWS-like), not a refusal.
    response = console(admin).get(JSONL_URL, {"key": "alias/missing"})
    assert isinstance(response, StreamingHttpResponse) and response.status_code == 200
    assert b"".join(response.streaming_content) == b""
    assert audit_events("kmsconsole:ExportAuditEvents")[-1].decision == "allowed"


def test_rows_are_read_in_chunks_and_written_as_they_come(trail: list[AuditEvent], monkeypatch: Any) -> None:
    """Constant memory: the query is iterated in chunks (a server-side cursor on PostgreSQL), and lines leave in
    blocks before the last row is read."""
    chunk_sizes: list[int] = []
    real_iterator = type(AuditEvent.objects.all()).iterator

    def spy(self: Any, chunk_size: int | None = None) -> Any:
        chunk_sizes.append(chunk_size or 0)
        return real_iterator(self, chunk_size=chunk_size)

    monkeypatch.setattr(type(AuditEvent.objects.all()), "iterator", spy)
    blocks = export.batched(
        export.jsonl_lines(export.event_rows(AuditEvent.objects.order_by("seq"))), size=1024
    )
    first = next(blocks)
    assert chunk_sizes == [export.CHUNK]
    assert first.count(b"\n") < len(trail), "the first block leaves before every row is read"
    rest = b"".join(blocks)
    assert (first + rest).count(b"\n") == AuditEvent.objects.count()


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("plain", "plain"),
        (None, ""),
        (7, "7"),
        ({"b": 1, "a": "=x"}, '{"a":"=x","b":1}'),
    ],
)
def test_safe_cell(value: Any, cell: str) -> None:
    assert export.safe_cell(value) == cell
