"""Explanations, AWS AccessDenied message shapes, traces, the lockout check and simulation on drafts."""

from __future__ import annotations

import json

import pytest

from policies.engine import (
    LOCKOUT_MESSAGE,
    Decision,
    Grant,
    IdentityPolicy,
    MalformedPolicyDocumentException,
    PolicyKind,
    ReasonCode,
    RequestContext,
    StatementRef,
    check_lockout,
    compile_policy,
    ensure_no_lockout,
    evaluate,
    parse_key_policy,
    would_allow,
)

from .helpers import (
    ACCOUNT,
    ALICE,
    ALICE_ARN,
    BOB,
    BOB_ARN,
    CAROL,
    KEY_ARN,
    NOW,
    OTHER,
    OTHER_ROOT_ARN,
    ROOT,
    ROOT_STATEMENT,
    SESSION,
    SESSION_ARN,
    allow,
    aws,
    context,
    deny,
    document,
    identity_policy,
    key_policy,
)

USE = allow(principal=aws(ALICE_ARN), action=["kms:Encrypt", "kms:Decrypt"], sid="Allow use of the key")
DEV = IdentityPolicy("dev-access", identity_policy(allow(action="kms:*", resource="*", sid="UseKeys")))
GUARD = IdentityPolicy(
    "guardrails", identity_policy(deny(action="kms:Encrypt", resource="*", sid="NoEncrypt"))
)
PREFIX = f"User: {BOB_ARN} is not authorized to perform: kms:Encrypt on resource: {KEY_ARN}"


def test_message_no_resource_based_policy() -> None:
    decision = evaluate(context(BOB), key_policy=key_policy(USE))
    assert decision.reason is ReasonCode.NO_KEY_POLICY_ALLOWS
    assert decision.access_denied_message() == (
        f"{PREFIX} because no resource-based policy allows the kms:Encrypt action"
    )


def test_message_iam_not_delegated_is_resource_based() -> None:
    decision = evaluate(context(BOB), key_policy=key_policy(USE), identity_policies=[DEV])
    assert decision.reason is ReasonCode.IAM_NOT_DELEGATED
    assert decision.access_denied_message().endswith(
        "because no resource-based policy allows the kms:Encrypt action"
    )
    assert decision.explanation() == (
        "denied: the key policy does not let IAM policies grant access, so the identity policy 'dev-access' did "
        "not count"
    )
    assert decision.statement == StatementRef(PolicyKind.IDENTITY, "dev-access", 0, "UseKeys")


def test_message_no_identity_based_policy() -> None:
    decision = evaluate(context(BOB), key_policy=key_policy(ROOT_STATEMENT))
    assert decision.access_denied_message() == (
        f"{PREFIX} because no identity-based policy allows the kms:Encrypt action"
    )
    assert decision.explanation() == (
        "denied: statement 'Enable IAM User Permissions' in the key policy lets IAM policies of account "
        f"{ACCOUNT} allow kms:Encrypt, but no identity policy of the caller allows it"
    )


def test_message_explicit_deny_resource_based() -> None:
    decision = evaluate(
        context(BOB), key_policy=key_policy(ROOT_STATEMENT, deny(principal="*", sid="Deny all"))
    )
    assert decision.access_denied_message() == f"{PREFIX} with an explicit deny in a resource-based policy"
    assert decision.explanation() == (
        "denied by statement 'Deny all' in the key policy: an explicit deny overrides every allow"
    )


def test_message_explicit_deny_identity_based() -> None:
    decision = evaluate(context(BOB), key_policy=key_policy(ROOT_STATEMENT), identity_policies=[DEV, GUARD])
    assert decision.access_denied_message() == f"{PREFIX} with an explicit deny in an identity-based policy"
    assert decision.explanation() == (
        "denied by statement 'NoEncrypt' in the identity policy 'guardrails': an explicit deny overrides every allow"
    )


def test_message_generate_random() -> None:
    request = RequestContext.build(caller=BOB, action="kms:GenerateRandom", now=NOW)
    decision = evaluate(request, key_policy=None)
    assert decision.access_denied_message() == (
        f"User: {BOB_ARN} is not authorized to perform: kms:GenerateRandom on resource: * because no "
        "identity-based policy allows the kms:GenerateRandom action"
    )
    assert decision.explanation() == "denied: no identity policy allows kms:GenerateRandom"


def test_message_uses_session_arn() -> None:
    decision = evaluate(context(SESSION), key_policy=key_policy(USE))
    assert decision.access_denied_message().startswith(f"User: {SESSION_ARN} is not authorized")


def test_message_for_allowed_decision_raises() -> None:
    decision = evaluate(context(ALICE), key_policy=key_policy(USE))
    with pytest.raises(ValueError, match="allowed"):
        decision.access_denied_message()


def test_explanations_of_allows() -> None:
    direct = evaluate(context(ALICE), key_policy=key_policy(USE))
    assert direct.explanation() == "allowed by statement 'Allow use of the key' in the key policy"
    delegated = evaluate(context(BOB), key_policy=key_policy(ROOT_STATEMENT), identity_policies=[DEV])
    assert delegated.explanation() == (
        "allowed by statement 'UseKeys' in the identity policy 'dev-access'; it counts because statement "
        f"'Enable IAM User Permissions' in the key policy lets IAM policies of account {ACCOUNT} allow kms:Encrypt"
    )
    assert delegated.supporting == (
        StatementRef(PolicyKind.KEY, "default", 0, "Enable IAM User Permissions"),
    )
    cross = evaluate(
        context(CAROL), key_policy=key_policy(allow(principal=aws(OTHER_ROOT_ARN))), identity_policies=[DEV]
    )
    assert cross.explanation() == (
        f"allowed across accounts by statement #1 in the key policy together with statement 'UseKeys' in the "
        f"identity policy 'dev-access' in account {OTHER}"
    )
    grant = Grant("0" * 64, KEY_ARN, BOB_ARN, frozenset({"Encrypt"}))
    granted = evaluate(context(BOB), key_policy=key_policy(USE), grants=[grant])
    assert granted.explanation() == f"allowed by grant {'0' * 64}"
    root = evaluate(RequestContext.build(caller=ROOT, action="kms:ListKeys", now=NOW), key_policy=None)
    assert root.explanation().startswith(f"allowed: the caller is the root user of account {ACCOUNT}")
    account_level = evaluate(
        RequestContext.build(caller=BOB, action="kms:ListKeys", now=NOW),
        key_policy=None,
        identity_policies=[DEV],
    )
    assert account_level.explanation() == (
        "allowed by statement 'UseKeys' in the identity policy 'dev-access' (kms:ListKeys is decided by identity "
        "policies alone)"
    )


def test_explanations_of_grant_denials() -> None:
    pending = Grant("g-pending", KEY_ARN, BOB_ARN, frozenset({"Encrypt"}), effective=False)
    decision = evaluate(context(BOB), key_policy=key_policy(USE), grants=[pending])
    assert "has not taken effect yet" in decision.explanation() and "grant token" in decision.explanation()
    assert decision.access_denied_message().endswith(
        "because no resource-based policy allows the kms:Encrypt action"
    )
    from policies.engine import GrantConstraints

    unmet = Grant(
        "g-unmet",
        KEY_ARN,
        BOB_ARN,
        frozenset({"Encrypt"}),
        GrantConstraints(encryption_context_subset={"a": "b"}),
    )
    decision = evaluate(context(BOB), key_policy=key_policy(USE), grants=[unmet])
    assert "does not meet its constraints" in decision.explanation()


def test_cross_account_explanations() -> None:
    kp = key_policy(allow(principal=aws(OTHER_ROOT_ARN)))
    missing_iam = evaluate(context(CAROL), key_policy=kp)
    assert missing_iam.reason is ReasonCode.NO_IDENTITY_POLICY_ALLOWS
    assert f"a caller from account {OTHER} also needs an identity policy" in missing_iam.explanation()
    not_delegated = evaluate(context(CAROL), key_policy=key_policy(USE), identity_policies=[DEV])
    assert not_delegated.explanation() == (
        f"denied: the key policy does not let IAM policies of account {OTHER} grant access, so the identity "
        "policy 'dev-access' did not count"
    )


def test_decision_fields_and_dict() -> None:
    decision = evaluate(context(BOB), key_policy=key_policy(ROOT_STATEMENT), identity_policies=[DEV])
    assert decision.caller_arn == BOB_ARN and decision.caller_account == ACCOUNT
    assert decision.action == "kms:Encrypt" and decision.resource == KEY_ARN
    assert decision.resource_account == ACCOUNT and not decision.cross_account
    data = decision.to_dict()
    assert data["allowed"] is True and data["reason"] == "ALLOWED_BY_IDENTITY_POLICY"
    assert data["statement"] == {
        "policy_kind": "identity",
        "policy_name": "dev-access",
        "index": 0,
        "sid": "UseKeys",
    }
    json.dumps(data)


def test_decision_has_no_truth_value() -> None:
    decision = evaluate(context(BOB), key_policy=key_policy(USE))
    with pytest.raises(TypeError, match=r"decision\.allowed"):
        bool(decision)


def test_statement_ref_describe() -> None:
    assert StatementRef(PolicyKind.KEY, "default", 2, None).describe() == "statement #3 in the key policy"
    assert (
        StatementRef(PolicyKind.KEY, "AWS_RAM", 0, "s").describe()
        == "statement 's' in the key policy 'AWS_RAM'"
    )
    assert (
        StatementRef(PolicyKind.IDENTITY, "p", 0, None).describe()
        == "statement #1 in the identity policy 'p'"
    )


def test_trace_lists_every_statement_and_grant() -> None:
    grant = Grant("g1", KEY_ARN, BOB_ARN, frozenset({"Decrypt"}))
    decision = evaluate(
        context(BOB, encryption_context={"dept": "eng"}),
        key_policy=key_policy(
            ROOT_STATEMENT, USE, deny(principal="*", condition={"Bool": {"aws:SecureTransport": "false"}})
        ),
        identity_policies=[DEV],
        grants=[grant],
    )
    trace = decision.trace
    assert trace[0].startswith(f"request: {BOB_ARN}")
    assert any(
        "statement 'Enable IAM User Permissions' (Allow): principal names the caller's account" in note
        for note in trace
    )
    assert any(
        "statement 'Allow use of the key' (Allow): principal does not name the caller" in note
        for note in trace
    )
    assert any(
        "Bool aws:SecureTransport ['false'] vs True -> false => does not apply" in note for note in trace
    )
    assert any(
        "identity policy 'dev-access' statement 'UseKeys' (Allow): resource matches => applies" in note
        for note in trace
    )
    assert any("grant g1" in note and "do not include Encrypt" in note for note in trace)
    assert trace[-1] == f"decision: ALLOW (ALLOWED_BY_IDENTITY_POLICY): {decision.explanation()}"
    assert all(note.isascii() for note in trace)


def test_trace_for_account_level_and_pending_grant() -> None:
    decision = evaluate(
        RequestContext.build(caller=BOB, action="kms:GenerateRandom", now=NOW), key_policy=None
    )
    assert "account-level action" in decision.trace[1]
    assert "the caller has no identity policies" in decision.trace
    pending = Grant("g1", KEY_ARN, BOB_ARN, frozenset({"Encrypt"}), effective=False)
    traced = evaluate(
        context(BOB), key_policy=key_policy(USE), grants=[pending], token_grant_ids={"g1"}
    ).trace
    assert any("its grant token came with the request" in note for note in traced)


def test_trace_without_inputs() -> None:
    decision = evaluate(context(BOB), key_policy=key_policy(USE))
    bare = Decision(*decision[:6])
    assert bare.trace == (bare.explanation(),)


def test_would_allow() -> None:
    assert would_allow(context(ALICE), key_policy=key_policy(USE))
    assert not would_allow(context(BOB), key_policy=key_policy(USE))


def test_simulate_on_drafts() -> None:
    """Simulation is evaluate() on parsed drafts: nothing needs stored objects."""
    draft = compile_policy(parse_key_policy(document(ROOT_STATEMENT, allow(principal=aws(BOB_ARN)))))
    assert evaluate(context(BOB), key_policy=draft).allowed
    draft_iam = IdentityPolicy("draft", identity_policy(allow(action="kms:Encrypt", resource="*")))
    assert evaluate(context(ALICE), key_policy=draft, identity_policies=[draft_iam]).allowed


def test_lockout_check() -> None:
    request = context(BOB, action="kms:PutKeyPolicy")
    names_caller = key_policy(allow(principal=aws(BOB_ARN), action="kms:PutKeyPolicy"))
    assert check_lockout(request, names_caller).allowed
    root_only = key_policy(ROOT_STATEMENT)
    assert not check_lockout(request, root_only).allowed
    admin = IdentityPolicy("admin", identity_policy(allow(action="kms:PutKeyPolicy", resource="*")))
    assert ensure_no_lockout(request, root_only, [admin]).allowed
    with pytest.raises(MalformedPolicyDocumentException) as raised:
        ensure_no_lockout(request, key_policy(USE))
    assert raised.value.message == LOCKOUT_MESSAGE


def test_lockout_check_for_create_key() -> None:
    create = RequestContext.build(caller=BOB, action="kms:CreateKey", now=NOW)
    new_policy = key_policy(allow(principal=aws(BOB_ARN)))
    decision = check_lockout(create, new_policy, key_arn=KEY_ARN)
    assert decision.allowed and decision.action == "kms:PutKeyPolicy" and decision.resource == KEY_ARN
    assert not check_lockout(create, key_policy(USE), key_arn=KEY_ARN).allowed
    conditioned = key_policy(allow(principal="*", condition={"StringEquals": {"kms:CallerAccount": ACCOUNT}}))
    assert check_lockout(create, conditioned, key_arn=KEY_ARN).allowed


def test_wrong_policy_kinds_are_refused() -> None:
    with pytest.raises(TypeError):
        evaluate(context(ALICE), key_policy=identity_policy(allow(action="*", resource="*")))
    with pytest.raises(TypeError):
        evaluate(
            context(ALICE),
            key_policy=key_policy(USE),
            identity_policies=[IdentityPolicy("x", key_policy(USE))],
        )
