"""Bodies that break parsers: nested thousands deep, or larger than Django accepts, are a 400 in the API's error
shape (and audited like any bad request), never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keys.models import Key
from kmsconsole.audit.models import AuditEvent
from tests.api.conftest import client_with, token_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 200_000, "nested more than 32 levels"),
        (
            json.dumps(
                {"description": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}
            ).encode(),
            "nested",
        ),
        (json.dumps({"description": "x" * 3_000_000}).encode(), "larger than"),
    ],
    ids=["200k-brackets", "33-levels", "3-MB"],
)
def test_a_hostile_body_is_a_400(admin: Any, account: Any, body: bytes, message: str) -> None:
    api = client_with(token_for(account, "admin"))
    events = AuditEvent.objects.count()
    response = api.post("/api/v1/keys", data=body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert message in response.json()["error"]["message"]
    assert not Key.objects.exists()
    assert AuditEvent.objects.filter(seq__gt=events, operation="CreateKey", decision="failed").exists()


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        # Numbers that overflow to infinity: the audit trail's jsonb refused them, so the request left no event.
        (b'{"description": "x", "zz": 1e400}', "application/json", 400, "SerializationException"),
        (b'{"description": "x", "zz": [-1e999]}', "application/json", 400, "SerializationException"),
        # A media type no parser reads was answered by DRF before the operation ran: no event either.
        (b"description=x", "text/plain", 415, "SerializationException"),
        (b"<description/>", "application/xml", 415, "SerializationException"),
    ],
    ids=["1e400", "-1e999-in-a-list", "text-plain", "xml"],
)
def test_a_body_no_operation_can_take_is_refused_and_audited(
    outsider: Any, account: Any, body: bytes, content_type: str, status: int, code: str
) -> None:
    """Refused before any work, recorded like any bad request, even for a caller with no permissions at all
    (or they could probe without leaving a trace)."""
    api = client_with(token_for(account, "outsider"))
    events = AuditEvent.objects.count()
    response = api.post("/api/v1/keys", data=body, content_type=content_type)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.content
    assert not Key.objects.exists()
    event = AuditEvent.objects.filter(seq__gt=events).get()
    assert (event.operation, event.decision, event.error_code) == ("CreateKey", "failed", code)
