"""The analyzer's REST endpoints: /api/v1/keys/{key}/access, /policy/compare, /api/v1/findings and
/api/v1/simulations. Anonymous 401, a principal without permission 403 (audited as denied), the admin gets the
answer (audited with interface "api"), bad input 400 in the API's error shape."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from grants.models import Grant
from keys.models import Key, KeyPolicyVersion
from kmsconsole.audit.models import AuditEvent
from policies.models import AccessKey
from tests.api.conftest import World
from tests.conftest import Persona
from tests.policies.analyzer_support import PARTNER_ROOT, ROOT, ROOT_ARN, allow, policy

pytestmark = pytest.mark.django_db


def simulation_body(world: World, **extra: Any) -> dict[str, Any]:
    return {"principal": world.admin_arn, "action": "kms:Encrypt", "key_id": world.key, **extra}


ENDPOINTS = [
    ("get", "/api/v1/keys/{key}/access", None, "kmsconsole:AnalyzeKeyAccess"),
    ("post", "/api/v1/keys/{key}/policy/compare", {"policy": policy(ROOT)}, "kmsconsole:AnalyzeKeyAccess"),
    ("get", "/api/v1/findings", None, "kmsconsole:ListFindings"),
    ("post", "/api/v1/simulations", "simulation", "kmsconsole:SimulatePolicy"),
]


def call(client: APIClient, world: World, method: str, path: str, body: Any) -> Any:
    if body == "simulation":
        body = simulation_body(world)
    return getattr(client, method)(path.replace("{key}", world.key), body, format="json")


def last_event(operation: str) -> AuditEvent:
    event = AuditEvent.objects.filter(operation=operation).order_by("-seq").first()
    assert event is not None
    return event


def state() -> tuple[Any, ...]:
    return (
        list(Key.objects.order_by("pk").values()),
        KeyPolicyVersion.objects.count(),
        Grant.objects.count(),
    )


@pytest.mark.parametrize(("method", "path", "body", "operation"), ENDPOINTS)
def test_anonymous_outsider_and_admin(
    world: World,
    outsider_api: APIClient,
    admin_api: APIClient,
    method: str,
    path: str,
    body: Any,
    operation: str,
) -> None:
    before = state()
    assert call(APIClient(), world, method, path, body).status_code == 401
    refused = call(outsider_api, world, method, path, body)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "AccessDeniedException"
    event = last_event(operation)
    assert (event.interface, event.decision) == ("api", "denied") and event.caller_arn.endswith(
        "user/outsider"
    )
    allowed = call(admin_api, world, method, path, body)
    assert allowed.status_code == 200, allowed.content
    event = last_event(operation)
    assert (event.interface, event.decision, event.caller_arn) == ("api", "allowed", world.admin_arn)
    assert state() == before  # read-only


def test_key_access_lists_every_principal_and_action(world: World, admin_api: APIClient) -> None:
    data = admin_api.get(f"/api/v1/keys/{world.key}/access").json()
    assert data["key_arn"].endswith(world.key) and "kms:Encrypt" in data["actions"]
    rows = {row["arn"]: row for row in data["principals"]}
    assert set(rows) >= {ROOT_ARN, world.admin_arn, "*"}
    admin_encrypt = next(cell for cell in rows[world.admin_arn]["access"] if cell["action"] == "kms:Encrypt")
    assert admin_encrypt["access"] == "allowed" and admin_encrypt["route"]["kind"] == "identity-policy"
    assert admin_encrypt["route"]["supporting"][0]["sid"] == "Enable IAM User Permissions"
    assert all(cell["access"] == "denied" for cell in rows["*"]["access"])
    ids = {finding["id"] for finding in data["findings"]}
    assert "grant-without-constraints" in ids  # the world's grant to the admin has no constraints
    # The event records who asked, not a copy of the answer.
    assert last_event("kmsconsole:AnalyzeKeyAccess").response_elements in (None, {})


def test_compare_names_gains_and_losses(world: World, admin_api: APIClient, partner: Any) -> None:
    partner(None)
    draft = policy(
        allow(ROOT_ARN, "kms:Describe*", "kms:Get*", "kms:Put*"), allow(PARTNER_ROOT, "kms:Decrypt")
    )
    data = admin_api.post(f"/api/v1/keys/{world.key}/policy/compare", {"policy": draft}, format="json").json()
    assert {(item["principal"], item["action"]) for item in data["gains"]} == {(PARTNER_ROOT, "kms:Decrypt")}
    losses = {(item["principal"], item["action"]) for item in data["losses"]}
    assert (world.admin_arn, "kms:ScheduleKeyDeletion") in losses and (
        world.admin_arn,
        "kms:GetKeyPolicy",
    ) not in losses
    assert last_event("kmsconsole:AnalyzeKeyAccess").response_elements["gains"] == 1
    bad = admin_api.post(f"/api/v1/keys/{world.key}/policy/compare", {"policy": "{"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "MalformedPolicyDocumentException"
    assert admin_api.post(f"/api/v1/keys/{world.key}/policy/compare", {}, format="json").status_code == 400


def test_findings_by_severity_and_bad_queries(world: World, admin_api: APIClient) -> None:
    data = admin_api.get("/api/v1/findings").json()
    assert data["keys_analysed"] == 3 and data["keys_hidden"] == 0 and data["next_after"] is None
    assert {"rotation-disabled", "grant-without-constraints"} <= {
        finding["id"] for finding in data["findings"]
    }
    medium = admin_api.get("/api/v1/findings?severity=medium").json()
    assert medium["findings"] and {finding["severity"] for finding in medium["findings"]} == {"medium"}
    first = admin_api.get("/api/v1/findings?limit=1").json()
    assert first["next_after"] and first["keys_analysed"] == 1
    second = admin_api.get(f"/api/v1/findings?limit=1&after={first['next_after']}").json()
    assert second["keys_analysed"] == 1 and {f["key_id"] for f in second["findings"]}.isdisjoint(
        {f["key_id"] for f in first["findings"]}
    )
    for query in ("severity=critical", "limit=0", "limit=1000", "after=nope", "limit=x"):
        response = admin_api.get(f"/api/v1/findings?{query}")
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == "ValidationException"


def test_findings_record_their_own_parameters_and_count_the_others(
    world: World, admin_api: APIClient
) -> None:
    """ListFindings records its query as every REST list does (kmsconsole.api.views.base.recorded_query): its own
    parameters by name, a long one cut as structured data, and one entry for however many others there are (a
    parameter it does not take is refused, 400 naming it, as every list refuses one)."""
    last = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    query = {f"p{index:03}": "v" * 256 for index in range(500)}
    others = admin_api.get("/api/v1/findings", {**query, "severity": "medium"})
    assert others.status_code == 400 and "p000" in others.json()["error"]["detail"]
    assert admin_api.get("/api/v1/findings", {"after": "a" * 1000}).status_code == 400
    assert admin_api.get("/api/v1/findings", {"severity": "medium"}).status_code == 200
    refused_others, refused, allowed = AuditEvent.objects.filter(
        seq__gt=last, operation="kmsconsole:ListFindings"
    ).order_by("seq")
    assert allowed.request_parameters["Query"] == {"severity": "medium"}
    assert refused_others.error_code == "ValidationException"
    assert refused_others.request_parameters["Query"] == {
        "severity": "medium",
        "(other parameters)": f"500 parameters, {500 * (4 + 256)} characters",
    }
    assert refused.request_parameters["Query"] == {"after": {"cut": "a" * 256, "length": 1000}}


def test_simulation_answers_and_refuses_bad_input(
    world: World, admin_api: APIClient, outsider: Persona
) -> None:
    allowed = admin_api.post("/api/v1/simulations", simulation_body(world), format="json").json()
    assert allowed["decision"] == "allowed" and allowed["caller_arn"] == world.admin_arn
    assert allowed["trace"][-1].startswith("decision: ALLOW")
    denied = admin_api.post(
        "/api/v1/simulations",
        simulation_body(
            world, principal=outsider.arn, encryption_context={"dept": "fin"}, source_ip="10.0.0.1"
        ),
        format="json",
    ).json()
    assert denied["decision"] == "denied" and denied["reason"] == "NO_IDENTITY_POLICY_ALLOWS"
    assert denied["access_denied_message"].startswith(f"User: {outsider.arn} is not authorized")
    drafted = admin_api.post(
        "/api/v1/simulations",
        simulation_body(
            world,
            draft_identity_policy={
                "name": "policy-0",
                "document": json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}],
                    }
                ),
            },
        ),
        format="json",
    ).json()
    assert drafted["decision"] == "denied" and drafted["draft_identity_policy"] == {
        "name": "policy-0",
        "replaced": True,
    }
    event = last_event("kmsconsole:SimulatePolicy")
    assert event.response_elements["decision"] == "denied"
    bad_inputs = [
        ({"action": "kms:Encrypt", "key_id": world.key}, "ValidationException"),
        (simulation_body(world, encryption_context=["x"]), "ValidationException"),
        (simulation_body(world, source_ip="not-an-ip"), "ValidationException"),
        (simulation_body(world, time="yesterday"), "ValidationException"),
        (simulation_body(world, action="kms:Fly"), "ValidationException"),
        (simulation_body(world, principal="arn:aws:iam::111122223333:user/ghost"), "NotFoundException"),
        (simulation_body(world, draft_key_policy="[]"), "MalformedPolicyDocumentException"),
        (simulation_body(world, grant_tokens=["not-a-token"]), "InvalidGrantTokenException"),
        (simulation_body(world, key_id="alias/none"), "NotFoundException"),
    ]
    for body, code in bad_inputs:
        response = admin_api.post("/api/v1/simulations", body, format="json")
        assert response.status_code in (400, 404), (body, response.content)
        assert response.json()["error"]["code"] == code, body
    # Grant tokens never reach the audit trail.
    admin_api.post(
        "/api/v1/simulations", simulation_body(world, grant_tokens=["secret-token"]), format="json"
    )
    assert "secret-token" not in json.dumps(last_event("kmsconsole:SimulatePolicy").request_parameters)


def test_findings_name_access_keys_nobody_used_for_months(
    world: World, admin_api: APIClient, make_user: Any
) -> None:
    idle = make_user("idle")
    AccessKey.objects.filter(access_key_id=idle.access_key_id).update(
        created_at=timezone.now() - timedelta(days=200)
    )
    data = admin_api.get("/api/v1/findings").json()
    assert [(f["access_key_id"], f["id"], f["owner_arn"]) for f in data["credential_findings"]] == [
        (idle.access_key_id, "access-key-unused", idle.arn)
    ]
    assert admin_api.get("/api/v1/findings?severity=low").json()["credential_findings"] == []
    assert admin_api.get("/api/v1/findings?limit=1").json()["credential_findings"]  # the first page has them


def test_simulating_on_a_key_needs_reading_its_tags(
    world: World, make_user: Any, api_as: Any, admin_api: APIClient
) -> None:
    """A trace quotes the key's tag value under a condition on aws:ResourceTag (and a draft policy's yes or no
    tests a guess): simulating needs kms:ListResourceTags on the key as well as kms:GetKeyPolicy."""
    tagged = admin_api.put(
        f"/api/v1/keys/{world.key}/tags",
        {"tags": [{"tag_key": "project", "tag_value": "zephyr"}]},
        format="json",
    )
    assert tagged.status_code in (200, 204), tagged.content
    draft_policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": world.admin_arn},
                    "Action": "kms:Encrypt",
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:ResourceTag/project": "guess"}},
                }
            ],
        }
    )
    body = simulation_body(world, draft_key_policy=draft_policy)
    reader_actions = ["kmsconsole:SimulatePolicy", "kms:GetKeyPolicy"]
    policy_reader = make_user("policy-reader", json.dumps(allow_all_of(reader_actions)))
    refused = api_as(policy_reader).post("/api/v1/simulations", body, format="json")
    assert refused.status_code == 403, refused.content
    assert "zephyr" not in refused.content.decode()
    assert "kms:ListResourceTags" in refused.json()["error"]["message"]
    assert last_event("kmsconsole:SimulatePolicy").decision == "denied"

    # (The world's key has a grant, which a simulation names: kms:ListGrants too.)
    tag_reader = make_user(
        "tag-reader", json.dumps(allow_all_of([*reader_actions, "kms:ListResourceTags", "kms:ListGrants"]))
    )
    answered = api_as(tag_reader).post("/api/v1/simulations", body, format="json")
    assert answered.status_code == 200, answered.content
    assert answered.json()["decision"] == "denied"


def test_a_keys_analysis_needs_reading_its_grants_and_rotation(
    world: World, make_user: Any, api_as: Any, admin_api: APIClient
) -> None:
    """The matrix's routes and the findings name the key's grants (the world's grant to the admin, without
    constraints) and report whether rotation is on: GET …/access needs kms:ListGrants and kms:GetKeyRotationStatus
    on the key as well, and GET /api/v1/findings leaves out, counted, the keys a caller may not read them of."""
    rules = [
        "kmsconsole:AnalyzeKeyAccess",
        "kmsconsole:ListFindings",
        "kms:GetKeyPolicy",
        "kms:ListResourceTags",
    ]
    for name, missing, actions in (
        ("no-grants", "kms:ListGrants", rules),
        ("no-rotation", "kms:GetKeyRotationStatus", [*rules, "kms:ListGrants"]),
    ):
        client = api_as(make_user(name, json.dumps(allow_all_of(actions))))
        refused = client.get(f"/api/v1/keys/{world.key}/access")
        assert refused.status_code == 403, refused.content
        assert (
            missing in refused.json()["error"]["message"] and world.grant[:12] not in refused.content.decode()
        )
        assert last_event("kmsconsole:AnalyzeKeyAccess").decision == "denied"
        page = client.get("/api/v1/findings").json()
        assert (page["keys_analysed"], page["keys_hidden"], page["findings"]) == (0, 3, [])
    reader = make_user(
        "reader", json.dumps(allow_all_of([*rules, "kms:ListGrants", "kms:GetKeyRotationStatus"]))
    )
    answered = api_as(reader).get(f"/api/v1/keys/{world.key}/access")
    assert answered.status_code == 200 and world.grant[:12] in answered.content.decode()
    assert api_as(reader).get("/api/v1/findings").json()["keys_analysed"] == 3


def allow_all_of(actions: list[str]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}


def test_another_accounts_principals_identity_policies_are_not_simulated(
    world: World, make_user: Any, partner: Any
) -> None:
    """Simulating reads a principal's identity policies and quotes them in the trace: a caller simulates only its
    own account's principals. Another account's is refused exactly as one that does not exist."""
    from policies.models import Account
    from tests.api.conftest import client_with, token_for
    from tests.conftest import ALLOW_ALL, PARTNER_ACCOUNT

    secret_sid = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Sid": "SecretSidOfAlice", "Effect": "Allow", "Action": "kms:*", "Resource": "*"}],
        }
    )
    make_user("alice-secret-name", secret_sid)
    partner("mallory", ALLOW_ALL)
    mallory = client_with(token_for(Account.objects.get(account_id=PARTNER_ACCOUNT), "mallory"))
    created = mallory.post("/api/v1/keys", {"description": "B's key"}, format="json")
    assert created.status_code == 201, created.content
    b_key = created.json()["key_id"]
    for principal in (
        "arn:aws:iam::111122223333:user/alice-secret-name",
        "arn:aws:iam::111122223333:user/nobody-at-all",
        "111122223333",
    ):
        simulated = mallory.post(
            "/api/v1/simulations",
            {"principal": principal, "action": "kms:Encrypt", "key_id": b_key},
            format="json",
        )
        assert simulated.status_code == 404, simulated.content
        assert "does not exist in this service" in simulated.json()["error"]["message"]
        assert "SecretSidOfAlice" not in simulated.content.decode()
    own = mallory.post(
        "/api/v1/simulations",
        {
            "principal": f"arn:aws:iam::{PARTNER_ACCOUNT}:user/mallory",
            "action": "kms:Encrypt",
            "key_id": b_key,
        },
        format="json",
    )
    assert own.status_code == 200 and own.json()["decision"] == "allowed", own.content


def test_another_account_is_never_allowed_what_does_not_work_across_accounts(
    world: World, admin_api: APIClient, partner: Any
) -> None:
    """The key policy gives another account's root kms:* and its user badmin may do anything in its IAM: both are
    allowed the cross-account operations only; the others are refused, saying why."""
    from tests.conftest import ALLOW_ALL
    from tests.policies.analyzer_support import PARTNER, make_key, user_arn

    partner(None)
    partner("badmin", ALLOW_ALL)
    key = make_key(policy(ROOT, allow(PARTNER_ROOT, "kms:*", sid="Partner")))
    data = admin_api.get(f"/api/v1/keys/{key.key_id}/access").json()
    rows = {row["arn"]: {cell["action"]: cell for cell in row["access"]} for row in data["principals"]}
    assert user_arn("badmin", PARTNER) not in rows  # another account is shown as a whole
    for arn in (PARTNER_ROOT,):
        cells = rows[arn]
        for action in ("kms:Encrypt", "kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant", "kms:ListGrants"):
            assert cells[action]["access"] == "allowed", (arn, action)
        for action in (
            "kms:PutKeyPolicy",
            "kms:GetKeyPolicy",
            "kms:ScheduleKeyDeletion",
            "kms:DisableKey",
            "kms:TagResource",
        ):
            assert cells[action]["access"] == "denied", (arn, action)
            assert cells[action]["explanation"].startswith("not available across accounts"), cells[action]


def test_a_key_owner_is_shown_other_accounts_without_their_principals_or_identity_policies(
    admin_api: APIClient, partner: Any
) -> None:
    from tests.policies.analyzer_support import PARTNER_SECRETS, UNRELATED, partner_with_secrets

    key = partner_with_secrets(partner)
    response = admin_api.get(f"/api/v1/keys/{key.key_id}/access")
    assert response.status_code == 200
    data = response.json()
    rows = {row["arn"]: {cell["action"]: cell for cell in row["access"]} for row in data["principals"]}
    # The partner account as a whole: what the key policy gives it, as far as any IAM could let it (its own IAM is
    # never read: badmin's Deny of Decrypt is the partner's, not shown); the unrelated account not at all.
    assert PARTNER_ROOT in rows and f"arn:aws:iam::{UNRELATED}:root" not in rows
    assert all(":user/" not in arn or arn.startswith("arn:aws:iam::111122223333:") for arn in rows)
    encrypt = rows[PARTNER_ROOT]["kms:Encrypt"]
    assert encrypt["access"] == "allowed"
    assert encrypt["route"]["supporting"][0]["shown_as"] == "an identity policy of the caller's account"
    assert rows[PARTNER_ROOT]["kms:Decrypt"]["access"] == "allowed"
    text = response.content.decode()
    for secret in PARTNER_SECRETS:
        assert secret not in text, secret
    compared = admin_api.post(
        f"/api/v1/keys/{key.key_id}/policy/compare", {"policy": policy(ROOT)}, format="json"
    )
    assert compared.status_code == 200 and PARTNER_ROOT in compared.content.decode()
    for secret in PARTNER_SECRETS:
        assert secret not in compared.content.decode(), secret
    findings = admin_api.get("/api/v1/findings").content.decode()
    assert "Account 444455556666 (its principals)" in findings
    for secret in PARTNER_SECRETS:
        assert secret not in findings, secret


def access_rows(api: APIClient, key: Key) -> tuple[Any, dict[str, dict[str, Any]]]:
    """A key's access answer, and its cells by principal ARN and action."""
    response = api.get(f"/api/v1/keys/{key.key_id}/access")
    assert response.status_code == 200
    principals = response.json()["principals"]
    return response, {row["arn"]: {cell["action"]: cell for cell in row["access"]} for row in principals}


# Another account's identity policy conditions: the key owner must never see them (issue: Way facts leaked).
B_CONDITION_SECRETS = ("203.0.113.77", "SecretTenant", "acme-hidden")


def conditioned_partner_key(partner: Any) -> Key:
    """A key whose policy gives the partner account's user bob Encrypt and Decrypt (naming it), and bob an identity
    policy allowing kms:* only from 203.0.113.77/32 and under an encryption context SecretTenant=acme-hidden."""
    from tests.policies.analyzer_support import PARTNER, identity_policy, make_key, user_arn

    partner(
        "bob",
        identity_policy(
            "kms:*",
            IpAddress={"aws:SourceIp": "203.0.113.77/32"},
            StringEquals={"kms:EncryptionContext:SecretTenant": "acme-hidden"},
        ),
    )
    return make_key(
        policy(ROOT, allow(user_arn("bob", PARTNER), "kms:Encrypt", "kms:Decrypt", sid="Partner"))
    )


def test_another_accounts_identity_policy_conditions_never_reach_the_key_owner(
    admin_api: APIClient, partner: Any
) -> None:
    key = conditioned_partner_key(partner)
    response, rows = access_rows(admin_api, key)
    # What the key policy gives the account, unconditionally (its own IAM is its own business).
    assert rows[PARTNER_ROOT]["kms:Encrypt"]["access"] == "allowed"
    assert rows[PARTNER_ROOT]["kms:Decrypt"]["access"] == "allowed"
    compared = admin_api.post(
        f"/api/v1/keys/{key.key_id}/policy/compare", {"policy": policy(ROOT)}, format="json"
    )
    assert compared.status_code == 200
    assert {(item["principal"], item["action"]) for item in compared.json()["losses"]} >= {
        (PARTNER_ROOT, "kms:Encrypt")
    }
    findings = admin_api.get("/api/v1/findings").content.decode()
    assert "Account 444455556666 (its principals)" in findings
    for text in (response.content.decode(), compared.content.decode(), findings):
        for secret in B_CONDITION_SECRETS:
            assert secret not in text, secret


def test_a_draft_conditioned_on_principal_arn_cannot_enumerate_another_accounts_principals(
    world: World, admin_api: APIClient, partner: Any
) -> None:
    from tests.policies.analyzer_support import PARTNER, identity_policy

    partner("secretagent", identity_policy("kms:*"))

    def compare_with(pattern: str) -> Any:
        draft = policy(
            allow(ROOT_ARN, "kms:*"),
            allow(
                PARTNER_ROOT,
                "kms:Encrypt",
                StringLike={"aws:PrincipalArn": f"arn:aws:iam::{PARTNER}:{pattern}"},
            ),
        )
        answer = admin_api.post(f"/api/v1/keys/{world.key}/policy/compare", {"policy": draft}, format="json")
        assert answer.status_code == 200
        return json.loads(answer.content.decode().replace(pattern, "PATTERN"))

    hit, miss = compare_with("user/secret*"), compare_with("user/zzz*")
    assert hit == miss
    gains = {(item["principal"], item["action"]) for item in hit["gains"]}
    assert (PARTNER_ROOT, "kms:Encrypt") in gains
    assert "aws:PrincipalArn" in json.dumps(hit["gains"])  # the owner's own condition, as written


def test_another_account_is_shown_what_the_key_policy_gives_it_under_the_key_policys_conditions(
    admin_api: APIClient, partner: Any
) -> None:
    from tests.policies.analyzer_support import identity_policy, make_key

    partner("alice", identity_policy("kms:*"))
    key = make_key(
        policy(
            ROOT,
            allow(PARTNER_ROOT, "kms:Encrypt", StringEquals={"kms:EncryptionContext:Owner": "owner-written"}),
        )
    )
    response, rows = access_rows(admin_api, key)
    encrypt = rows[PARTNER_ROOT]["kms:Encrypt"]
    assert encrypt["access"] == "conditional"
    assert "owner-written" in json.dumps(encrypt)
    assert rows[PARTNER_ROOT]["kms:Decrypt"]["access"] == "denied"
    assert rows[PARTNER_ROOT]["kms:PutKeyPolicy"]["explanation"].startswith("not available across accounts")
    assert "alice" not in response.content.decode()
