"""Every endpoint: anonymous is 401, a principal without permission is 403 with nothing changed (and a denied
event), an allowed principal gets the result and an allowed audit event with interface "api"."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from grants.models import Grant
from keys.default_policies import default_key_policy
from keys.models import Alias, Key, KeyMaterial, KeyPolicyVersion, Tag
from kmsconsole.audit.models import AuditEvent
from tests.api.conftest import World, make_key

pytestmark = pytest.mark.django_db

POLICY = default_key_policy("111122223333")

# (method, path, body, operation, allowed status)
ENDPOINTS: list[tuple[str, str, Any, str, int]] = [
    ("get", "/api/v1/keys", None, "ListKeys", 200),
    ("post", "/api/v1/keys", {"description": "new"}, "CreateKey", 201),
    ("get", "/api/v1/keys/{key}", None, "DescribeKey", 200),
    ("patch", "/api/v1/keys/{key}", {"description": "renamed"}, "UpdateKeyDescription", 200),
    ("post", "/api/v1/keys/{key}/disable", None, "DisableKey", 200),
    ("post", "/api/v1/keys/{other}/enable", None, "EnableKey", 200),
    ("post", "/api/v1/keys/{key}/schedule-deletion", {"pending_window_days": 7}, "ScheduleKeyDeletion", 200),
    ("post", "/api/v1/keys/{pending}/cancel-deletion", None, "CancelKeyDeletion", 200),
    ("post", "/api/v1/keys/{key}/rotate", None, "RotateKeyOnDemand", 200),
    ("get", "/api/v1/keys/{key}/rotation", None, "GetKeyRotationStatus", 200),
    (
        "put",
        "/api/v1/keys/{key}/rotation",
        {"enabled": True, "rotation_period_days": 90},
        "EnableKeyRotation",
        200,
    ),
    ("put", "/api/v1/keys/{key}/rotation", {"enabled": False}, "DisableKeyRotation", 200),
    ("get", "/api/v1/keys/{key}/policy", None, "GetKeyPolicy", 200),
    ("put", "/api/v1/keys/{key}/policy", {"policy": POLICY}, "PutKeyPolicy", 200),
    ("post", "/api/v1/keys/{key}/policy/validate", {"policy": POLICY}, "kmsconsole:ValidateKeyPolicy", 200),
    ("get", "/api/v1/keys/{key}/policy/versions", None, "kmsconsole:ListKeyPolicyVersions", 200),
    ("post", "/api/v1/keys/{key}/policy/versions/1/restore", {}, "PutKeyPolicy", 200),
    ("get", "/api/v1/keys/{key}/tags", None, "ListResourceTags", 200),
    ("put", "/api/v1/keys/{key}/tags", {"tags": [{"tag_key": "team", "tag_value": "a"}]}, "TagResource", 204),
    ("delete", "/api/v1/keys/{key}/tags?tag_key=env", None, "UntagResource", 204),
    ("get", "/api/v1/keys/{key}/grants", None, "ListGrants", 200),
    (
        "post",
        "/api/v1/keys/{key}/grants",
        {"grantee_principal": "{admin_arn}", "operations": ["Decrypt"]},
        "CreateGrant",
        201,
    ),
    ("post", "/api/v1/keys/{key}/grants/{grant}/revoke", None, "RevokeGrant", 204),
    ("post", "/api/v1/keys/{key}/grants/{grant}/retire", None, "RetireGrant", 204),
    ("get", "/api/v1/aliases", None, "ListAliases", 200),
    ("post", "/api/v1/aliases", {"alias_name": "alias/new", "target_key_id": "{key}"}, "CreateAlias", 201),
    ("patch", "/api/v1/aliases/alias/app", {"target_key_id": "{other}"}, "UpdateAlias", 200),
    ("delete", "/api/v1/aliases/alias/app", None, "DeleteAlias", 204),
    ("get", "/api/v1/audit-events", None, "kmsconsole:ListAuditEvents", 200),
    ("get", "/api/v1/audit-events/{event}", None, "kmsconsole:GetAuditEvent", 200),
    ("get", "/api/v1/job-runs", None, "kmsconsole:ListJobRuns", 200),
]
IDS = [f"{method} {path} {operation}" for method, path, _, operation, _ in ENDPOINTS]


def fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, replacement in names.items():
            value = value.replace(f"{{{name}}}", replacement)
        return value
    if isinstance(value, dict):
        return {name: fill(item, names) for name, item in value.items()}
    if isinstance(value, list):
        return [fill(item, names) for item in value]
    return value


def call(client: APIClient, world: World, method: str, path: str, body: Any) -> Any:
    event = AuditEvent.objects.order_by("seq").first()
    names = {**world.__dict__, "event": str(event.event_id) if event else ""}
    return getattr(client, method)(fill(path, names), fill(body, names), format="json")


def snapshot() -> tuple[Any, ...]:
    return (
        list(Key.objects.order_by("pk").values()),
        list(Alias.objects.order_by("pk").values("name", "key_id")),
        list(Tag.objects.order_by("pk").values("key_id", "tag_key", "tag_value")),
        list(Grant.objects.order_by("pk").values("grant_id", "removal_requested_at")),
        KeyPolicyVersion.objects.count(),
        KeyMaterial.objects.count(),
    )


@pytest.mark.parametrize(("method", "path", "body", "operation", "expected"), ENDPOINTS, ids=IDS)
def test_anonymous_is_401(
    world: World, method: str, path: str, body: Any, operation: str, expected: int
) -> None:
    before = snapshot()
    response = call(APIClient(), world, method, path, body)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "MissingAuthenticationTokenException"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert snapshot() == before


@pytest.mark.parametrize(("method", "path", "body", "operation", "expected"), ENDPOINTS, ids=IDS)
def test_principal_without_permission_is_403_and_nothing_changes(
    world: World, outsider_api: APIClient, method: str, path: str, body: Any, operation: str, expected: int
) -> None:
    before = snapshot()
    response = call(outsider_api, world, method, path, body)
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "AccessDeniedException"
    assert snapshot() == before
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.operation, event.interface, event.decision) == (operation, "api", "denied")
    assert event.caller_arn.endswith(":user/outsider")


@pytest.mark.parametrize(("method", "path", "body", "operation", "expected"), ENDPOINTS, ids=IDS)
def test_allowed_principal_gets_the_result_and_an_audit_event(
    world: World, admin_api: APIClient, method: str, path: str, body: Any, operation: str, expected: int
) -> None:
    before = snapshot()
    response = call(admin_api, world, method, path, body)
    assert response.status_code == expected, response.content
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.operation, event.interface, event.decision) == (operation, "api", "allowed")
    assert event.caller_arn == world.admin_arn
    assert event.access_key_id.startswith("kmsc_")
    if method == "get" or operation in ("kmsconsole:ValidateKeyPolicy",):
        assert snapshot() == before
    else:
        assert snapshot() != before


def _policy_naming(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _allow(principal: str, *actions: str, **condition: Any) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": list(actions), "Resource": "*"}
    return {**statement, "Condition": condition} if condition else statement


def test_validating_a_key_policy_needs_put_key_policy(
    world: World, make_user: Any, api_as: Any, partner: Any
) -> None:
    """A draft's check tells whether each principal it names exists, in any account, which AWS tells only through
    PutKeyPolicy: the check is PutKeyPolicy's dry run, so it needs kms:PutKeyPolicy on the key, decided as a
    PutKeyPolicy without the bypass would be. A reader of the policy is refused alike for a principal that exists
    and one that does not."""
    partner("bob")
    root = _allow("arn:aws:iam::111122223333:root", "kms:*")
    bob, ghost = "arn:aws:iam::444455556666:user/bob", "arn:aws:iam::444455556666:user/ghost"
    path = f"/api/v1/keys/{world.key}/policy/validate"
    reader = api_as(make_user("policy-reader", json.dumps(_identity("kms:GetKeyPolicy"))))
    refusals = []
    for principal in (bob, ghost):
        refused = reader.post(
            path, {"policy": _policy_naming(root, _allow(principal, "kms:Decrypt"))}, format="json"
        )
        assert refused.status_code == 403, refused.content
        refusals.append(refused.json()["error"])
        event = AuditEvent.objects.order_by("-seq").first()
        assert (event.operation, event.decision) == ("kmsconsole:ValidateKeyPolicy", "denied")
        assert event.caller_arn.endswith(":user/policy-reader")
    assert refusals[0] == refusals[1] and "kms:PutKeyPolicy" in refusals[0]["message"]

    editor = api_as(make_user("policy-editor", json.dumps(_identity("kms:GetKeyPolicy", "kms:PutKeyPolicy"))))
    for principal, valid in ((bob, True), (ghost, False)):
        checked = editor.post(
            path, {"policy": _policy_naming(root, _allow(principal, "kms:Decrypt"))}, format="json"
        )
        assert checked.status_code == 200 and checked.json()["valid"] is valid, checked.content
    assert AuditEvent.objects.order_by("-seq").first().decision == "allowed"

    # A key policy that lets a key administrator put policies only without the bypass lets it check drafts.
    key_admin = make_user("key-admin")
    guarded = _policy_naming(
        _allow(key_admin.arn, "kms:PutKeyPolicy", Bool={"kms:BypassPolicyLockoutSafetyCheck": "false"})
    )
    key = make_key("guarded", policy=guarded)
    checked = api_as(key_admin).post(
        f"/api/v1/keys/{key.key_id}/policy/validate", {"policy": guarded}, format="json"
    )
    # Allowed, and valid: the next PutKeyPolicy (without the bypass) would be allowed too, so no lockout.
    assert checked.status_code == 200 and checked.json()["valid"] is True, checked.content
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.operation, event.decision) == ("kmsconsole:ValidateKeyPolicy", "allowed")


def test_validating_a_key_policy_names_no_principal_of_another_account(
    world: World, make_user: Any, api_as: Any, partner: Any
) -> None:
    """A draft naming another account's principals that do not exist gets AWS's answer, naming none: the same
    whichever is missing and whether the others exist, with the same number of database statements."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    partner("bob")
    root = _allow("arn:aws:iam::111122223333:root", "kms:*")
    other = "arn:aws:iam::444455556666:user/"
    path = f"/api/v1/keys/{world.key}/policy/validate"
    editor = api_as(make_user("policy-editor", json.dumps(_identity("kms:GetKeyPolicy", "kms:PutKeyPolicy"))))
    drafts = [
        _policy_naming(root, _allow(f"{other}bob", "kms:Decrypt"), _allow(f"{other}gh1", "kms:Decrypt")),
        _policy_naming(root, _allow(f"{other}gh2", "kms:Decrypt"), _allow(f"{other}gh3", "kms:Decrypt")),
    ]
    editor.post(path, {"policy": drafts[0]}, format="json")  # warmed up
    answers, statements = [], []
    for draft in drafts:
        with CaptureQueriesContext(connection) as queries:
            answers.append(editor.post(path, {"policy": draft}, format="json").json())
        statements.append(len(queries))
    invalid = "Policy contains a statement with one or more invalid principals."
    assert answers == [{"valid": False, "code": "MalformedPolicyDocumentException", "message": invalid}] * 2
    assert statements[0] == statements[1], statements


def _identity(*actions: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
    }
