"""The policy simulator and the access diff agree with the real decision of an actual request.

For a table of cases (users allowed by the key policy, by IAM through the root statement, by a group's policy, a role
session, another account's user and root, explicit denies, encryption-context and source-IP conditions, time
conditions, grants with constraints, a grant that has not taken effect with and without its token), the request is
made with boto3 over the live server as that principal and its outcome compared with the simulator's answer (and
with the analyzer's, where the analyzer can decide without a request). Then a draft key policy: the diff's
predictions, and the simulator's answers with the draft, are compared with real requests after it is saved; and a
draft identity policy, after it is put.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from policies.analyzer import services as analyzer
from policies.engine.analysis import Access
from policies.models import Account
from tests.conftest import PARTNER_ACCOUNT, Persona, as_operator
from tests.policies.analyzer_support import (
    PARTNER_ROOT,
    ROOT,
    ROOT_ARN,
    allow,
    deny,
    grant,
    grant_token,
    group_with,
    identity_policy,
    make_key,
    policy,
    role_arn,
    run_as,
    user_arn,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

LOOPBACK = "127.0.0.1"  # where the live server sees boto3's requests come from
DENIED = "AccessDeniedException"


@pytest.fixture(autouse=True)
def grants_take_effect_at_once(settings: Any) -> None:
    settings.KMS_GRANT_PROPAGATION_SECONDS = 0
    settings.KMS_GRANT_REVOCATION_PROPAGATION = "immediate"


def real_request(
    client: Any, action: str, key_arn: str, context: dict[str, str], tokens: list[str], blob: bytes
) -> bool:
    """Make the request; True unless it is refused with AccessDeniedException."""
    ec = {"EncryptionContext": context} if context else {}
    grant_tokens = {"GrantTokens": tokens} if tokens else {}
    calls: dict[str, Callable[[], Any]] = {
        "kms:Encrypt": lambda: client.encrypt(KeyId=key_arn, Plaintext=b"p", **ec, **grant_tokens),
        "kms:Decrypt": lambda: client.decrypt(CiphertextBlob=blob, KeyId=key_arn, **ec, **grant_tokens),
        "kms:GenerateDataKey": lambda: client.generate_data_key(
            KeyId=key_arn, KeySpec="AES_256", **ec, **grant_tokens
        ),
        "kms:GenerateDataKeyWithoutPlaintext": lambda: client.generate_data_key_without_plaintext(
            KeyId=key_arn, KeySpec="AES_256", **ec, **grant_tokens
        ),
        "kms:DescribeKey": lambda: client.describe_key(KeyId=key_arn, **grant_tokens),
        "kms:GetKeyPolicy": lambda: client.get_key_policy(KeyId=key_arn, PolicyName="default"),
        "kms:ListGrants": lambda: client.list_grants(KeyId=key_arn),
        "kms:GetKeyRotationStatus": lambda: client.get_key_rotation_status(KeyId=key_arn),
        "kms:ListResourceTags": lambda: client.list_resource_tags(KeyId=key_arn),
    }
    try:
        calls[action]()
    except ClientError as exc:
        if exc.response["Error"]["Code"] == DENIED:
            return False
        raise
    return True


@dataclass
class World:
    key_arn: str
    key_id: str
    personas: dict[str, Persona]
    principals: dict[str, str]  # persona name -> the principal ARN the analyzer and simulator use
    tokens: dict[str, str] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)


def _blob(admin_kms: Any, key_arn: str, context: dict[str, str]) -> bytes:
    ec = {"EncryptionContext": context} if context else {}
    return bytes(admin_kms.encrypt(KeyId=key_arn, Plaintext=b"p", **ec)["CiphertextBlob"])


@pytest.fixture
def world(
    account: Account,
    admin: Persona,
    make_user: Callable[..., Persona],
    role_session: Callable[..., Persona],
    partner: Callable[..., Persona],
    kms_client: Callable[..., Any],
    settings: Any,
) -> World:
    personas = {
        "dev": make_user(
            "dev", identity_policy("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey")
        ),
        "named": make_user("named"),
        "analyst": make_user("analyst"),
        "grouped": make_user("grouped"),
        "denied": make_user(
            "denied", identity_policy("kms:*"), identity_policy("kms:Decrypt", effect="Deny")
        ),
        "grantee": make_user("grantee"),
        "app": role_session("app", identity_policy("kms:Encrypt", "kms:DescribeKey")),
        "pat": partner("pat", identity_policy("kms:Decrypt", "kms:DescribeKey")),
        "partner-root": partner(None),
    }
    group_with(account, "readers", ["grouped"], identity_policy("kms:DescribeKey", "kms:GetKeyPolicy"))
    key = make_key(
        policy(
            ROOT,
            allow(user_arn("named"), "kms:Encrypt", "kms:DescribeKey", sid="Named"),
            allow(
                user_arn("analyst"),
                "kms:Encrypt",
                "kms:Decrypt",
                sid="Finance",
                StringEquals={"kms:EncryptionContext:dept": "fin"},
            ),
            allow(PARTNER_ROOT, "kms:Encrypt", "kms:Decrypt", "kms:DescribeKey", sid="Partner"),
            deny("*", "kms:GenerateDataKey", sid="Office", NotIpAddress={"aws:SourceIp": "10.0.0.0/8"}),
            allow(
                user_arn("named"),
                "kms:GenerateDataKeyWithoutPlaintext",
                sid="Loopback",
                IpAddress={"aws:SourceIp": "127.0.0.0/8"},
            ),
            allow(
                user_arn("named"),
                "kms:GetKeyRotationStatus",
                sid="Since2001",
                DateGreaterThan={"aws:CurrentTime": "2001-01-01T00:00:00Z"},
            ),
            allow(
                user_arn("named"),
                "kms:ListResourceTags",
                sid="Before2001",
                DateLessThan={"aws:CurrentTime": "2001-01-01T00:00:00Z"},
            ),
        )
    )
    key_arn = key.arn
    grant(key, user_arn("grantee"), "Encrypt", "Decrypt", EncryptionContextSubset={"app": "web"})
    settings.KMS_GRANT_PROPAGATION_SECONDS = 3600
    _, pending_token = grant_token(
        key, user_arn("grantee"), "GenerateDataKey", "GenerateDataKeyWithoutPlaintext"
    )
    settings.KMS_GRANT_PROPAGATION_SECONDS = 0
    admin_kms = kms_client(admin)
    contexts = ({}, {"dept": "fin"}, {"dept": "hr"}, {"app": "web"}, {"app": "db"})
    blobs = {repr(sorted(context.items())): _blob(admin_kms, key_arn, context) for context in contexts}
    principals = {name: persona.arn for name, persona in personas.items()}
    return World(key_arn, str(key.key_id), personas, principals, {"pending": pending_token}, blobs)


# (persona, action, encryption context, grant tokens by name)
CASES: list[tuple[str, str, dict[str, str], tuple[str, ...]]] = [
    ("dev", "kms:Encrypt", {}, ()),
    ("dev", "kms:Decrypt", {}, ()),
    ("dev", "kms:GenerateDataKey", {}, ()),  # the Office deny: not from 10.0.0.0/8
    ("dev", "kms:GetKeyPolicy", {}, ()),
    ("named", "kms:Encrypt", {}, ()),
    ("named", "kms:Decrypt", {}, ()),
    ("named", "kms:GetKeyPolicy", {}, ()),
    ("named", "kms:GenerateDataKeyWithoutPlaintext", {}, ()),  # from the loopback
    ("named", "kms:GetKeyRotationStatus", {}, ()),  # after 2001
    ("named", "kms:ListResourceTags", {}, ()),  # before 2001
    ("analyst", "kms:Encrypt", {"dept": "fin"}, ()),
    ("analyst", "kms:Encrypt", {"dept": "hr"}, ()),
    ("analyst", "kms:Encrypt", {}, ()),
    ("analyst", "kms:Decrypt", {"dept": "fin"}, ()),
    ("analyst", "kms:DescribeKey", {}, ()),
    ("grouped", "kms:DescribeKey", {}, ()),
    ("grouped", "kms:GetKeyPolicy", {}, ()),
    ("grouped", "kms:Encrypt", {}, ()),
    ("denied", "kms:Encrypt", {}, ()),
    ("denied", "kms:Decrypt", {}, ()),
    ("denied", "kms:ListGrants", {}, ()),
    ("app", "kms:Encrypt", {}, ()),
    ("app", "kms:DescribeKey", {}, ()),
    ("app", "kms:Decrypt", {}, ()),
    ("pat", "kms:Decrypt", {}, ()),
    ("pat", "kms:DescribeKey", {}, ()),
    ("pat", "kms:Encrypt", {}, ()),  # the key policy allows its account, its own IAM does not
    ("partner-root", "kms:Encrypt", {}, ()),
    ("partner-root", "kms:GenerateDataKeyWithoutPlaintext", {}, ()),
    ("grantee", "kms:Encrypt", {"app": "web"}, ()),
    ("grantee", "kms:Encrypt", {"app": "db"}, ()),
    ("grantee", "kms:Decrypt", {"app": "web"}, ()),
    ("grantee", "kms:DescribeKey", {}, ()),
    ("grantee", "kms:GenerateDataKey", {}, ()),  # a grant not yet in effect, no token
    ("grantee", "kms:GenerateDataKey", {}, ("pending",)),  # ... with its token: but the Office deny
    ("grantee", "kms:GenerateDataKeyWithoutPlaintext", {}, ()),
    ("grantee", "kms:GenerateDataKeyWithoutPlaintext", {}, ("pending",)),  # the token makes it usable now
]


def simulate(world: World, admin: Persona, name: str, action: str, **options: Any) -> Any:
    """The simulator's answer for a request like boto3's over the live server (unless `options` say otherwise):
    as the admin for its own account's principals, as the operator for the partner account's (another account's
    principals are not the admin's to simulate)."""
    request = {"source_ip": LOOPBACK, "time": datetime.now(UTC), "secure_transport": False, **options}
    principal = world.principals[name]

    def work(ctx: Any) -> Any:
        return analyzer.policy_simulate(
            ctx=ctx, principal=principal, action=action, key_id=world.key_arn, **request
        )

    if f":{PARTNER_ACCOUNT}:" in principal:
        return as_operator("kmsconsole:SimulatePolicy", work)
    return run_as(admin, "kmsconsole:SimulatePolicy", work)


def test_the_simulator_and_the_analyzer_agree_with_real_requests(
    world: World, admin: Persona, kms_client: Callable[..., Any]
) -> None:
    # The operator's analysis: a key owner is shown another account as a whole (policies/analyzer/shown.py), the
    # operator each of its principals, as the real requests are made.
    matrix = run_as(
        None,
        "kmsconsole:AnalyzeKeyAccess",
        lambda ctx: analyzer.key_access_analyze(ctx=ctx, key_id=world.key_id),
    ).matrix
    disagreements = []
    outcomes = []
    for name, action, context, token_names in CASES:
        tokens = [world.tokens[token] for token in token_names]
        blob = world.blobs[repr(sorted(context.items()))]
        real = real_request(kms_client(world.personas[name]), action, world.key_arn, context, tokens, blob)
        simulated = simulate(
            world, admin, name, action, encryption_context=context or None, grant_tokens=tokens
        )
        outcomes.append(real)
        if simulated.allowed != real:
            disagreements.append((name, action, context, token_names, real, simulated.decision.explanation()))
        subject = role_arn("app") if name == "app" else world.principals[name]
        verdict = matrix.verdict(subject, action)
        if verdict.access is not Access.CONDITIONAL and verdict.allowed != real:
            disagreements.append((name, action, "analyzer", real, verdict.describe()))
        if verdict.access is Access.CONDITIONAL and not context and not tokens and real:
            # Allowed although the request carried nothing the conditions name: only the loopback and the time.
            assert any("aws:SourceIp" in when or "aws:CurrentTime" in when for when in verdict.conditions)
    assert not disagreements, disagreements
    assert 10 < sum(outcomes) < len(outcomes) - 10  # the table has both outcomes in numbers
    # The analyzer left to a request what only a request can decide.
    assert matrix.verdict(user_arn("analyst"), "kms:Encrypt").access is Access.CONDITIONAL
    assert matrix.verdict(user_arn("dev"), "kms:GenerateDataKey").access is Access.CONDITIONAL
    assert matrix.verdict(user_arn("grantee"), "kms:Encrypt").access is Access.CONDITIONAL


def test_the_simulator_explains_and_answers_for_other_requests(world: World, admin: Persona) -> None:
    office = simulate(world, admin, "dev", "kms:GenerateDataKey")
    assert not office.allowed
    assert (
        office.decision.explanation()
        == "denied by statement 'Office' in the key policy: an explicit deny overrides every allow"
    )
    data = office.to_dict()
    assert data["access_denied_message"].endswith("with an explicit deny in a resource-based policy")
    assert any("statement 'Office'" in note and "=> applies" in note for note in data["trace"])
    from_office = simulate(world, admin, "dev", "kms:GenerateDataKey", source_ip="10.1.2.3")
    assert from_office.allowed and from_office.decision.statement.policy_name == "policy-0"
    before_2001 = simulate(
        world, admin, "named", "kms:ListResourceTags", time=datetime(2000, 6, 1, tzinfo=UTC)
    )
    assert before_2001.allowed and before_2001.decision.statement.sid == "Before2001"


def test_a_saved_draft_key_policy_does_what_the_diff_and_the_simulator_said(
    world: World, admin: Persona, kms_client: Callable[..., Any]
) -> None:
    draft = policy(
        allow(ROOT_ARN, "kms:Describe*", "kms:Get*", "kms:Put*", "kms:List*", sid="Manage"),
        allow(user_arn("named"), "kms:Decrypt", "kms:GetKeyPolicy", sid="Named"),
        allow(PARTNER_ROOT, "kms:DescribeKey", sid="Partner"),
        allow(role_arn("app"), "kms:Decrypt", sid="App"),
    )
    comparison = run_as(
        admin,
        "kmsconsole:AnalyzeKeyAccess",
        lambda ctx: analyzer.key_policy_compare(ctx=ctx, key_id=world.key_id, policy=draft),
    )
    predicted = {(change.subject.arn, change.action): change.direction for change in comparison.changes}
    assert predicted[(user_arn("named"), "kms:Encrypt")] == "loses"
    assert predicted[(user_arn("named"), "kms:Decrypt")] == "gains"
    assert predicted[(role_arn("app"), "kms:Decrypt")] == "gains"
    assert predicted[(user_arn("dev"), "kms:Encrypt")] == "loses"
    assert predicted[(PARTNER_ROOT, "kms:Encrypt")] == "loses"
    checks = [
        ("named", "kms:Encrypt"),
        ("named", "kms:Decrypt"),
        ("named", "kms:GetKeyPolicy"),
        ("dev", "kms:Encrypt"),
        ("dev", "kms:DescribeKey"),
        ("grouped", "kms:GetKeyPolicy"),
        ("app", "kms:Decrypt"),
        ("app", "kms:Encrypt"),
        ("pat", "kms:Decrypt"),
        ("pat", "kms:DescribeKey"),
        ("partner-root", "kms:Encrypt"),
        ("partner-root", "kms:DescribeKey"),
        ("grantee", "kms:DescribeKey"),
    ]
    with_draft = {check: simulate(world, admin, *check, draft_key_policy=draft).allowed for check in checks}
    kms_client(admin).put_key_policy(KeyId=world.key_arn, PolicyName="default", Policy=draft)
    disagreements = []
    for name, action in checks:
        real = real_request(
            kms_client(world.personas[name]), action, world.key_arn, {}, [], world.blobs["[]"]
        )
        subject = role_arn("app") if name == "app" else world.principals[name]
        direction = predicted.get((subject, action))
        if (direction == "gains" and not real) or (direction == "loses" and real):
            disagreements.append((name, action, direction, real))
        if with_draft[(name, action)] != real:
            disagreements.append((name, action, "simulator with the draft", real))
    assert not disagreements, disagreements
    assert {direction for (subject, action), direction in predicted.items()} >= {"gains", "loses"}


def test_a_draft_identity_policy_does_what_the_simulator_said(
    world: World, admin: Persona, kms_client: Callable[..., Any], account: Account
) -> None:
    replacement = identity_policy("kms:DescribeKey")
    added = identity_policy("kms:GetKeyPolicy")
    replaced = simulate(world, admin, "dev", "kms:Encrypt", draft_identity_policy=("policy-0", replacement))
    assert not replaced.allowed and replaced.replaced_identity_policy
    extra = simulate(world, admin, "dev", "kms:GetKeyPolicy", draft_identity_policy=("extra", added))
    assert extra.allowed and not extra.replaced_identity_policy
    assert extra.identity_policy_names == ("policy-0", "extra")
    from policies import services
    from policies.models import IamUser

    user = IamUser.objects.get(name="dev")
    for name, document in (("policy-0", replacement), ("extra", added)):
        as_operator(
            "iam:PutUserPolicy",
            lambda ctx, n=name, d=document: services.identity_policy_put(
                ctx=ctx, owner=user, policy_name=n, document=d
            ),
        )
    dev = kms_client(world.personas["dev"])
    assert real_request(dev, "kms:Encrypt", world.key_arn, {}, [], b"") is False
    assert real_request(dev, "kms:GetKeyPolicy", world.key_arn, {}, [], b"") is True
