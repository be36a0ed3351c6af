"""GET /api/v1/keys/<key-id>/last-usage: GetKeyLastUsage over the REST API, authorized and audited as on the KMS
endpoint."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from keys.models import Key
from kmsconsole.audit.models import AuditEvent
from tests.api.conftest import encrypted, make_key

pytestmark = pytest.mark.django_db


def url(key: Key) -> str:
    return f"/api/v1/keys/{key.key_id}/last-usage"


def test_the_last_usage_of_a_key(admin_api: APIClient) -> None:
    key = make_key()
    response = admin_api.get(url(key))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["key_id"] == str(key.key_id) and body["last_usage"] is None
    assert parse_datetime(body["tracking_started_at"]) == parse_datetime(body["created_at"]) == key.created_at

    use = encrypted(key)
    body = admin_api.get(url(key)).json()
    assert body["last_usage"] == {
        "operation": "Encrypt",
        "time": body["last_usage"]["time"],
        "event_id": str(use.event_id),
        "request_id": use.request_id,
    }
    assert parse_datetime(body["last_usage"]["time"]) == use.time
    event = AuditEvent.objects.latest("seq")
    assert (event.operation, event.interface, event.decision, event.key_arn) == (
        "GetKeyLastUsage",
        "api",
        "allowed",
        key.arn,
    )
    assert event.response_elements == body


def test_an_outsider_is_refused_with_one_event(outsider_api: APIClient) -> None:
    key = make_key()
    since = AuditEvent.objects.latest("seq").seq
    response = outsider_api.get(url(key))
    assert response.status_code == 403
    assert "kms:GetKeyLastUsage" in response.json()["error"]["message"]
    (event,) = AuditEvent.objects.filter(seq__gt=since)
    assert (event.operation, event.decision) == ("GetKeyLastUsage", "denied")


def test_the_schema_documents_the_route(admin_api: APIClient) -> None:
    schema: Any = admin_api.get("/api/schema/?format=json").json()
    assert "GetKeyLastUsage" in schema["paths"]["/api/v1/keys/{key_id}/last-usage"]["get"]["summary"]
