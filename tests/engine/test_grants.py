"""Grants (spec §8): operations, constraints, grantee forms, propagation, child grants, the grantee index."""

from __future__ import annotations

from typing import Any

import pytest

from policies.engine import Grant, GrantConstraints, GrantIndex, GrantRequest, ReasonCode, evaluate

from .helpers import (
    ACCOUNT,
    ALICE,
    ALICE_ARN,
    ALLOWED_GRANT,
    ALLOWED_KP,
    BOB,
    BOB_ARN,
    CAROL,
    CAROL_ARN,
    DENY_IDP,
    DENY_KP,
    KEY_ARN,
    NO_IDP,
    NO_KP,
    OTHER_KEY_ARN,
    OTHER_ROOT_ARN,
    PENDING,
    ROLE_ARN,
    ROOT,
    ROOT_ARN,
    SESSION,
    SESSION_ARN,
    UNMET,
    Case,
    allow,
    aws,
    check,
    context,
    deny,
    ids,
    key_policy,
)
from .steps import line_events

NOBODY = [allow(principal=aws(f"arn:aws:iam::{ACCOUNT}:user/admin"), sid="Admins")]


def grant(
    grantee: str = ALICE_ARN,
    operations: tuple[str, ...] = ("Encrypt", "Decrypt"),
    *,
    equals: dict[str, str] | None = None,
    subset: dict[str, str] | None = None,
    source_arn: str | None = None,
    grant_id: str = "g1",
    key_arn: str = KEY_ARN,
    effective: bool = True,
) -> Grant:
    constraints = None
    if equals is not None or subset is not None or source_arn is not None:
        constraints = GrantConstraints(
            encryption_context_equals=equals, encryption_context_subset=subset, source_arn=source_arn
        )
    return Grant(grant_id, key_arn, grantee, frozenset(operations), constraints, effective=effective)


def gcase(case_id: str, expected: tuple[bool, ReasonCode], grants: list[Grant], **kwargs: Any) -> Case:
    kwargs.setdefault("key_statements", NOBODY)
    return Case(case_id, expected, grants=grants, **kwargs)


EC = {"encryption_context": {"dept": "eng", "app": "billing"}}


def child(*, subset: dict[str, str] | None = None, equals: dict[str, str] | None = None) -> dict[str, Any]:
    """Request context for a CreateGrant asking for a Decrypt grant with these constraints."""
    constraints = GrantConstraints(encryption_context_equals=equals, encryption_context_subset=subset)
    return {"new_grant": GrantRequest(frozenset({"Decrypt"}), constraints)}


# fmt: off
CASES = [
    gcase("grant-to-user", ALLOWED_GRANT, [grant()]),
    gcase("grant-other-operation", NO_KP, [grant(operations=("Decrypt",))]),
    gcase("grant-other-user", NO_KP, [grant(BOB_ARN)]),
    gcase("grant-to-role-covers-session", ALLOWED_GRANT, [grant(ROLE_ARN)], caller=SESSION),
    gcase("grant-to-session", ALLOWED_GRANT, [grant(SESSION_ARN)], caller=SESSION),
    gcase("grant-to-other-key", NO_KP, [grant(key_arn=OTHER_KEY_ARN)]),
    gcase("grant-cross-account-user", ALLOWED_GRANT, [grant(CAROL_ARN)], caller=CAROL),
    gcase("grant-when-delegation-finds-no-iam", ALLOWED_GRANT, [grant()],
          key_statements=[allow(principal=aws(ROOT_ARN))]),
    gcase("grant-does-not-cover-non-grant-operation", NO_KP, [grant(operations=("Encrypt",))],
          action="kms:PutKeyPolicy"),
    gcase("grant-reencrypt-from", ALLOWED_GRANT, [grant(operations=("ReEncryptFrom",))], action="kms:ReEncryptFrom"),
    gcase("grant-equals-match", ALLOWED_GRANT, [grant(equals={"dept": "eng", "app": "billing"})], context=EC),
    gcase("grant-equals-key-case-insensitive", ALLOWED_GRANT, [grant(equals={"DEPT": "eng", "App": "billing"})],
          context=EC),
    gcase("grant-equals-value-case-sensitive", UNMET, [grant(equals={"dept": "ENG", "app": "billing"})], context=EC),
    gcase("grant-equals-extra-pair", UNMET, [grant(equals={"dept": "eng"})], context=EC),
    gcase("grant-equals-missing-pair", UNMET, [grant(equals={"dept": "eng", "app": "billing", "x": "y"})],
          context=EC),
    gcase("grant-equals-no-context", UNMET, [grant(equals={"dept": "eng"})]),
    gcase("grant-equals-empty-matches-empty", ALLOWED_GRANT, [grant(equals={})]),
    gcase("grant-subset-match", ALLOWED_GRANT, [grant(subset={"dept": "eng"})], context=EC),
    gcase("grant-subset-key-case-insensitive", ALLOWED_GRANT, [grant(subset={"Dept": "eng"})], context=EC),
    gcase("grant-subset-value-mismatch", UNMET, [grant(subset={"dept": "ops"})], context=EC),
    gcase("grant-subset-missing-key", UNMET, [grant(subset={"tenant": "1"})], context=EC),
    gcase("grant-subset-no-context", UNMET, [grant(subset={"dept": "eng"})]),
    gcase("grant-constraints-ignored-for-describe", ALLOWED_GRANT,
          [grant(operations=("DescribeKey",), equals={"dept": "x"})], action="kms:DescribeKey"),
    gcase("grant-constraints-ignored-for-retire", ALLOWED_GRANT,
          [grant(operations=("RetireGrant",), subset={"dept": "x"})], action="kms:RetireGrant"),
    gcase("grant-constraints-ignored-for-sign", ALLOWED_GRANT, [grant(operations=("Sign",), subset={"dept": "x"})],
          action="kms:Sign"),
    gcase("grant-constraints-apply-to-generate-data-key", UNMET,
          [grant(operations=("GenerateDataKey",), subset={"dept": "x"})], action="kms:GenerateDataKey"),
    gcase("grant-source-arn-match", ALLOWED_GRANT, [grant(source_arn="arn:aws:s3:::bucket")],
          context={"condition_values": {"aws:SourceArn": "arn:aws:s3:::bucket"}}),
    gcase("grant-source-arn-mismatch", UNMET, [grant(source_arn="arn:aws:s3:::bucket")],
          context={"condition_values": {"aws:SourceArn": "arn:aws:s3:::other"}}),
    gcase("grant-source-arn-absent", UNMET, [grant(source_arn="arn:aws:s3:::bucket")]),
    gcase("grant-first-unmet-second-ok", ALLOWED_GRANT,
          [grant(subset={"dept": "ops"}, grant_id="g1"), grant(subset={"dept": "eng"}, grant_id="g2")], context=EC),
    gcase("grant-to-account-needs-iam", NO_IDP, [grant(ROOT_ARN)], caller=BOB),
    gcase("grant-to-other-account-needs-iam", NO_IDP, [grant(OTHER_ROOT_ARN)], caller=CAROL),
    gcase("grant-to-account-needs-iam-for-this-action", NO_IDP, [grant(ROOT_ARN)], caller=BOB,
          identity={"p": [allow(action="kms:Decrypt", resource="*")]}),
    gcase("grant-to-account-without-the-operation", NO_KP, [grant(ROOT_ARN, ("Decrypt",))], caller=BOB),
    gcase("grant-to-account-constraints-unmet-before-iam", UNMET, [grant(ROOT_ARN, subset={"dept": "x"})],
          caller=BOB),
    gcase("retire-grant-nothing-allows-names-iam", NO_IDP, [grant(operations=("Encrypt",))], caller=BOB,
          action="kms:RetireGrant"),
    gcase("grant-to-account-with-iam", ALLOWED_GRANT, [grant(ROOT_ARN)], caller=BOB,
          identity={"p": [allow(action="kms:Encrypt", resource="*")]}),
    gcase("grant-to-account-id-with-iam", ALLOWED_GRANT, [grant(ACCOUNT)], caller=BOB,
          identity={"p": [allow(action="kms:Encrypt", resource="*")]}),
    gcase("grant-to-account-used-by-root", ALLOWED_GRANT, [grant(ROOT_ARN)], caller=ROOT),
    gcase("grant-to-other-account-cross", ALLOWED_GRANT, [grant(OTHER_ROOT_ARN)], caller=CAROL,
          identity={"p": [allow(action="kms:Encrypt", resource=KEY_ARN)]}),
    gcase("grant-not-yet-effective", PENDING, [grant(effective=False)]),
    gcase("grant-not-yet-effective-with-token", ALLOWED_GRANT, [grant(effective=False)],
          token_grant_ids=frozenset({"g1"})),
    gcase("grant-token-for-other-grant", PENDING, [grant(effective=False)], token_grant_ids=frozenset({"g2"})),
    gcase("grant-pending-but-other-effective", ALLOWED_GRANT,
          [grant(effective=False, grant_id="g1"), grant(grant_id="g2")]),
    gcase("grant-key-policy-deny-wins", DENY_KP, [grant()], key_statements=[deny(principal="*")]),
    gcase("grant-identity-deny-wins", DENY_IDP, [grant()], identity={"p": [deny(action="kms:*", resource="*")]}),
    gcase("grant-not-needed-when-key-policy-allows", ALLOWED_KP, [grant()],
          key_statements=[allow(principal=aws(ALICE_ARN))]),
    gcase("grant-create-grant-child-subset", ALLOWED_GRANT,
          [grant(operations=("CreateGrant", "Decrypt", "Encrypt"))], action="kms:CreateGrant",
          context={"new_grant": GrantRequest(frozenset({"Decrypt"}))}),
    gcase("grant-create-grant-child-extra-operation", UNMET, [grant(operations=("CreateGrant", "Decrypt"))],
          action="kms:CreateGrant", context={"new_grant": GrantRequest(frozenset({"Decrypt", "Sign"}))}),
    gcase("grant-create-grant-child-looser-constraint", UNMET,
          [grant(operations=("CreateGrant", "Decrypt"), subset={"dept": "eng"})], action="kms:CreateGrant",
          context={"new_grant": GrantRequest(frozenset({"Decrypt"}))}),
    gcase("grant-create-grant-child-stricter-subset", ALLOWED_GRANT,
          [grant(operations=("CreateGrant", "Decrypt"), subset={"dept": "eng"})], action="kms:CreateGrant",
          context=child(subset={"DEPT": "eng", "x": "1"})),
    gcase("grant-create-grant-child-equals-from-subset", ALLOWED_GRANT,
          [grant(operations=("CreateGrant", "Decrypt"), subset={"dept": "eng"})], action="kms:CreateGrant",
          context=child(equals={"dept": "eng"})),
    gcase("grant-create-grant-child-subset-from-equals", UNMET,
          [grant(operations=("CreateGrant", "Decrypt"), equals={"dept": "eng"})], action="kms:CreateGrant",
          context=child(subset={"dept": "eng"})),
    gcase("grant-create-grant-child-same-equals", ALLOWED_GRANT,
          [grant(operations=("CreateGrant", "Decrypt"), equals={"dept": "eng"})], action="kms:CreateGrant",
          context=child(equals={"Dept": "eng"})),
]
# fmt: on


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_grant_decision(case: Case) -> None:
    decision = check(case)
    grant_reasons = (
        ReasonCode.ALLOWED_BY_GRANT,
        ReasonCode.GRANT_NOT_YET_EFFECTIVE,
        ReasonCode.GRANT_CONSTRAINTS_NOT_MET,
    )
    if decision.reason is ReasonCode.NO_IDENTITY_POLICY_ALLOWS:
        # Only a grant to the caller's account that lacks an identity Allow is named.
        named = [g for g in case.grants if g.grant_id == decision.grant_id]
        assert decision.grant_id is None or named[0].grantee_is_account
        return
    assert (decision.grant_id is not None) is (decision.reason in grant_reasons)


@pytest.mark.parametrize(
    ("caller", "grantee"),
    [(BOB, ROOT_ARN), (BOB, ACCOUNT), (CAROL, OTHER_ROOT_ARN)],
    ids=["root", "id", "cross"],
)
def test_a_grant_to_the_account_without_iam_names_the_missing_identity_permission(
    caller: Any, grantee: str
) -> None:
    """The grant matches, so "no resource-based policy" and "no grant does" would be wrong (spec §7.2: a grant to
    an account needs that account's IAM, like a key-policy statement for the account)."""
    decision = evaluate(
        context(caller), key_policy=key_policy(*NOBODY), grants=[grant(grantee, grant_id="acct")]
    )
    assert not decision.allowed and decision.reason is ReasonCode.NO_IDENTITY_POLICY_ALLOWS
    assert decision.grant_id == "acct" and decision.statement is None
    assert decision.access_denied_message() == (
        f"User: {decision.caller_arn} is not authorized to perform: kms:Encrypt on resource: {KEY_ARN} "
        "because no identity-based policy allows the kms:Encrypt action"
    )
    explanation = decision.explanation()
    assert "grant acct allows kms:Encrypt to account" in explanation
    assert "identity policy of the caller that allows kms:Encrypt, and none does" in explanation
    assert "no grant does" not in explanation and "key policy" not in explanation
    # The same words as a key-policy statement for the account gives (the service's existing answer).
    by_key_policy = evaluate(
        context(caller), key_policy=key_policy(allow(principal=aws(f"arn:aws:iam::{caller.account_id}:root")))
    )
    assert by_key_policy.reason is ReasonCode.NO_IDENTITY_POLICY_ALLOWS
    assert by_key_policy.access_denied_message() == decision.access_denied_message()


def test_a_pending_grant_to_the_account_without_iam_is_not_said_to_allow() -> None:
    """A grant to the caller's account that has not taken effect allows nothing yet: the sentence says so (and
    that its token would make it count); with its token, or once in effect, it allows. Of two such grants, the
    one that counts now is named."""
    pending = grant(ROOT_ARN, grant_id="later", effective=False)
    decision = evaluate(context(BOB), key_policy=key_policy(*NOBODY), grants=[pending])
    assert decision.reason is ReasonCode.NO_IDENTITY_POLICY_ALLOWS and decision.grant_id == "later"
    explanation = decision.explanation()
    assert explanation.startswith(
        "denied: grant later has not taken effect yet; once it has (or with its grant token) it allows "
        "kms:Encrypt to account"
    )
    assert "grant later allows" not in explanation
    with_token = evaluate(
        context(BOB), key_policy=key_policy(*NOBODY), grants=[pending], token_grant_ids=frozenset({"later"})
    )
    assert with_token.explanation().startswith("denied: grant later allows kms:Encrypt to account")
    live = grant(ROOT_ARN, grant_id="now")
    for grants in ([pending, live], [live, pending]):
        both = evaluate(context(BOB), key_policy=key_policy(*NOBODY), grants=grants)
        assert both.grant_id == "now" and both.explanation().startswith("denied: grant now allows")


def test_retire_grant_refused_names_the_missing_identity_permission() -> None:
    """Key policies do not decide kms:RetireGrant (spec §8.6): with nothing allowing it, what is missing is an
    identity-based permission, not a resource-based one."""
    decision = evaluate(
        context(CAROL, action="kms:RetireGrant"), key_policy=key_policy(*NOBODY), grants=[grant(grant_id="g")]
    )
    assert not decision.allowed and decision.reason is ReasonCode.NO_IDENTITY_POLICY_ALLOWS
    assert decision.access_denied_message().endswith(
        "because no identity-based policy allows the kms:RetireGrant action"
    )
    assert "not by key policies" in decision.explanation() and "no grant does" not in decision.explanation()
    # Another action keeps the resource-based form.
    other = evaluate(context(CAROL), key_policy=key_policy(*NOBODY))
    assert other.reason is ReasonCode.NO_KEY_POLICY_ALLOWS
    assert other.access_denied_message().endswith(
        "because no resource-based policy allows the kms:Encrypt action"
    )


def test_account_grant_names_the_identity_statement() -> None:
    decision = check(CASES[ids(CASES).index("grant-to-account-with-iam")])
    assert decision.supporting[0].policy_name == "p"


def test_grant_sequence_and_index_agree() -> None:
    grants = [grant(BOB_ARN, grant_id="b"), grant(ALICE_ARN, grant_id="a")]
    kp = key_policy(*NOBODY)
    request = context(ALICE)
    from_list = evaluate(request, key_policy=kp, grants=grants)
    from_index = evaluate(request, key_policy=kp, grants=GrantIndex(grants))
    assert from_list.allowed and from_index.allowed
    assert from_list.grant_id == from_index.grant_id == "a"


def test_grant_index_lookup() -> None:
    grants = [grant(ALICE_ARN, grant_id="a"), grant(ROLE_ARN, grant_id="r"), grant(ACCOUNT, grant_id="acct")]
    index = GrantIndex(grants)
    assert len(index) == 3
    assert {g.grant_id for g in index} == {"a", "r", "acct"}
    assert [g.grant_id for g in index.for_caller(ALICE)] == ["a", "acct"]
    assert [g.grant_id for g in index.for_caller(SESSION)] == ["r", "acct"]
    assert [g.grant_id for g in index.for_caller(ROOT)] == ["acct"]
    assert index.for_caller(BOB)[0].grant_id == "acct"
    assert [g.grant_id for g in index.for_grantee(ACCOUNT)] == ["acct"]


def test_grant_index_lookup_stays_flat() -> None:
    """Lookup cost depends on the caller's grants, not on how many grants the key has."""
    many = GrantIndex(
        [grant(f"arn:aws:iam::{ACCOUNT}:role/r{i}", grant_id=str(i)) for i in range(50_000)]
        + [grant(ALICE_ARN, grant_id="mine")]
    )
    few = GrantIndex([grant(ALICE_ARN, grant_id="mine")])
    # Every line the lookup runs, in any frame (a comprehension or helper doing a scan runs in its own frame).
    found_in_many, many_steps = line_events(lambda: many.for_caller(ALICE))
    found_in_few, few_steps = line_events(lambda: few.for_caller(ALICE))
    assert [g.grant_id for g in found_in_many] == [g.grant_id for g in found_in_few] == ["mine"]
    assert few_steps > 0
    assert many_steps == few_steps


def test_grant_normalizes_its_fields() -> None:
    g = Grant("g", KEY_ARN, ACCOUNT, frozenset({"Decrypt"}))
    assert g.grantee_principal == ROOT_ARN
    assert g.grantee_is_account
    assert g.operations_lower == frozenset({"decrypt"})
    service = Grant("s", KEY_ARN, "Logs.amazonaws.com", frozenset({"Decrypt"}))
    assert service.grantee_principal == "logs.amazonaws.com"
    assert not service.grantee_is_account


def test_constraint_type() -> None:
    assert GrantConstraints(encryption_context_equals={"a": "b"}).constraint_type == "EncryptionContextEquals"
    assert GrantConstraints(encryption_context_subset={"a": "b"}).constraint_type == "EncryptionContextSubset"
    assert GrantConstraints(source_arn="arn:aws:s3:::b").constraint_type is None
    assert hash(GrantConstraints(encryption_context_equals={"a": "b"})) == hash(
        GrantConstraints(encryption_context_equals={"a": "b"})
    )


def test_equals_refuses_case_colliding_request_keys() -> None:
    constraints = GrantConstraints(encryption_context_equals={"dept": "x"})
    from policies.engine.grants import fold_encryption_context

    request = {"dept": "x", "DEPT": "x"}
    assert not constraints.encryption_context_satisfied(fold_encryption_context(request), len(request))


def test_source_arn_constraint_on_child() -> None:
    parent = GrantConstraints(source_arn="arn:aws:s3:::b")
    assert parent.at_least_as_strict(GrantConstraints(source_arn="arn:aws:s3:::b"))
    assert not parent.at_least_as_strict(None)
    assert not parent.at_least_as_strict(GrantConstraints(source_arn="arn:aws:s3:::c"))
