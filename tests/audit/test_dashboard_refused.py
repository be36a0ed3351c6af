"""A query the audit dashboard refuses (a filter that is not one, a page link that is not one, a scope that is not
one) is refused inside its operation, as the REST API refuses a bad filter: one event per request, failed with
ValidationException, or denied with AccessDeniedException for a caller who may not read at all, with the request's
parameters as they came (a page position only as RECORDED_CURSOR). The page still answers in words, 400."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db.models import Max
from django.test import Client
from django.utils import timezone

from kmsconsole.audit.models import AuditEvent
from kmsconsole.core.pagination import RECORDED_CURSOR
from tests.audit.dashboard_support import ALICE, add
from tests.conftest import Persona

pytestmark = pytest.mark.django_db

GARBAGE_CURSOR = "garbage-0x5eed"


@dataclass(frozen=True)
class Reader:
    """One of the console's readers of the trail: its URL, operation, and how its event records the query."""

    name: str
    url: str
    operation: str
    fmt: str = ""

    def recorded(self, query: dict[str, str]) -> dict[str, Any]:
        return {"Format": self.fmt, "Filters": query} if self.fmt else {"Query": query}


TRAIL = Reader("trail", "/console/audit/", "kmsconsole:ListAuditEvents")
CSV = Reader("csv", "/console/audit/export.csv", "kmsconsole:ExportAuditEvents", "csv")
JSONL = Reader("jsonl", "/console/audit/export.jsonl", "kmsconsole:ExportAuditEvents", "jsonl")
READERS = [pytest.param(reader, id=reader.name) for reader in (TRAIL, CSV, JSONL)]

# (what is wrong, the query, what the page says, what the event's message says)
BAD_QUERIES = [
    pytest.param(
        {"since": "yesterday", "range": "7d", "decision": "denied"},
        "Enter a valid date/time.",
        "From: Enter a valid date/time.",
        id="bad-date",
    ),
    pytest.param(
        {"source_ip": "10.0.0.999", "range": "7d"},
        "Give an IPv4 or IPv6 address, e.g. 10.0.0.1.",
        "Source IP: Give an IPv4 or IPv6 address, e.g. 10.0.0.1.",
        id="bad-address",
    ),
    pytest.param(
        {"before": GARBAGE_CURSOR, "range": "7d", "principal": ALICE},
        "That page link is not valid any more; start from the newest events.",
        "That page link is not valid any more; start from the newest events.",
        id="bad-cursor",
    ),
]


def last_seq() -> int:
    return AuditEvent.objects.aggregate(last=Max("seq"))["last"] or 0


def events_after(seq: int) -> list[AuditEvent]:
    """Every event the chain gained after `seq`, whatever its operation or interface."""
    return list(AuditEvent.objects.filter(seq__gt=seq).order_by("seq"))


def as_recorded(query: dict[str, str]) -> dict[str, str]:
    return {name: RECORDED_CURSOR if name in ("before", "after") else value for name, value in query.items()}


def assert_no_cursor_value(event: AuditEvent) -> None:
    stored = json.dumps([event.request_parameters, event.error_message, event.reason])
    assert GARBAGE_CURSOR not in stored, "a page position is never recorded as it came"


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(("query", "shown", "message"), BAD_QUERIES)
def test_a_refused_query_is_a_400_in_words_and_one_failed_event(
    console: Callable[..., Client],
    admin: Persona,
    reader: Reader,
    query: dict[str, str],
    shown: str,
    message: str,
) -> None:
    client = console(admin)
    seq = last_seq()
    response = client.get(reader.url, query)
    assert response.status_code == 400
    body = response.content.decode()
    assert shown in body
    (event,) = events_after(seq)
    assert (event.operation, event.interface, event.caller_arn) == (reader.operation, "console", admin.arn)
    assert (event.decision, event.error_code) == ("failed", "ValidationException")
    assert event.error_message == message
    assert event.request_parameters == reader.recorded(as_recorded(query))
    assert_no_cursor_value(event)
    if reader is TRAIL:
        # The trail's own page, the filters kept as they were typed.
        assert 'aria-label="Side of the trail"' in body
        for name, value in query.items():
            if name != "before":
                assert f'value="{value}"' in body or f'<option value="{value}" selected>' in body, name


@pytest.mark.parametrize(("query", "shown", "message"), BAD_QUERIES)
def test_the_htmx_partial_of_a_refused_query_is_a_400_with_one_failed_event(
    console: Callable[..., Client], admin: Persona, query: dict[str, str], shown: str, message: str
) -> None:
    client = console(admin)
    seq = last_seq()
    response = client.get(TRAIL.url, query, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert response.templates[0].name == "console/_partials/audit_results.html"
    body = response.content.decode()
    # The results only: a page link's error in them; a filter's beside its field, which the results point to.
    assert (shown if "before" in query else "Some filters need fixing: see the messages beside them.") in body
    (event,) = events_after(seq)
    assert (event.operation, event.decision, event.error_code) == (
        TRAIL.operation,
        "failed",
        "ValidationException",
    )
    assert event.error_message == message


def test_every_problem_of_one_request_is_one_event_and_each_is_shown(
    console: Callable[..., Client], admin: Persona
) -> None:
    query = {"scope": "everyone", "since": "yesterday", "source_ip": "nope", "before": GARBAGE_CURSOR}
    client = console(admin)
    seq = last_seq()
    response = client.get(TRAIL.url, query)
    assert response.status_code == 400
    body = response.content.decode()
    assert (
        "Choose one side of the trail: scope must be one of caller, key-owner, not &#x27;everyone&#x27;."
        in body
    )
    assert "Enter a valid date/time." in body
    assert "Give an IPv4 or IPv6 address, e.g. 10.0.0.1." in body
    assert "That page link is not valid any more" in body
    (event,) = events_after(seq)
    assert (event.operation, event.decision, event.error_code) == (
        TRAIL.operation,
        "failed",
        "ValidationException",
    )
    assert event.error_message == (
        "scope must be one of caller, key-owner, not 'everyone'. From: Enter a valid date/time. "
        "Source IP: Give an IPv4 or IPv6 address, e.g. 10.0.0.1. "
        "That page link is not valid any more; start from the newest events."
    )
    assert event.request_parameters == {"Query": as_recorded(query)}
    assert_no_cursor_value(event)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(
    "query",
    [
        pytest.param({"since": "yesterday"}, id="bad-date"),
        pytest.param({"source_ip": "10.0.0.999"}, id="bad-address"),
        pytest.param({"before": GARBAGE_CURSOR}, id="bad-cursor"),
        pytest.param({"scope": "everyone"}, id="bad-scope"),
    ],
)
def test_a_caller_who_may_not_read_is_refused_first_and_the_denial_is_one_event(
    console: Callable[..., Client], outsider: Persona, reader: Reader, query: dict[str, str]
) -> None:
    secret = add(caller_arn=ALICE)
    client = console(outsider)
    seq = last_seq()
    response = client.get(reader.url, query)
    assert response.status_code == 403
    body = response.content.decode()
    assert "Refused." in body and reader.operation in body
    assert ALICE not in body and str(secret.event_id) not in body
    (event,) = events_after(seq)
    assert (event.operation, event.interface, event.caller_arn) == (reader.operation, "console", outsider.arn)
    assert (event.decision, event.error_code) == ("denied", "AccessDeniedException")
    assert event.request_parameters == reader.recorded(as_recorded(query))
    assert_no_cursor_value(event)


@pytest.mark.parametrize("reader", READERS)
def test_a_well_formed_query_is_still_one_allowed_event(
    console: Callable[..., Client], admin: Persona, reader: Reader
) -> None:
    add(caller_arn=ALICE, time=timezone.now() - timedelta(hours=2))
    # A page link that is one: the trail records its position as the placeholder; an export does not use it.
    cursor = f"{int(timezone.now().timestamp() * 1_000_000)}.{last_seq() + 1}"
    client = console(admin)
    seq = last_seq()
    response = client.get(reader.url, {"range": "7d", "principal": ALICE, "before": cursor})
    assert response.status_code == 200
    if reader is not TRAIL:
        b"".join(response.streaming_content)
    (event,) = events_after(seq)
    assert (event.operation, event.decision, event.error_code) == (reader.operation, "allowed", "")
    recorded = event.request_parameters["Filters" if reader.fmt else "Query"]
    assert recorded["principal"] == ALICE
    assert cursor not in json.dumps(event.request_parameters)
    if reader is TRAIL:
        assert recorded["Before"] == RECORDED_CURSOR
