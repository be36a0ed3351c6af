"""Principals, the caller's API tokens, key rotations and retirable grants: anonymous is 401, a principal without
permission is 403 with nothing changed (and a denied event), an allowed principal gets the result and an allowed
audit event with interface "api"; secrets are shown once and never audited."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from kmsconsole.api.models import ApiToken
from kmsconsole.audit.models import AuditEvent
from policies.models import AccessKey, Account, IamGroup, IamRole, IamUser, IdentityPolicy
from tests.api.conftest import ALLOW_RANDOM_POLICY, People, World, client_with, token_for
from tests.api.test_endpoints import fill
from tests.conftest import ALLOW_RANDOM, Persona

pytestmark = pytest.mark.django_db

POLICY_BODY = {"document": ALLOW_RANDOM_POLICY}

# (method, path, body, operation, allowed status)
ENDPOINTS: list[tuple[str, str, Any, str, int]] = [
    ("post", "/api/v1/accounts", {"account_id": "999988887777"}, "iam:CreateAccount", 201),
    ("get", "/api/v1/users", None, "iam:ListUsers", 200),
    ("post", "/api/v1/users", {"name": "bob", "path": "/eng/"}, "iam:CreateUser", 201),
    ("get", "/api/v1/users/alice", None, "iam:GetUser", 200),
    ("get", "/api/v1/roles", None, "iam:ListRoles", 200),
    ("post", "/api/v1/roles", {"name": "worker"}, "iam:CreateRole", 201),
    ("get", "/api/v1/roles/app", None, "iam:GetRole", 200),
    ("get", "/api/v1/groups", None, "iam:ListGroups", 200),
    ("post", "/api/v1/groups", {"name": "ops"}, "iam:CreateGroup", 201),
    ("get", "/api/v1/groups/devs", None, "iam:GetGroup", 200),
    ("post", "/api/v1/groups/devs/members", {"user_name": "admin"}, "iam:AddUserToGroup", 204),
    ("delete", "/api/v1/groups/devs/members/alice", None, "iam:RemoveUserFromGroup", 204),
    *(
        endpoint
        for kind, owner in (("User", "users/alice"), ("Role", "roles/app"), ("Group", "groups/devs"))
        for endpoint in (
            ("get", f"/api/v1/{owner}/policies", None, f"iam:List{kind}Policies", 200),
            ("get", f"/api/v1/{owner}/policies/p1", None, f"iam:Get{kind}Policy", 200),
            ("put", f"/api/v1/{owner}/policies/p2", POLICY_BODY, f"iam:Put{kind}Policy", 200),
            ("delete", f"/api/v1/{owner}/policies/p1", None, f"iam:Delete{kind}Policy", 204),
        )
    ),
    ("get", "/api/v1/users/alice/access-keys", None, "iam:ListAccessKeys", 200),
    ("post", "/api/v1/users/alice/access-keys", None, "iam:CreateAccessKey", 201),
    (
        "patch",
        "/api/v1/users/alice/access-keys/{access_key_id}",
        {"status": "Inactive"},
        "iam:UpdateAccessKey",
        200,
    ),
    ("delete", "/api/v1/users/alice/access-keys/{access_key_id}", None, "iam:DeleteAccessKey", 204),
    ("get", "/api/v1/api-tokens", None, "kmsconsole:ListApiTokens", 200),
    ("post", "/api/v1/api-tokens", {"name": "ci", "expires_in_days": 30}, "kmsconsole:CreateApiToken", 201),
    ("post", "/api/v1/api-tokens/{admin_token_id}/revoke", None, "kmsconsole:RevokeApiToken", 200),
    (
        "get",
        "/api/v1/keys/{key}/rotations?include_key_material=ALL_KEY_MATERIAL",
        None,
        "ListKeyRotations",
        200,
    ),
    ("get", "/api/v1/retirable-grants?retiring_principal={admin_arn}", None, "ListRetirableGrants", 200),
]
IDS = [f"{method} {path} {operation}" for method, path, _, operation, _ in ENDPOINTS]


def call(client: APIClient, world: World, people: People, method: str, path: str, body: Any) -> Any:
    names = {**world.__dict__, **people.__dict__}
    return getattr(client, method)(fill(path, names), fill(body, names), format="json")


def snapshot() -> tuple[Any, ...]:
    return (
        list(Account.objects.order_by("pk").values_list("account_id", flat=True)),
        *(
            list(model.objects.order_by("pk").values("name", "path"))
            for model in (IamUser, IamRole, IamGroup)
        ),
        list(IamGroup.members.through.objects.order_by("pk").values("iamgroup_id", "iamuser_id")),
        list(IdentityPolicy.objects.order_by("pk").values("name", "document", "user", "role", "group")),
        list(AccessKey.objects.order_by("pk").values("access_key_id", "status")),
        list(ApiToken.objects.order_by("pk").values("pk", "revoked_at")),
    )


@pytest.mark.parametrize(("method", "path", "body", "operation", "expected"), ENDPOINTS, ids=IDS)
def test_anonymous_is_401(
    world: World, people: People, method: str, path: str, body: Any, operation: str, expected: int
) -> None:
    before = snapshot()
    response = call(APIClient(), world, people, method, path, body)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "MissingAuthenticationTokenException"
    assert snapshot() == before


@pytest.mark.parametrize(("method", "path", "body", "operation", "expected"), ENDPOINTS, ids=IDS)
def test_principal_without_permission_is_403_and_nothing_changes(
    world: World,
    people: People,
    outsider_api: APIClient,
    method: str,
    path: str,
    body: Any,
    operation: str,
    expected: int,
) -> None:
    before = snapshot()
    response = call(outsider_api, world, people, method, path, body)
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "AccessDeniedException"
    assert snapshot() == before
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.operation, event.interface, event.decision) == (operation, "api", "denied")
    assert event.caller_arn.endswith(":user/outsider")


@pytest.mark.parametrize(("method", "path", "body", "operation", "expected"), ENDPOINTS, ids=IDS)
def test_allowed_principal_gets_the_result_and_an_audit_event(
    world: World,
    people: People,
    admin_api: APIClient,
    method: str,
    path: str,
    body: Any,
    operation: str,
    expected: int,
) -> None:
    before = snapshot()
    response = call(admin_api, world, people, method, path, body)
    assert response.status_code == expected, response.content
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.operation, event.interface, event.decision) == (operation, "api", "allowed")
    assert event.caller_arn == world.admin_arn
    assert (snapshot() == before) == (method == "get")


def test_accounts_list_only_the_callers_own_without_list_accounts(
    people: People, outsider_api: APIClient, admin_api: APIClient
) -> None:
    created = admin_api.post("/api/v1/accounts", {"account_id": "999988887777"}, format="json")
    assert created.status_code == 201 and created.json()["root_arn"] == "arn:aws:iam::999988887777:root"
    response = outsider_api.get("/api/v1/accounts")
    assert response.status_code == 200
    assert [row["account_id"] for row in response.json()["results"]] == ["111122223333"]
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.operation, event.decision, event.decided_by) == (
        "kmsconsole:ListAccounts",
        "allowed",
        "own account",
    )
    everyone = admin_api.get("/api/v1/accounts").json()["results"]
    assert [row["account_id"] for row in everyone] == ["111122223333", "999988887777"]


def test_access_key_secret_is_shown_once_and_never_audited(people: People, admin_api: APIClient) -> None:
    created = admin_api.post("/api/v1/users/alice/access-keys", format="json").json()
    secret = created["secret_access_key"]
    assert (
        len(secret) == 40 and created["access_key_id"].startswith("AKIA") and created["user_name"] == "alice"
    )
    event = AuditEvent.objects.order_by("-seq").first()
    assert event.response_elements == {
        "AccessKeyId": created["access_key_id"],
        "UserName": "alice",
        "Status": "Active",
    }
    listed = admin_api.get("/api/v1/users/alice/access-keys").json()["results"]
    assert {row["access_key_id"] for row in listed} == {people.access_key_id, created["access_key_id"]}
    assert secret not in json.dumps(listed)
    everything = json.dumps(list(AuditEvent.objects.values("request_parameters", "response_elements")))
    assert secret not in everything
    third = admin_api.post("/api/v1/users/alice/access-keys", format="json")
    assert third.status_code == 400 and third.json()["error"]["code"] == "LimitExceededException"


def test_api_token_is_shown_once_usable_and_revocable_by_its_owner(
    account: Account, people: People, admin: Persona, admin_api: APIClient
) -> None:
    created = admin_api.post("/api/v1/api-tokens", {"name": "ci"}, format="json").json()
    token = created["token"]
    assert token.startswith(f"kmsc_{created['prefix']}_")
    assert token not in json.dumps(list(AuditEvent.objects.values("request_parameters", "response_elements")))
    fresh = client_with(token)
    listed = fresh.get("/api/v1/api-tokens").json()["results"]
    assert created["id"] in [row["id"] for row in listed] and "token" not in listed[0]
    revoked = fresh.post(f"/api/v1/api-tokens/{created['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert fresh.get("/api/v1/api-tokens").status_code == 401


def test_tokens_of_another_user_are_not_found(
    account: Account, people: People, make_user: Any, admin_api: APIClient
) -> None:
    make_user(
        "carol",
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kmsconsole:*", "Resource": "*"}]}',
    )
    carol = client_with(token_for(account, "carol"))
    assert [row["name"] for row in carol.get("/api/v1/api-tokens").json()["results"]] == [""]
    response = carol.post(f"/api/v1/api-tokens/{people.admin_token_id}/revoke")
    assert response.status_code == 404
    assert ApiToken.objects.get(pk=people.admin_token_id).revoked_at is None


def test_identity_policy_put_is_validated_by_the_engine(people: People, admin_api: APIClient) -> None:
    response = admin_api.put(
        "/api/v1/users/alice/policies/bad", {"document": '{"Statement": []}'}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MalformedPolicyDocumentException"
    assert not IdentityPolicy.objects.filter(name="bad").exists()


def test_unknown_entity_is_403_without_permission_and_404_with_it(
    people: People, outsider_api: APIClient, admin_api: APIClient
) -> None:
    assert outsider_api.get("/api/v1/users/nobody").status_code == 403
    missing = admin_api.get("/api/v1/users/nobody")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NoSuchEntity"
    assert admin_api.get("/api/v1/users/alice/policies/nope").status_code == 404
    assert admin_api.delete("/api/v1/groups/devs/members/admin").status_code == 404


def test_creating_an_access_key_tells_a_refused_caller_nothing_about_which_users_exist(
    people: People, outsider_api: APIClient, admin_api: APIClient
) -> None:
    existing = outsider_api.post("/api/v1/users/alice/access-keys")
    unknown = outsider_api.post("/api/v1/users/nobody/access-keys")
    # Both refused (decided on the ARN the name would have, before anything is looked up), in the same words.
    assert (existing.status_code, unknown.status_code) == (403, 403)
    assert (
        existing.json()["error"]["message"].replace("alice", "nobody") == unknown.json()["error"]["message"]
    )
    assert admin_api.post("/api/v1/users/nobody/access-keys").status_code == 404


def test_a_caller_acts_only_in_its_own_account(people: People, partner: Any, admin_api: APIClient) -> None:
    stranger = partner("stranger", ALLOW_RANDOM.replace("kms:GenerateRandom", "*"))
    partner_account = Account.objects.get(account_id="444455556666")
    names = [row["name"] for row in admin_api.get("/api/v1/users").json()["results"]]
    assert "stranger" not in names and admin_api.get("/api/v1/users/stranger").status_code == 404
    their = client_with(token_for(partner_account, "stranger"))
    assert [row["name"] for row in their.get("/api/v1/users").json()["results"]] == [stranger.name]
    assert their.get("/api/v1/users/alice").status_code == 404
    assert their.post("/api/v1/users/alice/access-keys").status_code == 404
