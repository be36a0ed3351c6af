"""A query the audit dashboard refuses (a filter that is not one, a key filter of the wrong shape, a page link that
is not one, a scope that is not one) is refused inside its operation, as the REST API refuses a bad filter: one
event per request, failed with ValidationException, or denied with AccessDeniedException for a caller who may not
read at all, recording what a well-formed read records (the form's fields, the scope, a page position only as
RECORDED_CURSOR). The page still answers in words, 400 (htmx: the results, 200, saying every problem). A
well-formed filter that names nothing is an allowed read of no events."""

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

from kmsconsole.api import reads
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.scope import Scope
from kmsconsole.core.pagination import RECORDED_CURSOR
from policies.models import Account
from tests.api.conftest import client_with, token_for
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
    pytest.param(
        {"after": GARBAGE_CURSOR, "range": "7d"},
        "That page link is not valid any more; start from the newest events.",
        "That page link is not valid any more; start from the newest events.",
        id="bad-after-cursor",
    ),
    # Filters refused for their shape once the form has them: a key id that is not one, another account's alias.
    pytest.param(
        {"key": "not-a-key", "range": "7d"},
        "Give a key id, a key ARN, an alias name (alias/...) or an alias ARN.",
        "Key: Give a key id, a key ARN, an alias name (alias/...) or an alias ARN.",
        id="not-a-key",
    ),
    pytest.param(
        {"key": "arn:aws:kms:us-east-1:999999999999:alias/x", "range": "7d"},
        "Aliases of another account cannot be looked up; give the key&#x27;s ARN.",
        "Key: Aliases of another account cannot be looked up; give the key's ARN.",
        id="another-accounts-alias",
    ),
]


def last_seq() -> int:
    return AuditEvent.objects.aggregate(last=Max("seq"))["last"] or 0


def events_after(seq: int) -> list[AuditEvent]:
    """Every event the chain gained after `seq`, whatever its operation or interface."""
    return list(AuditEvent.objects.filter(seq__gt=seq).order_by("seq"))


def as_recorded(query: dict[str, str]) -> dict[str, str]:
    """The query as a read records it: the form's fields as typed, the scope (the default too), a page link's
    position only as the placeholder, under the names a well-formed read uses (Before, After)."""
    cursors = {"before": "Before", "after": "After"}
    recorded = {name: value for name, value in query.items() if name not in cursors}
    recorded.setdefault("scope", "caller")
    recorded.update({cursors[name]: RECORDED_CURSOR for name in cursors if query.get(name)})
    return recorded


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
    assert GARBAGE_CURSOR not in body, "a page position is not sent back either"
    if reader is TRAIL:
        # The trail's own page, the filters kept as they were typed.
        assert 'aria-label="Side of the trail"' in body
        for name, value in query.items():
            if name not in ("before", "after"):
                assert f'value="{value}"' in body or f'<option value="{value}" selected>' in body, name


@pytest.mark.parametrize(("query", "shown", "message"), BAD_QUERIES)
def test_the_htmx_partial_of_a_refused_query_shows_every_problem_with_one_failed_event(
    console: Callable[..., Client], admin: Persona, query: dict[str, str], shown: str, message: str
) -> None:
    """htmx swaps only successful answers (its default response handling): the results it asked for come as a
    200 that says every problem in words (the filters beside them are not swapped), as the key list's do; the
    event still records the failure."""
    client = console(admin)
    seq = last_seq()
    response = client.get(TRAIL.url, query, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.templates[0].name == "console/_partials/audit_results.html"
    assert "HX-Request" in response["Vary"]
    body = response.content.decode()
    assert shown in body and GARBAGE_CURSOR not in body
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
        pytest.param({"after": GARBAGE_CURSOR}, id="bad-after-cursor"),
        pytest.param({"scope": "everyone"}, id="bad-scope"),
        pytest.param({"key": "not-a-key"}, id="not-a-key"),
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
    seeded = add(caller_arn=ALICE, time=timezone.now() - timedelta(hours=2))
    # A page link that is one: the trail records its position as the placeholder; an export does not use it.
    cursor = f"{int(timezone.now().timestamp() * 1_000_000)}.{last_seq() + 1}"
    client = console(admin)
    seq = last_seq()
    response = client.get(reader.url, {"range": "7d", "principal": ALICE, "before": cursor})
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if reader is not TRAIL else response.content
    assert str(seeded.event_id).encode() in body, "the page (or the export) has the event"
    (event,) = events_after(seq)
    assert (event.operation, event.decision, event.error_code) == (reader.operation, "allowed", "")
    recorded = event.request_parameters["Filters" if reader.fmt else "Query"]
    assert recorded["principal"] == ALICE and recorded["scope"] == "caller"
    assert cursor not in json.dumps(event.request_parameters)
    if reader is TRAIL:
        assert recorded["Before"] == RECORDED_CURSOR


@pytest.mark.parametrize("reader", READERS)
def test_a_refused_query_records_what_a_valid_read_records(
    console: Callable[..., Client], admin: Persona, reader: Reader
) -> None:
    """The form's own fields as typed (nothing the form does not know), the scope (the default too), and a page
    link's position only as the placeholder, under the names a well-formed read records it."""
    query = {
        "since": "yesterday",
        "operation": "Decrypt",
        "before": GARBAGE_CURSOR,
        "utm_source": "mail",
        "csrfmiddlewaretoken": "not-a-filter",
    }
    client = console(admin)
    seq = last_seq()
    assert client.get(reader.url, query).status_code == 400
    (event,) = events_after(seq)
    assert event.request_parameters == reader.recorded(
        {"since": "yesterday", "operation": "Decrypt", "scope": "caller", "Before": RECORDED_CURSOR}
    )


def cut(text: str, limit: int = 256) -> dict[str, Any]:
    """`text` as an event records a long value typed in that was refused: its beginning and its whole length, as
    structured data (a value typed in is always a string, so none can pass for a cut one)."""
    return {"cut": text[:limit], "length": len(text)}


# A role's ARN longer than 256 characters, well formed (a role name of 64 characters under a long path).
LONG_ROLE_ARN = "arn:aws:iam::111122223333:role/" + "/".join(["p" * 40] * 6) + "/" + "r" * 64


@pytest.mark.parametrize("reader", READERS)
def test_a_refused_query_records_its_refused_fields_cut_and_its_good_fields_whole(
    console: Callable[..., Client], admin: Persona, reader: Reader
) -> None:
    """Only the request line bounds what a refused field carries: each is recorded cut at 256 characters, as
    structured data with its whole length. A field the form took is recorded whole, as a well-formed read records
    it, however long it may be (up to its own max_length), even beside a refused one."""
    assert len(LONG_ROLE_ARN) > 300
    query = {
        "key": "k" * 5000,  # refused (not a key filter, and longer than one may be)
        "principal": LONG_ROLE_ARN,  # well formed, but long
        "since": "9" * 400,  # not a date
        "scope": "s" * 3000,  # not a scope
        "operation": "Decrypt",
        "notable": "n" * 128,
        "context_key": "x... (5000 characters)",  # typed to look like the old marker: a string, recorded as one
    }
    client = console(admin)
    seq = last_seq()
    assert client.get(reader.url, query).status_code == 400
    (event,) = events_after(seq)
    assert (event.decision, event.error_code) == ("failed", "ValidationException")
    assert event.request_parameters == reader.recorded(
        {
            "key": cut("k" * 5000),
            "principal": LONG_ROLE_ARN,
            "since": cut("9" * 400),
            "scope": cut("s" * 3000),
            "operation": "Decrypt",
            "notable": "n" * 128,
            "context_key": "x... (5000 characters)",
        }
    )
    assert len(json.dumps(event.request_parameters)) < 2000


def test_a_well_formed_query_records_a_long_filter_whole(
    console: Callable[..., Client], admin: Persona
) -> None:
    """A read the form takes records its filters as it always did, however long they may be."""
    value = "v" * 1000
    client = console(admin)
    seq = last_seq()
    response = client.get(
        TRAIL.url, {"context_key": "team", "context_value": value, "principal": LONG_ROLE_ARN}
    )
    assert response.status_code == 200
    (event,) = events_after(seq)
    assert event.decision == "allowed"
    assert event.request_parameters["Query"]["context_value"] == value
    assert event.request_parameters["Query"]["principal"] == LONG_ROLE_ARN


def test_the_event_page_shows_a_cut_value_as_what_it_is(
    console: Callable[..., Client], admin: Persona
) -> None:
    """The event's page shows its request parameters as JSON: a cut value is its beginning and its length."""
    client = console(admin)
    seq = last_seq()
    assert client.get(TRAIL.url, {"key": "k" * 5000}).status_code == 400
    (event,) = events_after(seq)
    page = client.get(f"/console/audit/events/{event.event_id}/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "&quot;cut&quot;: &quot;" + "k" * 256 + "&quot;" in text and "&quot;length&quot;: 5000" in text


@pytest.mark.parametrize("reader", [pytest.param(reader, id=reader.name) for reader in (CSV, JSONL)])
def test_every_problem_of_one_export_is_one_event(
    console: Callable[..., Client], admin: Persona, reader: Reader
) -> None:
    query = {"scope": "everyone", "since": "yesterday", "source_ip": "nope", "after": GARBAGE_CURSOR}
    client = console(admin)
    seq = last_seq()
    response = client.get(reader.url, query)
    assert response.status_code == 400
    body = response.content.decode()
    for shown in ("not &#x27;everyone&#x27;", "Enter a valid date/time.", "Give an IPv4", "That page link"):
        assert shown in body
    assert GARBAGE_CURSOR not in body
    (event,) = events_after(seq)
    assert (event.operation, event.decision, event.error_code) == (
        reader.operation,
        "failed",
        "ValidationException",
    )
    assert event.error_message.count(".") >= 4
    assert event.request_parameters == reader.recorded(as_recorded(query))
    assert_no_cursor_value(event)


@pytest.mark.parametrize("reader", READERS)
def test_the_key_owners_side_with_a_bad_field_is_one_failed_event_on_that_side(
    console: Callable[..., Client], admin: Persona, reader: Reader
) -> None:
    query = {"scope": "key-owner", "account": "12ab"}
    client = console(admin)
    seq = last_seq()
    response = client.get(reader.url, query)
    assert response.status_code == 400
    body = response.content.decode()
    assert "An account id is 12 digits." in body
    if reader is TRAIL:
        assert "Caller&#x27;s account" in body  # the key owner's side's form
    (event,) = events_after(seq)
    assert (event.decision, event.error_code) == ("failed", "ValidationException")
    assert event.error_message == "Caller's account: An account id is 12 digits."
    assert event.request_parameters == reader.recorded(query)


@pytest.mark.parametrize("field", ["range", "decision"])
def test_a_choice_that_is_not_offered_is_not_echoed(
    console: Callable[..., Client], admin: Persona, field: str
) -> None:
    garbage = "x" * 5000
    client = console(admin)
    seq = last_seq()
    response = client.get(TRAIL.url, {field: garbage})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Select one of the offered choices." in body
    assert body.count(garbage) <= 1, "the value stays in the form at most, never in a message"
    (event,) = events_after(seq)
    assert event.error_message.endswith("Select one of the offered choices.")
    assert garbage[:100] not in event.error_message and len(event.error_message) < 300


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(
    ("query", "note"),
    [
        pytest.param(
            {"key": "alias/no-such-alias"},
            "There is no alias alias/no-such-alias in account 111122223333",
            id="unknown-alias",
        ),
        pytest.param(
            {"principal": "nobody-here"},
            "There is no user or role named nobody-here in account 111122223333",
            id="unknown-user",
        ),
    ],
)
def test_a_well_formed_filter_naming_nothing_is_an_allowed_read_that_matches_nothing(
    console: Callable[..., Client], admin: Persona, reader: Reader, query: dict[str, str], note: str
) -> None:
    """As AWS answers a well-formed query that matches nothing: a successful read, with no events (the page says
    why), never a refusal."""
    seeded = add(caller_arn=ALICE, time=timezone.now() - timedelta(hours=1))
    client = console(admin)
    seq = last_seq()
    response = client.get(reader.url, {**query, "range": "7d"})
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if reader is not TRAIL else response.content
    assert str(seeded.event_id).encode() not in body
    if reader is TRAIL:
        assert note in body.decode() and "No events match these filters" in body.decode()
    (event,) = events_after(seq)
    assert (event.operation, event.decision, event.error_code) == (reader.operation, "allowed", "")
    recorded = event.request_parameters["Filters" if reader.fmt else "Query"]
    assert {name: recorded[name] for name in query} == query


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(("scope", "decided_through"), [("key-owner", "key-owner"), ("everyone", "caller")])
def test_a_refused_query_is_decided_through_the_scope_asked_for_when_it_is_one(
    console: Callable[..., Client],
    admin: Persona,
    monkeypatch: pytest.MonkeyPatch,
    reader: Reader,
    scope: str,
    decided_through: str,
) -> None:
    asked: list[str] = []
    real = reads.audit_events

    def spy(ctx: Any, scope: Any = Scope.CALLER) -> Any:
        asked.append(scope.value)
        return real(ctx, scope)

    monkeypatch.setattr(reads, "audit_events", spy)
    client = console(admin)
    assert client.get(reader.url, {"scope": scope, "since": "yesterday"}).status_code == 400
    assert asked == [decided_through]


# --- The REST API and the console refuse alike ----------------------------------------------------------------

API = "/api/v1/audit-events"


def api_client(persona: Persona) -> Client:
    return client_with(token_for(Account.objects.get(account_id=persona.arn.split(":")[4]), persona.name))  # type: ignore[no-any-return]


# (the console's query, the REST API's query) for the same mistake
PARITY = [
    pytest.param({"scope": "everyone"}, {"scope": "everyone"}, id="bad-scope"),
    pytest.param({"since": "yesterday"}, {"time_after": "yesterday"}, id="bad-date"),
    pytest.param({"before": GARBAGE_CURSOR}, {"cursor": GARBAGE_CURSOR}, id="bad-cursor"),
    pytest.param({"key": "not-a-key"}, {"key_arn": "not-a-key"}, id="not-a-key"),
]


@pytest.mark.parametrize(("console_query", "api_query"), PARITY)
@pytest.mark.parametrize(
    ("persona", "status", "decision", "code"),
    [
        pytest.param("admin", 400, "failed", "ValidationException", id="reader"),
        pytest.param("outsider", 403, "denied", "AccessDeniedException", id="non-reader"),
    ],
)
def test_the_rest_api_and_the_console_answer_a_refused_query_alike(
    console: Callable[..., Client],
    request: pytest.FixtureRequest,
    persona: str,
    status: int,
    decision: str,
    code: str,
    console_query: dict[str, str],
    api_query: dict[str, str],
) -> None:
    """Decided first (a caller who may not read is denied, whatever is wrong with the query), then refused with
    ValidationException: one event each, the same answer on both interfaces, a cursor never recorded."""
    who: Persona = request.getfixturevalue(persona)
    browser, api = console(who), api_client(who)
    seq = last_seq()
    on_console = browser.get(TRAIL.url, console_query)
    on_api = api.get(API, api_query)
    assert (on_console.status_code, on_api.status_code) == (status, status)
    assert on_api.json()["error"]["code"] == code
    assert GARBAGE_CURSOR not in on_api.content.decode() + on_console.content.decode()
    events = events_after(seq)
    assert [(e.interface, e.operation, e.decision, e.error_code) for e in events] == [
        ("console", TRAIL.operation, decision, code),
        ("api", TRAIL.operation, decision, code),
    ]
    for event in events:
        assert_no_cursor_value(event)
        assert event.request_parameters["Query"]["scope"] == console_query.get("scope", "caller")
    if "cursor" in api_query:
        assert events[1].request_parameters["Query"]["cursor"] == RECORDED_CURSOR
    if "scope" in api_query and persona == "admin":
        # One sentence for a scope that is not one, on both interfaces.
        assert events[0].error_message in json.dumps(on_api.json()["error"]), on_api.json()


def test_the_rest_api_records_a_refused_querys_long_values_cut_with_their_length(admin: Persona) -> None:
    """The REST API records the list's own parameters: a value longer than its filter takes (a refused one) is cut at
    that length, as structured data with its whole length; a short one is recorded whole. A name the list does not
    take is not recorded: the entry "(other parameters)" counts them (two long names alike are never confused)."""
    api = api_client(admin)
    seq = last_seq()
    response = api.get(
        API,
        {"key_arn": "k" * 5000, "x" * 300 + "1": "y" * 4000, "x" * 300 + "2": "z", "decision": "denied"},
    )
    assert response.status_code == 400
    (event,) = events_after(seq)
    assert (event.interface, event.decision, event.error_code) == ("api", "failed", "ValidationException")
    assert event.request_parameters["Query"] == {
        "key_arn": cut("k" * 5000, 2048),
        "(other parameters)": f"2 parameters, {301 + 4000 + 301 + 1} characters",
        "decision": "denied",
        "scope": "caller",
    }


def test_the_rest_api_records_how_many_other_parameters_not_each(admin: Persona) -> None:
    """However many parameters a list does not take a request carries, its event records one entry for them all:
    900 unknown parameters (a refused read: a list refuses what it does not take) are not 900 entries, and the
    400 names only the first few."""
    api = api_client(admin)
    seq = last_seq()
    query = {f"p{index:03}": "v" * 256 for index in range(900)}
    response = api.get(API, {**query, "decision": "denied"})
    assert response.status_code == 400
    assert list(response.json()["error"]["detail"]) == [f"p{index:03}" for index in range(10)]
    (event,) = events_after(seq)
    assert (event.decision, event.error_code) == ("failed", "ValidationException")
    assert event.request_parameters["Query"] == {
        "decision": "denied",
        "(other parameters)": f"900 parameters, {900 * (4 + 256)} characters",
        "scope": "caller",
    }
    assert len(json.dumps(event.request_parameters)) < 500


def test_the_rest_api_records_a_long_well_formed_filter_whole_and_refuses_one_too_long(
    admin: Persona,
) -> None:
    """A caller ARN up to the column's 2048 characters is a filter, recorded whole; a longer one is refused for its
    length (400, ValidationException), recorded cut at 2048."""
    api = api_client(admin)
    seq = last_seq()
    assert api.get(API, {"caller_arn": LONG_ROLE_ARN}).status_code == 200
    too_long = LONG_ROLE_ARN + "r" * 2048
    assert api.get(API, {"caller_arn": too_long}).status_code == 400
    allowed, refused = events_after(seq)
    assert (allowed.decision, refused.decision, refused.error_code) == (
        "allowed",
        "failed",
        "ValidationException",
    )
    assert allowed.request_parameters["Query"] == {"caller_arn": LONG_ROLE_ARN, "scope": "caller"}
    assert refused.request_parameters["Query"] == {"caller_arn": cut(too_long, 2048), "scope": "caller"}
