"""The error shape and statuses, the OpenAPI document, and the docs pages served from local assets."""

from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_spec_validator import validate
from rest_framework.test import APIClient

from keys.services import lifecycle
from kmsconsole.audit.models import AuditEvent
from tests.api.conftest import World

pytestmark = pytest.mark.django_db


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "detail"}
    return body["error"]


def test_field_errors_point_at_the_field_and_are_audited(world: World, admin_api: APIClient) -> None:
    response = admin_api.post(
        f"/api/v1/keys/{world.key}/schedule-deletion", {"pending_window_days": "soon"}, format="json"
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "ValidationException" and "pending_window_days" in error["detail"]
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.operation, event.error_code, event.interface) == (
        "ScheduleKeyDeletion",
        "ValidationException",
        "api",
    )


def test_business_limits_come_from_the_service(world: World, admin_api: APIClient) -> None:
    response = admin_api.post(
        f"/api/v1/keys/{world.key}/schedule-deletion", {"pending_window_days": 3}, format="json"
    )
    assert response.status_code == 400
    assert "greater than or equal to 7" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/api/v1/keys/00000000-0000-0000-0000-000000000000", 404, "NotFoundException"),
        ("post", "/api/v1/keys/{pending}/disable", 409, "KMSInvalidStateException"),
        ("post", "/api/v1/aliases", 409, "AlreadyExistsException"),
        ("get", "/api/v1/audit-events?decision=maybe", 400, "ValidationException"),
        ("get", "/api/v1/keys?page=99", 400, "ValidationException"),  # past the last page: a bad parameter
        ("delete", "/api/v1/keys", 405, "UnsupportedOperationException"),
    ],
)
def test_statuses(world: World, admin_api: APIClient, method: str, path: str, status: int, code: str) -> None:
    body = {"alias_name": "alias/app", "target_key_id": world.key} if method == "post" else None
    response = getattr(admin_api, method)(path.replace("{pending}", world.pending), body, format="json")
    assert response.status_code == status
    assert error_of(response)["code"] == code


def test_malformed_json_is_400(admin_api: APIClient, world: World) -> None:
    response = admin_api.generic("POST", "/api/v1/keys", "{not json", content_type="application/json")
    assert response.status_code == 400 and error_of(response)["code"] == "SerializationException"


def test_internal_errors_do_not_leak(
    world: World, admin_api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(lifecycle, "key_describe", broken)
    response = admin_api.get(f"/api/v1/keys/{world.key}")
    assert response.status_code == 500
    assert error_of(response)["code"] == "KMSInternalException"
    assert b"hunter2" not in response.content and b"Traceback" not in response.content


def test_schema_is_a_valid_openapi_3_document(client: Any) -> None:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"].startswith("3.")
    operations = [op for item in document["paths"].values() for op in item.values() if isinstance(op, dict)]
    assert len(operations) >= 30
    assert all(op.get("summary") for op in operations)
    assert set(document["components"]["securitySchemes"]) == {"apiToken", "consoleSession"}
    # The audit list's cursor and key filter: one that is not one is a 400 (not DRF's 404 "Invalid cursor").
    audit = {p["name"]: p for p in document["paths"]["/api/v1/audit-events"]["get"]["parameters"]}
    assert "400 ValidationException" in audit["cursor"]["description"]
    assert "a 400" in audit["key_arn"]["description"]


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_use_only_local_assets(client: Any, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "cdn" not in html.lower()


def test_a_nul_character_is_audited_not_a_500(admin_api: Any) -> None:
    from kmsconsole.audit.models import AuditEvent

    response = admin_api.post("/api/v1/keys", {"description": "a\u0000b"}, format="json")
    assert response.status_code < 500
    event = AuditEvent.objects.filter(operation="CreateKey").order_by("-seq").first()
    assert event is not None and "\\u0000" in str(event.request_parameters)


@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/v1/keys/x/policy/versions/-1/restore"])
def test_unknown_api_paths_are_json_404s(admin_api: Any, path: str) -> None:
    response = admin_api.post(path, {}, format="json")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "NotFoundException"


def test_an_unknown_path_is_a_json_404_for_a_signed_in_session_too(admin: Any) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from policies.models import ConsoleIdentity, IamUser

    login = get_user_model().objects.create_user(username="console-admin", password="x" * 16)
    ConsoleIdentity.objects.create(login=login, iam_user=IamUser.objects.get(name="admin"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(login)
    response = client.post("/api/v1/keys/x/policy/versions/-1/restore", "{}", content_type="application/json")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
