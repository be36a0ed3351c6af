"""The access analyzer on purpose-built policies: every principal of the store (roots, users with their groups'
policies, roles, another account's principals, "*") for every action of the key's type, with the route the
engine's decision took; "allowed when" for what only a request can decide; findings, policy and store ones."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from keys.services import crypto, deletion, rotation
from keys.services.access import key_for
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core import errors
from kmsconsole.operations import OPERATIONS
from policies import services
from policies.analyzer import services as analyzer
from policies.analyzer.access import key_actions
from policies.engine.analysis import Access
from policies.models import AccessKey, Account
from tests.conftest import ALLOW_ALL, Persona, as_operator
from tests.policies.analyzer_support import (
    ANALYSIS_READS,
    PARTNER,
    PARTNER_ROOT,
    ROOT,
    ROOT_ARN,
    allow,
    bare_user,
    deny,
    grant,
    group_with,
    identity_policy,
    make_key,
    policy,
    role_arn,
    role_with,
    run_as,
    user_arn,
)

pytestmark = pytest.mark.django_db

ANYONE = "*"


@pytest.fixture(autouse=True)
def grants_take_effect_at_once(settings: Any) -> None:
    settings.KMS_GRANT_PROPAGATION_SECONDS = 0


def analyze(key: Any, persona: Persona | None = None) -> analyzer.KeyAccessReport:
    return run_as(
        persona,
        "kmsconsole:AnalyzeKeyAccess",
        lambda ctx: analyzer.key_access_analyze(ctx=ctx, key_id=str(key.key_id)),
        KeyId=str(key.key_id),
    )


@pytest.fixture
def store(account: Account, partner: Callable[..., Persona]) -> dict[str, Any]:
    """dev (IAM: Encrypt, Decrypt), ops (group operators: DescribeKey), named (no IAM; the key policy names it),
    role app (IAM: GenerateDataKey), partner user pat (IAM: Decrypt) and the partner account's root."""
    bare_user(account, "dev", identity_policy("kms:Encrypt", "kms:Decrypt"))
    bare_user(account, "ops")
    group_with(account, "operators", ["ops"], identity_policy("kms:DescribeKey"))
    bare_user(account, "named")
    role_with(account, "app", identity_policy("kms:GenerateDataKey"))
    partner("pat", identity_policy("kms:Decrypt"))
    return {"partner_account": Account.objects.get(account_id=PARTNER)}


def test_each_principal_and_action_with_its_route(store: dict[str, Any]) -> None:
    key = make_key(
        policy(
            ROOT,
            allow(user_arn("named"), "kms:Encrypt", sid="Named"),
            allow(PARTNER_ROOT, "kms:Decrypt", "kms:DescribeKey", sid="Partner"),
        )
    )
    matrix = analyze(key).matrix
    assert matrix.actions == key_actions(key)
    subjects = [subject.arn for subject in matrix.subjects]
    assert subjects[-1] == ANYONE
    for arn in (
        ROOT_ARN,
        user_arn("dev"),
        user_arn("ops"),
        role_arn("app"),
        PARTNER_ROOT,
        user_arn("pat", PARTNER),
    ):
        assert arn in subjects

    dev = matrix.verdict(user_arn("dev"), "kms:Encrypt")
    assert dev.access is Access.ALLOWED and dev.route is not None
    assert dev.route.kind == "identity-policy"
    assert dev.route.statement.policy_name == "policy-0"
    assert dev.route.supporting[0].sid == "Enable IAM User Permissions"
    assert matrix.verdict(user_arn("dev"), "kms:ScheduleKeyDeletion").access is Access.DENIED
    # A group's policy counts for its members, as in a request.
    ops = matrix.verdict(user_arn("ops"), "kms:DescribeKey")
    assert ops.allowed and ops.route.statement.policy_name == "operators-policy"
    assert matrix.verdict(user_arn("ops"), "kms:Encrypt").access is Access.DENIED
    named = matrix.verdict(user_arn("named"), "kms:Encrypt")
    assert named.allowed and named.route.kind == "key-policy" and named.route.statement.sid == "Named"
    assert matrix.verdict(user_arn("named"), "kms:Decrypt").access is Access.DENIED
    app = matrix.verdict(role_arn("app"), "kms:GenerateDataKey")
    assert app.allowed and app.route.statement.policy_name == "role-policy-0"
    root = matrix.verdict(ROOT_ARN, "kms:PutKeyPolicy")
    assert root.allowed and root.route.statement.sid == "Enable IAM User Permissions"
    # Another account: the key policy names the account, and its IAM must agree (its root needs none).
    pat = matrix.verdict(user_arn("pat", PARTNER), "kms:Decrypt")
    assert pat.allowed and pat.route.kind == "cross-account"
    assert pat.route.statement.sid == "Partner" and pat.route.supporting[0].policy_name == "policy-0"
    assert matrix.verdict(user_arn("pat", PARTNER), "kms:DescribeKey").access is Access.DENIED
    assert matrix.verdict(PARTNER_ROOT, "kms:DescribeKey").allowed
    assert matrix.verdict(PARTNER_ROOT, "kms:Encrypt").access is Access.DENIED
    assert all(verdict.access is Access.DENIED for verdict in dict(matrix.rows())[matrix.subjects[-1]])


def test_anyone_and_conditions_only_a_request_can_decide(store: dict[str, Any]) -> None:
    key = make_key(
        policy(
            ROOT,
            allow("*", "kms:DescribeKey", sid="Public"),
            allow(
                user_arn("named"),
                "kms:Decrypt",
                sid="Finance",
                StringEquals={"kms:EncryptionContext:dept": "fin"},
            ),
            deny("*", "kms:Decrypt", sid="Office", NotIpAddress={"aws:SourceIp": "10.0.0.0/8"}),
            allow(
                PARTNER_ROOT,
                "kms:Encrypt",
                sid="Narrowed",
                StringEquals={"kms:CallerAccount": "999999999999"},
            ),
        )
    )
    matrix = analyze(key).matrix
    public = matrix.verdict(ANYONE, "kms:DescribeKey")
    assert public.allowed and public.route.statement.sid == "Public"
    named = matrix.verdict(user_arn("named"), "kms:Decrypt")
    assert named.access is Access.CONDITIONAL
    assert named.conditions == ("kms:EncryptionContext:dept is 'fin' and aws:SourceIp is in '10.0.0.0/8'",)
    assert named.ways[0].route.statement.sid == "Finance"
    # dev's IAM allows Decrypt through the root statement; the Deny leaves it allowed only from the office.
    dev = matrix.verdict(user_arn("dev"), "kms:Decrypt")
    assert dev.access is Access.CONDITIONAL and dev.conditions == ("aws:SourceIp is in '10.0.0.0/8'",)
    # A condition on who calls is decided, not reported: the partner's account is not 999999999999.
    assert matrix.verdict(PARTNER_ROOT, "kms:Encrypt").access is Access.DENIED
    assert "allowed only when" in named.describe()


def test_grants_are_routes_with_their_constraints(store: dict[str, Any]) -> None:
    manage_only = allow(ROOT_ARN, "kms:Describe*", "kms:Get*", "kms:*Grant*", sid="Manage")
    key = make_key(policy(manage_only))
    loose = grant(key, user_arn("named"), "Encrypt", "DescribeKey", name="loose")
    tight = grant(key, user_arn("dev"), "Decrypt", EncryptionContextSubset={"app": "web"})
    partner_grant = grant(key, user_arn("pat", PARTNER), "Encrypt")
    matrix = analyze(key).matrix
    named = matrix.verdict(user_arn("named"), "kms:Encrypt")
    assert named.allowed and named.route.kind == "grant" and named.route.grant_id == loose
    assert "('loose')" in named.route.describe({loose: "loose"})
    assert matrix.verdict(user_arn("named"), "kms:Decrypt").access is Access.DENIED
    dev = matrix.verdict(user_arn("dev"), "kms:Decrypt")
    assert dev.access is Access.CONDITIONAL and dev.ways[0].route.grant_id == tight
    assert dev.conditions[0].startswith('the encryption context includes {"app": "web"}')
    # The grant to another account's user allows as any grant does (it needs no IAM policy of that account).
    pat = matrix.verdict(user_arn("pat", PARTNER), "kms:Encrypt")
    assert pat.allowed and pat.route.grant_id == partner_grant


def test_a_grant_that_has_not_taken_effect_needs_its_token(store: dict[str, Any], settings: Any) -> None:
    settings.KMS_GRANT_PROPAGATION_SECONDS = 3600
    key = make_key(policy(allow(ROOT_ARN, "kms:Describe*", "kms:Get*", "kms:*Grant*", sid="Manage")))
    pending = grant(key, user_arn("named"), "Encrypt")
    verdict = analyze(key).matrix.verdict(user_arn("named"), "kms:Encrypt")
    assert verdict.access is Access.CONDITIONAL and verdict.ways[0].route.grant_id == pending
    assert verdict.conditions == (
        f"the request passes the grant token of grant {pending[:12]}… (it has not taken effect yet)",
    )


def test_principals_of_every_kind_are_refused_without_a_path(store: dict[str, Any]) -> None:
    only_root = make_key(policy(ROOT))
    matrix = analyze(only_root).matrix
    assert not [
        cell for cell in matrix.granted() if cell[0].account_id == PARTNER or cell[0].kind == "anyone"
    ]
    assert {action for subject, action, _ in matrix.granted() if subject.arn == user_arn("named")} == set()


def test_actions_follow_the_key_type(store: dict[str, Any]) -> None:
    symmetric = key_actions(make_key())
    assert {"kms:Encrypt", "kms:GenerateDataKey", "kms:EnableKeyRotation", "kms:ReEncryptFrom"} <= set(
        symmetric
    )
    assert not {
        "kms:Sign",
        "kms:GenerateMac",
        "kms:GetPublicKey",
        "kms:RetireGrant",
        "kms:CreateAlias",
    } & set(symmetric)
    signing = key_actions(make_key(key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY"))
    assert {"kms:Sign", "kms:Verify", "kms:GetPublicKey"} <= set(signing)
    assert not {"kms:Encrypt", "kms:GenerateDataKey", "kms:EnableKeyRotation"} & set(signing)
    hmac = key_actions(make_key(key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC"))
    assert {"kms:GenerateMac", "kms:VerifyMac"} <= set(hmac) and "kms:GetPublicKey" not in hmac
    encapsulation = key_actions(make_key(key_spec="ML_KEM_768", key_usage="ENCAPSULATE_DECAPSULATE"))
    assert {"kms:Encapsulate", "kms:Decapsulate", "kms:GetPublicKey"} <= set(encapsulation)
    assert not {"kms:Sign", "kms:Encrypt", "kms:DeriveSharedSecret"} & set(encapsulation)
    assert not {"kms:Encapsulate", "kms:Decapsulate"} & set(signing)
    post_quantum_signing = key_actions(make_key(key_spec="ML_DSA_44", key_usage="SIGN_VERIFY"))
    assert {"kms:Sign", "kms:Verify", "kms:GetPublicKey"} <= set(post_quantum_signing)


def findings_of(report: analyzer.KeyAccessReport) -> dict[str, Any]:
    return {item.finding.id: item for item in report.findings}


def test_policy_and_store_findings(store: dict[str, Any]) -> None:
    key = make_key(
        policy(
            allow(user_arn("named"), "kms:*", sid="Everything"),
            allow("*", "kms:Decrypt", sid="Public"),
            allow(PARTNER_ROOT, "kms:Encrypt", sid="Partner"),
        ),
        bypass_lockout=True,
    )
    grant(key, user_arn("dev"), "Decrypt", name="loose")
    grant(key, user_arn("ops"), "Decrypt", EncryptionContextEquals={"app": "web"})
    report = analyze(key)
    found = findings_of(report)
    # The engine's findings on the policy, as the policy editor shows them.
    assert {"public-access", "cross-account-access", "no-root-access", "full-access-to-non-root"} <= set(
        found
    )
    assert found["public-access"].source == "policy" and found["public-access"].finding.sid == "Public"
    # The store's own.
    external = [item for item in report.findings if item.finding.id == "external-access"]
    by_principal = {item.finding.principals[0]: item.finding for item in external}
    assert by_principal["*"].severity == "high" and "kms:Decrypt" in by_principal["*"].detail
    assert by_principal[PARTNER_ROOT].severity == "medium"
    assert "statement 'Partner' in the key policy" in by_principal[PARTNER_ROOT].detail
    loose = found["grant-without-constraints"].finding
    assert loose.severity == "low" and "loose" in loose.detail and loose.principals == (user_arn("dev"),)
    assert found["rotation-disabled"].finding.severity == "medium"
    assert "pending-deletion-in-use" not in found
    severities = [item.finding.severity for item in report.findings]
    assert severities == sorted(severities, key=["high", "medium", "low"].index)
    for item in report.findings:
        assert item.finding.fix and item.to_dict()["key_arn"] == key.arn


def test_rotation_and_pending_deletion_findings(store: dict[str, Any]) -> None:
    key = make_key(policy(ROOT))
    key_id = str(key.key_id)
    as_operator("EnableKeyRotation", lambda ctx: rotation.key_rotation_enable(ctx=ctx, key_id=key_id))
    assert "rotation-disabled" not in findings_of(analyze(key))
    # Scheduled for deletion without a use: nothing to say. A use in the last 30 days: high.
    as_operator(
        "ScheduleKeyDeletion",
        lambda ctx: deletion.key_schedule_deletion(ctx=ctx, key_id=key_id, pending_window_days=7),
    )
    key.refresh_from_db()
    assert "pending-deletion-in-use" not in findings_of(analyze(key))
    with pytest.raises(errors.KMSInvalidStateException):
        as_operator("Encrypt", lambda ctx: crypto.key_encrypt(ctx=ctx, key_id=key_id, plaintext=b"x"))
    finding = findings_of(analyze(key))["pending-deletion-in-use"].finding
    assert finding.severity == "high" and finding.detail.startswith("1 cryptographic request used or tried")
    # Uses older than 30 days do not count.
    AuditEvent.objects.filter(key_arn=key.arn, operation="Encrypt").update(
        time=timezone.now() - timezone.timedelta(days=31)
    )
    assert "pending-deletion-in-use" not in findings_of(analyze(key))


def test_findings_across_keys_filter_by_severity_and_page(store: dict[str, Any], admin: Persona) -> None:
    public = make_key(policy(ROOT, allow("*", "kms:Decrypt", sid="Public")), description="public")
    plain = make_key(policy(ROOT), description="plain")

    def listing(**options: Any) -> analyzer.FindingsPage:
        return run_as(
            admin, "kmsconsole:ListFindings", lambda ctx: analyzer.findings_list(ctx=ctx, **options)
        )

    page = listing()
    assert page.keys_analysed == 2 and page.keys_hidden == 0 and page.next_after is None
    assert {(item.key.pk, item.finding.id) for item in page.findings} >= {
        (public.pk, "public-access"),
        (public.pk, "external-access"),
        (plain.pk, "rotation-disabled"),
    }
    high = listing(severity="high")
    assert high.findings and {item.finding.severity for item in high.findings} == {"high"}
    assert plain.pk not in {item.key.pk for item in high.findings}
    first = listing(limit=1)
    assert {item.key.pk for item in first.findings} == {public.pk} and first.next_after == str(public.key_id)
    second = listing(limit=1, after=first.next_after)
    assert {item.key.pk for item in second.findings} == {plain.pk} and second.next_after is None
    with pytest.raises(errors.ValidationException):
        listing(severity="critical")
    with pytest.raises(errors.ValidationException):
        listing(after="not-a-key")


def test_who_may_analyze(
    store: dict[str, Any], make_user: Callable[..., Persona], outsider: Persona, admin: Persona
) -> None:
    key = make_key(policy(ROOT))
    analysis_only = make_user(
        "auditor", identity_policy("kmsconsole:AnalyzeKeyAccess", "kmsconsole:ListFindings")
    )
    reader = make_user("reader", identity_policy("kmsconsole:AnalyzeKeyAccess", *ANALYSIS_READS))
    policy_only = make_user("policy-reader", identity_policy("kms:GetKeyPolicy"))
    # Decisions under conditions on aws:ResourceTag would tell what the key's tags hold.
    without_tags = make_user("no-tags", identity_policy("kmsconsole:AnalyzeKeyAccess", "kms:GetKeyPolicy"))
    for refused in (outsider, analysis_only, policy_only, without_tags):
        with pytest.raises(errors.AccessDeniedException):
            analyze(key, refused)
        event = AuditEvent.objects.filter(operation="kmsconsole:AnalyzeKeyAccess").order_by("-seq").first()
        assert event.decision == "denied" and event.caller_arn == refused.arn
    assert analyze(key, reader).matrix.verdict(user_arn("dev"), "kms:Encrypt").allowed
    event = AuditEvent.objects.filter(operation="kmsconsole:AnalyzeKeyAccess").order_by("-seq").first()
    assert (event.decision, event.key_arn) == ("allowed", key.arn)
    # Across keys: keys whose policy the caller may not read are left out and counted.
    hidden = make_key(policy(allow(user_arn("named"), "kms:*")), bypass_lockout=True)
    page = run_as(analysis_only, "kmsconsole:ListFindings", lambda ctx: analyzer.findings_list(ctx=ctx))
    assert page.keys_analysed == 0 and page.keys_hidden == 2
    page = run_as(admin, "kmsconsole:ListFindings", lambda ctx: analyzer.findings_list(ctx=ctx))
    assert page.keys_analysed == 1 and page.keys_hidden == 1
    assert hidden.pk not in {item.key.pk for item in page.findings}
    with pytest.raises(errors.AccessDeniedException):
        run_as(outsider, "kmsconsole:ListFindings", lambda ctx: analyzer.findings_list(ctx=ctx))


def test_grants_and_rotation_are_shown_only_to_who_may_read_them(
    store: dict[str, Any], make_user: Callable[..., Persona]
) -> None:
    """A key's analysis names its grants (routes, the grant-without-constraints finding: ids, names, grantees) and
    reports whether automatic rotation is on: it needs kms:ListGrants and kms:GetKeyRotationStatus on the key as
    well, and is refused whole without either. A comparison and a simulation show grants (routes, the grant that
    allowed) but not rotation: they need kms:ListGrants. ListFindings leaves such a key out whole, counted."""
    key = make_key(policy(ROOT))  # symmetric, rotation off: the rotation-disabled finding
    grant_id = grant(key, user_arn("named"), "Decrypt", name="payroll-batch")  # no constraints: a finding
    operations = ("kmsconsole:AnalyzeKeyAccess", "kmsconsole:SimulatePolicy", "kmsconsole:ListFindings")
    rules = ("kms:GetKeyPolicy", "kms:ListResourceTags")
    rules_reader = make_user("rules-reader", identity_policy(*operations, *rules))
    grant_reader = make_user("grant-reader", identity_policy(*operations, *rules, "kms:ListGrants"))
    reader = make_user("reader", identity_policy(*operations, *ANALYSIS_READS))
    key_id = str(key.key_id)

    def analyse(ctx: Any) -> Any:
        return analyzer.key_access_analyze(ctx=ctx, key_id=key_id)

    def compare(ctx: Any) -> Any:
        draft = policy(ROOT, allow(user_arn("dev"), "kms:Decrypt", sid="Dev"))
        return analyzer.key_policy_compare(ctx=ctx, key_id=key_id, policy=draft)

    def simulate(ctx: Any) -> Any:
        return analyzer.policy_simulate(
            ctx=ctx, principal=user_arn("named"), action="kms:Decrypt", key_id=key_id
        )

    def listing(ctx: Any) -> Any:
        return analyzer.findings_list(ctx=ctx)

    def refusal(persona: Persona, operation: str, work: Callable[[Any], Any]) -> str:
        with pytest.raises(errors.AccessDeniedException) as refused:
            run_as(persona, operation, work)
        event = AuditEvent.objects.filter(operation=operation).order_by("-seq").first()
        assert event is not None and (event.decision, event.caller_arn) == ("denied", persona.arn)
        assert grant_id not in refused.value.message and "payroll-batch" not in refused.value.message
        return refused.value.message

    assert "kms:ListGrants" in refusal(rules_reader, "kmsconsole:AnalyzeKeyAccess", analyse)
    assert "kms:ListGrants" in refusal(rules_reader, "kmsconsole:AnalyzeKeyAccess", compare)
    assert "kms:ListGrants" in refusal(rules_reader, "kmsconsole:SimulatePolicy", simulate)
    assert "kms:GetKeyRotationStatus" in refusal(grant_reader, "kmsconsole:AnalyzeKeyAccess", analyse)
    # Grants without rotation: the comparison and the simulation answer.
    assert run_as(grant_reader, "kmsconsole:AnalyzeKeyAccess", compare).key.pk == key.pk
    simulation = run_as(grant_reader, "kmsconsole:SimulatePolicy", simulate)
    assert simulation.allowed and simulation.decision.grant_id == grant_id
    for persona in (rules_reader, grant_reader):
        page = run_as(persona, "kmsconsole:ListFindings", listing)
        assert (page.keys_analysed, page.keys_hidden, page.findings) == (0, 1, [])
    # Allowed every read: the analysis and the findings name the grant and report rotation.
    found = findings_of(analyze(key, reader))
    assert grant_id[:12] in found["grant-without-constraints"].finding.detail
    assert (
        "payroll-batch" in found["grant-without-constraints"].finding.detail and "rotation-disabled" in found
    )
    page = run_as(reader, "kmsconsole:ListFindings", listing)
    assert (page.keys_analysed, page.keys_hidden) == (1, 0)
    assert {"grant-without-constraints", "rotation-disabled"} <= {item.finding.id for item in page.findings}


def test_access_key_findings_only_of_owners_whose_keys_the_caller_may_list(
    account: Account, admin: Persona, make_user: Callable[..., Persona]
) -> None:
    """A credential finding names an access key, its owner and its age: ListFindings shows it only to a caller
    whose iam:ListAccessKeys request on the owner (a user, or the account root) would be allowed."""
    alpha, beta = make_user("alpha"), make_user("beta")
    root_key = as_operator(
        "iam:CreateAccessKey",
        lambda ctx: services.access_key_create(ctx=ctx, account=account, user_name=None),
    )
    old = [alpha.access_key_id, beta.access_key_id, root_key.access_key_id]
    AccessKey.objects.filter(access_key_id__in=old).update(created_at=timezone.now() - timedelta(days=120))
    alpha_only = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "kmsconsole:ListFindings", "Resource": "*"},
                {"Effect": "Allow", "Action": "iam:ListAccessKeys", "Resource": alpha.arn},
            ],
        }
    )
    auditor = make_user("auditor", alpha_only)
    findings_only = make_user("findings-only", identity_policy("kmsconsole:ListFindings"))

    def credentials(persona: Persona) -> dict[str, str]:
        page = run_as(persona, "kmsconsole:ListFindings", lambda ctx: analyzer.findings_list(ctx=ctx))
        return {item.access_key_id: item.owner_arn for item in page.credentials}

    assert credentials(admin) == {
        alpha.access_key_id: alpha.arn,
        beta.access_key_id: beta.arn,
        root_key.access_key_id: ROOT_ARN,
    }
    assert credentials(auditor) == {alpha.access_key_id: alpha.arn}
    assert credentials(findings_only) == {}


def test_a_draft_policy_compared_with_the_current_one(store: dict[str, Any]) -> None:
    key = make_key(policy(ROOT, allow(user_arn("named"), "kms:Encrypt", sid="Named")))
    draft = policy(
        allow(ROOT_ARN, "kms:Describe*", "kms:Get*", "kms:Put*", sid="Admin"),
        allow(user_arn("named"), "kms:Decrypt", sid="Named"),
        allow(PARTNER_ROOT, "kms:DescribeKey", sid="Partner"),
    )
    comparison = as_operator(
        "kmsconsole:AnalyzeKeyAccess",
        lambda ctx: analyzer.key_policy_compare(ctx=ctx, key_id=str(key.key_id), policy=draft),
    )
    gains = {(change.subject.arn, change.action) for change in comparison.gains}
    losses = {(change.subject.arn, change.action) for change in comparison.losses}
    assert gains == {(user_arn("named"), "kms:Decrypt"), (PARTNER_ROOT, "kms:DescribeKey")}
    assert (user_arn("named"), "kms:Encrypt") in losses
    assert (user_arn("dev"), "kms:Encrypt") in losses and (ROOT_ARN, "kms:ScheduleKeyDeletion") in losses
    assert (ROOT_ARN, "kms:PutKeyPolicy") not in gains | losses
    with pytest.raises(errors.MalformedPolicyDocumentException):
        as_operator(
            "kmsconsole:AnalyzeKeyAccess",
            lambda ctx: analyzer.key_policy_compare(ctx=ctx, key_id=str(key.key_id), policy="{"),
        )


def test_kms_star_through_iam_is_a_finding(store: dict[str, Any], admin: Persona) -> None:
    key = make_key()
    report = analyze(key, admin)
    admin_row = [
        verdict
        for subject, verdicts in report.matrix.rows()
        if subject.arn == admin.arn
        for verdict in verdicts
    ]
    assert admin_row and all(verdict.allowed for verdict in admin_row)  # the admin's policy: Allow * on *
    finding = findings_of(report)["full-access-through-iam"].finding
    assert finding.severity == "medium" and finding.principals == (admin.arn,)
    assert "User admin (identity policy 'policy-0')" in finding.detail
    # dev may Encrypt and Decrypt only: not every action.
    assert user_arn("dev") not in finding.principals
    # The findings across keys find it too, looking only at the principals it can be about.
    page = run_as(admin, "kmsconsole:ListFindings", lambda ctx: analyzer.findings_list(ctx=ctx))
    assert ("full-access-through-iam", (admin.arn,)) in {
        (item.finding.id, item.finding.principals) for item in page.findings
    }
    # Without the root statement, IAM policies do not count: no finding.
    closed = make_key(policy(allow(user_arn("named"), "kms:*")), bypass_lockout=True)
    assert "full-access-through-iam" not in findings_of(analyze(closed))


def test_long_term_access_keys_unused_or_due_for_rotation(
    admin: Persona,
    make_user: Callable[..., Persona],
    partner: Callable[..., Persona],
    role_session: Callable[..., Persona],
) -> None:
    idle, busy = make_user("idle", ALLOW_ALL), make_user("busy", ALLOW_ALL)
    make_user("fresh")  # a new key: neither old nor unused yet
    session, foreign = role_session("app"), partner("stranger")
    long_ago = timezone.now() - timedelta(days=120)
    aged = [idle, busy, session, foreign]
    AccessKey.objects.filter(access_key_id__in=[p.access_key_id for p in aged]).update(created_at=long_ago)
    # Each signs a request (its access key is on the audit event): busy's 3 days ago, idle's 100 days ago.
    for persona, days in ((busy, 3), (idle, 100)):
        run_as(persona, "kmsconsole:ListFindings", lambda ctx: analyzer.findings_list(ctx=ctx))
        used = AuditEvent.objects.filter(access_key_id=persona.access_key_id, caller_arn=persona.arn)
        assert used.update(time=timezone.now() - timedelta(days=days)) == 1

    def credentials(persona: Persona = admin, **query: Any) -> dict[str, tuple[str, str]]:
        page = run_as(
            persona, "kmsconsole:ListFindings", lambda ctx: analyzer.findings_list(ctx=ctx, **query)
        )
        return {item.access_key_id: (item.finding.id, item.owner_arn) for item in page.credentials}

    found = credentials()
    assert found == {
        idle.access_key_id: ("access-key-unused", idle.arn),
        busy.access_key_id: ("access-key-old", busy.arn),
    }  # not the new key, the role session's (it expires) nor another account's
    assert set(credentials(severity="low")) == {busy.access_key_id}
    assert credentials(after=str(make_key().key_id)) == {}  # only on the first page
    as_operator(
        "iam:UpdateAccessKey",
        lambda ctx: services.access_key_set_status(
            ctx=ctx,
            account=Account.objects.get(account_id=settings.KMS_ACCOUNT_ID),
            access_key_id=idle.access_key_id,
            status="Inactive",
        ),
    )
    assert set(credentials()) == {busy.access_key_id}


@pytest.mark.parametrize(
    "options",
    [
        {"key_spec": "ECC_NIST_P256", "key_usage": "SIGN_VERIFY"},
        {"key_spec": "HMAC_256", "key_usage": "GENERATE_VERIFY_MAC"},
    ],
    ids=["asymmetric", "hmac"],
)
def test_a_key_that_cannot_rotate_is_analysed_without_reading_its_rotation_status(
    store: dict[str, Any], make_user: Callable[..., Persona], options: dict[str, str]
) -> None:
    """No request can read the rotation status of a key that cannot rotate (GetKeyRotationStatus answers
    UnsupportedOperationException) and no finding reports it: its analysis and ListFindings need the policy, tags
    and grants only, while a symmetric key of the same account still needs kms:GetKeyRotationStatus too."""
    unrotatable = make_key(policy(ROOT), **options)
    symmetric = make_key(policy(ROOT))
    operations = ("kmsconsole:AnalyzeKeyAccess", "kmsconsole:ListFindings")
    grant_reader = make_user(
        "grant-reader",
        identity_policy(*operations, "kms:GetKeyPolicy", "kms:ListResourceTags", "kms:ListGrants"),
    )

    def analyse(key: Any) -> Callable[[Any], Any]:
        return lambda ctx: analyzer.key_access_analyze(ctx=ctx, key_id=str(key.key_id))

    report = run_as(grant_reader, "kmsconsole:AnalyzeKeyAccess", analyse(unrotatable))
    assert report.key.pk == unrotatable.pk and "rotation-disabled" not in findings_of(report)
    with pytest.raises(errors.AccessDeniedException) as refused:
        run_as(grant_reader, "kmsconsole:AnalyzeKeyAccess", analyse(symmetric))
    assert "kms:GetKeyRotationStatus" in refused.value.message
    page = run_as(grant_reader, "kmsconsole:ListFindings", lambda ctx: analyzer.findings_list(ctx=ctx))
    assert (page.keys_analysed, page.keys_hidden) == (1, 1)
    assert {item.key.pk for item in page.findings} <= {unrotatable.pk}


def _operation_of(action: str) -> str:
    """The operation whose request is decided on `action` (ReEncrypt is decided as ReEncryptFrom and ReEncryptTo)."""
    return "ReEncrypt" if action.startswith("kms:ReEncrypt") else action.removeprefix("kms:")


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"key_spec": "RSA_2048", "key_usage": "SIGN_VERIFY"},
        {"key_spec": "HMAC_256", "key_usage": "GENERATE_VERIFY_MAC"},
    ],
    ids=["symmetric", "signing", "hmac"],
)
def test_another_account_is_answered_as_its_real_requests_are(
    partner: Callable[..., Persona], options: dict[str, str]
) -> None:
    """The key policy gives another account's root kms:*, and that account's user badmin may do anything in its
    IAM: the analysis allows them exactly the operations whose real request works across accounts, and a real
    request of badmin for every action of the matrix has the analysis' answer (refused: NotFoundException)."""
    partner(None)
    badmin = partner("badmin", ALLOW_ALL)
    key = make_key(policy(ROOT, allow(PARTNER_ROOT, "kms:*", sid="Partner")), **options)
    matrix = analyze(key).matrix
    refused = []
    for action in matrix.actions:
        operation = OPERATIONS[_operation_of(action)]
        for arn in (PARTNER_ROOT, user_arn("badmin", PARTNER)):
            verdict = matrix.verdict(arn, action)
            if operation.cross_account:
                assert verdict.allowed, (arn, action)
            else:
                assert verdict.access is Access.DENIED, (arn, action)
                assert verdict.describe().startswith("not available across accounts"), verdict.describe()
        # The real request: key resolution, authorization and the key-state check of the operation.
        try:
            run_as(
                badmin,
                operation.name,
                lambda ctx, action=action: key_for(ctx, key.arn, action=action),
                KeyId=key.arn,
            )
            really_allowed = True
        except errors.NotFoundException:
            really_allowed = False
            refused.append(action)
        assert matrix.verdict(user_arn("badmin", PARTNER), action).allowed == really_allowed, action
    assert "kms:PutKeyPolicy" in refused and "kms:ScheduleKeyDeletion" in refused
    # The findings report only what works: another account's access names no management action.
    external = [item.finding for item in analyze(key).findings if item.finding.id == "external-access"]
    assert external and all("PutKeyPolicy" not in finding.detail for finding in external)
    # So does a draft policy's comparison: giving the partner kms:* adds no management action.
    changes = run_as(
        None,
        "kmsconsole:AnalyzeKeyAccess",
        lambda ctx: analyzer.key_policy_compare(ctx=ctx, key_id=str(key.key_id), policy=policy(ROOT)),
        KeyId=str(key.key_id),
    ).changes
    assert {change.action for change in changes if change.subject.arn == PARTNER_ROOT} == {
        action for action in matrix.actions if OPERATIONS[_operation_of(action)].cross_account
    }


def test_the_operators_simulation_notes_what_does_not_work_across_accounts(
    partner: Callable[..., Persona],
) -> None:
    partner("badmin", ALLOW_ALL)
    key = make_key(policy(ROOT, allow(PARTNER_ROOT, "kms:*", sid="Partner")))

    def simulated(action: str) -> Any:
        return run_as(
            None,
            "kmsconsole:SimulatePolicy",
            lambda ctx: analyzer.policy_simulate(
                ctx=ctx, principal=user_arn("badmin", PARTNER), action=action, key_id=str(key.key_id)
            ),
            KeyId=str(key.key_id),
        )

    assert any("does not work across accounts" in note for note in simulated("kms:PutKeyPolicy").notes)
    assert not any("across accounts" in note for note in simulated("kms:Decrypt").notes)


def test_the_operator_sees_every_accounts_principals_and_a_key_owner_each_other_account_as_a_whole(
    partner: Callable[..., Persona], admin: Persona
) -> None:
    from tests.policies.analyzer_support import UNRELATED, partner_with_secrets

    key = partner_with_secrets(partner)
    whole = analyze(key).matrix  # the operator
    assert {user_arn("badmin", PARTNER), user_arn("eve", UNRELATED)} <= {s.arn for s in whole.subjects}
    denied = whole.verdict(user_arn("badmin", PARTNER), "kms:Decrypt")
    assert denied.access is Access.DENIED and "BDenyDecrypt" in denied.describe()
    shown = analyze(key, admin).matrix
    others = [s for s in shown.subjects if s.kind != "anyone" and s.account_id != settings.KMS_ACCOUNT_ID]
    assert [(s.arn, s.label) for s in others] == [(PARTNER_ROOT, f"Account {PARTNER} (its principals)")]
    assert shown.verdict(PARTNER_ROOT, "kms:Encrypt").describe() == (
        "allowed by statement 'Partner' in the key policy, together with an identity policy of the caller's account"
    )
    assert "BDenyDecrypt" not in shown.verdict(PARTNER_ROOT, "kms:Decrypt").describe()
