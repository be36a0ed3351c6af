"""DELETE /api/v1/users/<name>, /roles/<name>, /groups/<name>: anonymous is 401, a principal without permission is
403 with nothing changed (and a denied event), an allowed one gets 204, the entity is gone and the event is
allowed; a conflict is 409 DeleteConflict in the API's error shape, an unknown name 404 NoSuchEntity."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from kmsconsole.api.tokens import api_token_create
from kmsconsole.audit.models import AuditEvent
from policies import services
from policies.models import Account, IamGroup, IamRole, IamUser
from tests.conftest import ALLOW_RANDOM, Persona, as_operator

pytestmark = pytest.mark.django_db

MODELS = {"users": IamUser, "roles": IamRole, "groups": IamGroup}
CREATE = {"users": services.user_create, "roles": services.role_create, "groups": services.group_create}


@pytest.fixture
def doomed(account: Account) -> dict[str, Any]:
    """A user, a role and a group named "doomed", nothing attached to any."""
    made = {}
    for plural, create in CREATE.items():
        kind = plural.removesuffix("s")
        made[plural] = as_operator(
            f"iam:Create{kind.capitalize()}",
            lambda ctx, c=create, k=kind: c(ctx=ctx, account=account, **{f"{k}_name": "doomed"}),
        )
    return made


def operation(plural: str) -> str:
    return f"iam:Delete{plural.removesuffix('s').capitalize()}"


@pytest.mark.parametrize("plural", MODELS)
def test_anonymous_is_401(doomed: dict[str, Any], plural: str) -> None:
    response = APIClient().delete(f"/api/v1/{plural}/doomed")
    assert response.status_code == 401
    assert MODELS[plural].objects.filter(name="doomed").exists()


@pytest.mark.parametrize("plural", MODELS)
def test_without_permission_is_403_and_nothing_changes(
    doomed: dict[str, Any], outsider_api: APIClient, plural: str
) -> None:
    response = outsider_api.delete(f"/api/v1/{plural}/doomed")
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "AccessDeniedException"
    assert MODELS[plural].objects.filter(name="doomed").exists()
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    assert (event.operation, event.interface, event.decision) == (operation(plural), "api", "denied")


@pytest.mark.parametrize("plural", MODELS)
def test_allowed_is_204_the_entity_is_gone_and_audited(
    doomed: dict[str, Any], admin: Persona, admin_api: APIClient, plural: str
) -> None:
    response = admin_api.delete(f"/api/v1/{plural}/doomed")
    assert response.status_code == 204, response.content
    assert not MODELS[plural].objects.filter(name="doomed").exists()
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    assert (event.operation, event.interface, event.decision, event.caller_arn) == (
        operation(plural),
        "api",
        "allowed",
        admin.arn,
    )
    noun = plural.removesuffix("s").capitalize()
    assert event.request_parameters == {f"{noun}Name": "doomed"}
    assert event.response_elements[f"{noun}Id"] == doomed[plural].unique_id
    # Deleted: a second DELETE is the unknown name's 404.
    again = admin_api.delete(f"/api/v1/{plural}/doomed")
    assert again.status_code == 404 and again.json()["error"]["code"] == "NoSuchEntity"


@pytest.mark.parametrize("plural", MODELS)
def test_a_conflict_is_409_delete_conflict(doomed: dict[str, Any], admin_api: APIClient, plural: str) -> None:
    entity = doomed[plural]
    as_operator(
        f"iam:Put{type(entity).__name__.removeprefix('Iam')}Policy",
        lambda ctx: services.identity_policy_put(
            ctx=ctx, owner=entity, policy_name="p", document=ALLOW_RANDOM
        ),
    )
    response = admin_api.delete(f"/api/v1/{plural}/doomed")
    assert response.status_code == 409, response.content
    assert response.json()["error"] == {
        "code": "DeleteConflict",
        "message": "Cannot delete entity, must delete policies first.",
        "detail": None,
    }
    assert MODELS[plural].objects.filter(name="doomed").exists()
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None and (event.decision, event.error_code) == ("failed", "DeleteConflict")


def test_the_schema_documents_the_deletes(admin_api: APIClient) -> None:
    schema = admin_api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for plural in MODELS:
        assert "delete" in schema["paths"][f"/api/v1/{plural}/{{name}}"]


def test_a_deleted_users_api_token_no_longer_authenticates(
    doomed: dict[str, Any], admin_api: APIClient
) -> None:
    created = as_operator(
        "kmsconsole:CreateApiToken",
        lambda ctx: api_token_create(
            ctx=ctx, account=doomed["users"].account, user_name="doomed", expires_in_days=3650
        ),
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {created.plaintext}")
    assert client.get("/api/v1/api-tokens").status_code != 401  # authenticated (allowed or not)
    response = admin_api.delete("/api/v1/users/doomed")
    assert response.status_code == 204, response.content  # a live token is no conflict
    assert client.get("/api/v1/api-tokens").status_code == 401
    event = AuditEvent.objects.filter(operation="iam:DeleteUser").order_by("-seq").first()
    assert event is not None and event.response_elements["ApiTokensRevoked"] == 1
