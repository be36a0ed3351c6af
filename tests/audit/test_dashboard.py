"""The audit dashboard's pages: who may see them, what a read records, and bad input answered in words."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from kmsconsole.audit.models import AuditEvent, ChainVerification
from tests.audit.dashboard_support import ALICE, KEY_1, PARTNER_KEY, add
from tests.conftest import Persona
from tests.console.conftest import audit_events

pytestmark = pytest.mark.django_db

TRAIL = "/console/audit/"


@pytest.fixture
def seeded() -> AuditEvent:
    return add(
        operation="Decrypt", decision="denied", reason="denied: nothing", decided_by="", caller_arn=ALICE
    )


def page_urls(event: AuditEvent) -> list[str]:
    return [TRAIL, f"{TRAIL}events/{event.event_id}/", f"{TRAIL}export.csv", f"{TRAIL}export.jsonl"]


def test_routes_are_where_the_nav_expects_them() -> None:
    assert reverse("console:audit") == TRAIL
    assert reverse("console:audit-export-csv") == f"{TRAIL}export.csv"


def test_anonymous_is_sent_to_sign_in(seeded: AuditEvent) -> None:
    client = Client()
    for url in page_urls(seeded):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/signin/"), url
    response = client.post(f"{TRAIL}verify/")
    assert response.status_code == 302 and response["Location"].startswith("/signin/")
    assert not ChainVerification.objects.exists()


def test_a_principal_without_the_permission_is_refused_and_the_refusal_is_recorded(
    console: Callable[..., Client], outsider: Persona, seeded: AuditEvent
) -> None:
    client = console(outsider)
    for url in page_urls(seeded):
        response = client.get(url)
        assert response.status_code == 403, url
        body = response.content.decode()
        assert "Refused." in body and str(seeded.event_id) not in body.split("</h1>", 1)[1], url
        assert "arn:aws:iam::111122223333:user/alice" not in body, "no event leaks into a refusal"
    response = client.post(f"{TRAIL}verify/")
    assert response.status_code == 403 and not ChainVerification.objects.exists()
    for operation in (
        "kmsconsole:ListAuditEvents",
        "kmsconsole:GetAuditEvent",
        "kmsconsole:ExportAuditEvents",
        "kmsconsole:VerifyAuditChain",
    ):
        events = audit_events(operation, caller_arn=outsider.arn)
        assert events and all(e.decision == "denied" for e in events), operation


def test_a_reader_sees_the_trail_and_the_read_is_audited_with_its_filters(
    console: Callable[..., Client], admin: Persona, seeded: AuditEvent
) -> None:
    response = console(admin).get(TRAIL, {"decision": "denied", "range": "7d"})
    assert response.status_code == 200
    body = response.content.decode()
    assert f"/console/audit/events/{seeded.event_id}/" in body
    # The charts' numbers are data for the script, not code: the CSP allows it.
    assert '<script id="audit-chart-data" type="application/json">' in body
    assert "<script>" not in body and "style=" not in body
    (event,) = audit_events("kmsconsole:ListAuditEvents", caller_arn=admin.arn)
    assert event.decision == "allowed"
    query = event.request_parameters["Query"]
    assert query["decision"] == "denied" and "since" in query


def test_the_count_of_matching_events_is_a_sentence(
    console: Callable[..., Client], admin: Persona, seeded: AuditEvent
) -> None:
    client = console(admin)
    denied = {"decision": "denied", "range": "7d"}
    assert "<strong>1</strong> event matches." in client.get(TRAIL, denied).content.decode()
    add(operation="Encrypt", decision="denied", reason="denied: nothing", decided_by="", caller_arn=ALICE)
    assert "<strong>2</strong> events match." in client.get(TRAIL, denied).content.decode()


def test_the_first_visit_shows_the_last_24_hours(console: Callable[..., Client], admin: Persona) -> None:
    response = console(admin).get(TRAIL)
    assert response.status_code == 200
    assert '<option value="24h" selected>' in response.content.decode()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"account": "12ab"}, "An account id is 12 digits."),
        ({"source_ip": "not-an-ip"}, "Give an IPv4 or IPv6 address"),
        ({"since": "yesterday"}, "Enter a valid date/time."),
        ({"since": "2026-01-02T00:00", "until": "2026-01-01T00:00"}, "Until must be after From."),
        ({"context_value": "42"}, "Give the encryption context key"),
        ({"key": "not a key"}, "Give a key id, a key ARN, an alias name"),
        (
            {"key": "arn:aws:kms:us-east-1:999999999999:alias/x"},
            "Aliases of another account cannot be looked up",
        ),
        ({"before": "garbage"}, "That page link is not valid"),
        ({"range": "forever"}, "Select one of the offered choices."),
    ],
)
def test_bad_filters_are_answered_inline_kept_and_one_failed_event(
    console: Callable[..., Client], admin: Persona, params: dict[str, str], message: str
) -> None:
    """A filter refused for its shape, by the form or once the form has it (a key id that is not one, another
    account's alias): refused inside the read, after the decision, one failed ValidationException event."""
    response = console(admin).get(TRAIL, params)
    assert response.status_code == 400
    body = response.content.decode()
    assert escape(message) in body
    for name, value in params.items():
        if name not in ("before", "range"):
            assert f'value="{value}"' in body, "what the person typed stays in the form"
    (event,) = audit_events("kmsconsole:ListAuditEvents", caller_arn=admin.arn)
    assert (event.decision, event.error_code) == ("failed", "ValidationException")
    assert message in event.error_message


@pytest.mark.parametrize(
    ("params", "note"),
    [
        ({"key": "alias/no-such-alias"}, "There is no alias alias/no-such-alias in account 111122223333"),
        ({"principal": "nobody-here"}, "There is no user or role named nobody-here in account 111122223333"),
    ],
)
def test_a_well_formed_filter_naming_nothing_is_an_allowed_read_of_no_events(
    console: Callable[..., Client], admin: Persona, seeded: AuditEvent, params: dict[str, str], note: str
) -> None:
    """As AWS answers a well-formed query that matches nothing: allowed, no events, and the page says why."""
    response = console(admin).get(TRAIL, {**params, "range": "7d"})
    assert response.status_code == 200
    body = response.content.decode()
    assert note in body and str(seeded.event_id) not in body
    for value in params.values():
        assert f'value="{value}"' in body
    (event,) = audit_events("kmsconsole:ListAuditEvents", caller_arn=admin.arn)
    assert (event.decision, event.error_code) == ("allowed", "")
    assert {name: event.request_parameters["Query"][name] for name in params} == params


def test_the_event_page_of_another_account_or_unknown_event_is_not_found(
    console: Callable[..., Client], admin: Persona
) -> None:
    # Another account's request on its own key (on one of the reader's keys, it would be the reader's to see as
    # the key owner: tests/audit/test_key_owner_scope.py).
    other = add(
        caller_account="444455556666", caller_arn="arn:aws:iam::444455556666:user/zed", key_arn=PARTNER_KEY
    )
    client = console(admin)
    for event_id in (other.event_id, uuid.uuid4()):
        response = client.get(f"{TRAIL}events/{event_id}/")
        assert response.status_code == 404
        assert "does not exist" in response.content.decode()


def test_verify_now_queues_a_verification_that_a_worker_runs(
    console: Callable[..., Client],
    admin: Persona,
    seeded: AuditEvent,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kmsconsole.audit import tasks

    sent: list[int] = []
    monkeypatch.setattr(
        tasks.verify_audit_chain_requested, "apply_async", lambda args, **options: sent.extend(args)
    )
    client = console(admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{TRAIL}verify/", {"next": f"{TRAIL}?decision=denied"})
    assert response.status_code == 302 and response["Location"] == f"{TRAIL}?decision=denied"
    verification = ChainVerification.objects.get()
    assert (verification.status, verification.trigger, verification.requested_by) == (
        "queued",
        "on demand",
        admin.arn,
    )
    assert sent == [verification.pk]
    (event,) = audit_events("kmsconsole:VerifyAuditChain")
    assert event.response_elements == {"VerificationId": verification.pk}

    page = client.get(TRAIL).content.decode()
    assert "is queued" in page
    tasks.verify_audit_chain_requested(verification.pk)
    verification.refresh_from_db()
    assert verification.status == "intact" and verification.events_verified >= 1
    page = client.get(TRAIL).content.decode()
    assert "Intact" in page and f"asked by {admin.arn}" in page
    # A second message for the same request does nothing (the claim is taken).
    assert tasks.verification.verify_requested(verification.pk) is None


def test_verify_now_never_redirects_elsewhere(
    console: Callable[..., Client], admin: Persona, monkeypatch: Any
) -> None:
    from kmsconsole.audit import tasks

    monkeypatch.setattr(tasks.verify_audit_chain_requested, "apply_async", lambda args, **options: None)
    response = console(admin).post(f"{TRAIL}verify/", {"next": "https://evil.example/"})
    assert response["Location"] == TRAIL


def test_chart_data_is_json_for_the_script(console: Callable[..., Client], admin: Persona) -> None:
    add(key_arn=KEY_1)
    body = console(admin).get(TRAIL).content.decode()
    start = body.index('<script id="audit-chart-data" type="application/json">') + len(
        '<script id="audit-chart-data" type="application/json">'
    )
    data = json.loads(body[start : body.index("</script>", start)])
    assert set(data) == {"timeline", "keys", "principals", "reasons"}
    assert data["keys"]["labels"] == ["11111111-1111-4111-8111-111111111111"]
