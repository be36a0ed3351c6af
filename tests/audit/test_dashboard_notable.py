"""The notable-events panel: uses of keys pending deletion, refusals soon after a key policy change, grants
created by integrated services, and key policies set with the lockout check bypassed."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from grants.models import IntegratedService
from kmsconsole.audit.marks import PENDING_DELETION_USE
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.notable import notable_sections
from kmsconsole.audit.trail import TrailFilter, TrailQuery, narrowed
from policies.models import Account
from tests.api.conftest import client_with, token_for
from tests.audit.dashboard_support import ACCOUNT, ALICE, BOB, KEY_1, KEY_2, add, append, event_values
from tests.conftest import Persona

pytestmark = pytest.mark.django_db

SERVICE_USER = f"arn:aws:iam::{ACCOUNT}:user/ebs-agent"
SERVICE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ebs"
DENIED = {
    "decision": "denied",
    "reason": "denied: no",
    "decided_by": "",
    "error_code": "AccessDeniedException",
}


def sections() -> dict[str, list[tuple[int, str]]]:
    return {
        s.name: [(row.event.seq, row.note) for row in s.rows]
        for s in notable_sections(AuditEvent.objects.all())
    }


def seqs(*values: dict[str, Any]) -> list[int]:
    last = append(values)
    return list(range(last - len(values) + 1, last + 1))


def test_uses_of_keys_pending_deletion() -> None:
    (used, _) = seqs(
        event_values(decision="failed", error_code="KMSInvalidStateException", notable=PENDING_DELETION_USE),
        event_values(decision="failed", error_code="KMSInvalidStateException"),
    )
    assert sections()["pending-deletion"] == [(used, "")]


def test_a_management_call_refused_on_a_key_pending_deletion_is_not_a_use() -> None:
    """Events written when a repeated ScheduleKeyDeletion was marked as a use: the mark is chained and stays, so
    the readers leave them out (the panel, and the trail's notable filter the panel links to)."""
    (use, _, _) = seqs(
        event_values(decision="failed", error_code="KMSInvalidStateException", notable=PENDING_DELETION_USE),
        *(
            event_values(
                operation=operation,
                decision="failed",
                error_code="KMSInvalidStateException",
                notable=PENDING_DELETION_USE,
            )
            for operation in ("ScheduleKeyDeletion", "EnableKey")
        ),
    )
    assert sections()["pending-deletion"] == [(use, "")]
    query = TrailQuery(notable=PENDING_DELETION_USE)
    found = narrowed(AuditEvent.objects.all(), TrailFilter(query=query, account_id=ACCOUNT))
    assert [event.seq for event in found] == [use]


def test_every_reader_shows_an_old_mark_on_a_management_call_as_none(
    admin: Persona, console: Callable[..., Client]
) -> None:
    """The page's list, an event's page, the REST API and both exports show an old "use of a key pending deletion"
    mark on a refused ScheduleKeyDeletion as no mark at all, as the panel and the filter leave it out; a real
    use keeps its mark."""
    refused = {
        "decision": "failed",
        "error_code": "KMSInvalidStateException",
        "notable": PENDING_DELETION_USE,
    }
    management = add(operation="ScheduleKeyDeletion", **refused)
    use = add(**refused)
    assert AuditEvent.objects.get(pk=management.pk).notable == PENDING_DELETION_USE  # stored, chained, kept
    client = console(admin)
    listed = client.get(reverse("console:audit"), {"scope": "caller"}).content.decode()
    assert listed.count(f'<span class="badge failed">{PENDING_DELETION_USE}</span>') == 1
    old_page = client.get(reverse("console:audit-event", args=[management.event_id])).content.decode()
    assert PENDING_DELETION_USE not in old_page
    assert (
        PENDING_DELETION_USE
        in client.get(reverse("console:audit-event", args=[use.event_id])).content.decode()
    )
    csv_rows = list(csv.DictReader(io.StringIO(_body(client.get(reverse("console:audit-export-csv"))))))
    jsonl_rows = [
        json.loads(line) for line in _body(client.get(reverse("console:audit-export-jsonl"))).splitlines()
    ]
    api = client_with(token_for(Account.objects.get(account_id=ACCOUNT), "admin"))
    api_rows = api.get("/api/v1/audit-events").json()["results"]
    api_one = api.get(f"/api/v1/audit-events/{management.event_id}").json()
    for rows in (csv_rows, jsonl_rows, api_rows, [api_one]):
        marks = {row["event_id"]: row["notable"] for row in rows}
        assert marks[str(management.event_id)] == ""
        if rows is not api_one:
            assert marks.get(str(use.event_id), PENDING_DELETION_USE) == PENDING_DELETION_USE


def _body(response: Any) -> str:
    return b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()


def test_refusals_soon_after_a_policy_change_on_the_same_key() -> None:
    t = timezone.now() - timedelta(days=3)
    _, _, soon, _, _, _ = seqs(
        event_values(time=t - timedelta(minutes=5), key_arn=KEY_1, caller_arn=BOB, **DENIED),
        event_values(time=t, operation="PutKeyPolicy", key_arn=KEY_1, caller_arn=ALICE),
        event_values(time=t + timedelta(minutes=10), key_arn=KEY_1, caller_arn=BOB, **DENIED),
        event_values(time=t + timedelta(minutes=11), key_arn=KEY_2, caller_arn=BOB, **DENIED),
        event_values(time=t + timedelta(days=2), key_arn=KEY_1, caller_arn=BOB, **DENIED),
        event_values(time=t + timedelta(minutes=12), key_arn=KEY_1, caller_arn=BOB),
    )
    assert sections()["after-policy-change"] == [(soon, f"10 minutes after {ALICE} changed its policy")]


def test_a_refused_policy_change_does_not_count() -> None:
    t = timezone.now() - timedelta(hours=3)
    seqs(
        event_values(time=t, operation="PutKeyPolicy", key_arn=KEY_1, **DENIED),
        event_values(time=t + timedelta(minutes=1), key_arn=KEY_1, caller_arn=BOB, **DENIED),
    )
    assert sections()["after-policy-change"] == []


def test_grants_created_by_integrated_services() -> None:
    IntegratedService.objects.create(
        name="ebs.us-east-1.amazonaws.com", principals=[SERVICE_USER, SERVICE_ROLE]
    )
    by_user, by_session, _, _, _ = seqs(
        event_values(operation="CreateGrant", caller_arn=SERVICE_USER),
        event_values(operation="CreateGrant", caller_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/ebs/i-123"),
        event_values(
            operation="CreateGrant", caller_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/ebs-other/i-1"
        ),
        event_values(operation="CreateGrant", caller_arn=ALICE),
        event_values(operation="CreateGrant", caller_arn=SERVICE_USER, **DENIED),
    )
    assert sections()["service-grants"] == [(by_session, ""), (by_user, "")]


def test_no_integrated_service_means_no_rows() -> None:
    seqs(event_values(operation="CreateGrant", caller_arn=SERVICE_USER))
    assert sections()["service-grants"] == []


def test_policy_changes_with_the_lockout_check_bypassed() -> None:
    kms, api, _, _ = seqs(
        event_values(operation="PutKeyPolicy", request_parameters={"BypassPolicyLockoutSafetyCheck": True}),
        event_values(
            operation="CreateKey", key_arn=KEY_2, request_parameters={"bypass_lockout_safety_check": True}
        ),
        event_values(operation="PutKeyPolicy", request_parameters={"BypassPolicyLockoutSafetyCheck": False}),
        event_values(operation="Encrypt", request_parameters={"BypassPolicyLockoutSafetyCheck": True}),
    )
    assert sections()["lockout-bypass"] == [(api, ""), (kms, "")]


def test_the_panel_is_on_the_page_within_the_time_range(
    console: Callable[..., Client], admin: Persona
) -> None:
    (old, recent) = seqs(
        event_values(
            time=timezone.now() - timedelta(days=3), notable=PENDING_DELETION_USE, decision="failed"
        ),
        event_values(notable=PENDING_DELETION_USE, decision="failed"),
    )
    body = console(admin).get("/console/audit/").content.decode()
    assert "Uses of keys pending deletion" in body and "Refusals after a key policy change" in body
    old_id, recent_id = (AuditEvent.objects.get(seq=s).event_id for s in (old, recent))
    panel = body[body.index('id="audit-notable-title"') :]
    assert str(recent_id) in panel and str(old_id) not in panel, "the default range is the last 24 hours"
    assert "notable=use+of+a+key+pending+deletion" in panel
