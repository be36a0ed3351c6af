"""The access analysis (policies/engine/analysis.py, matrix.py, unknowns.py): pure, table-driven.

What only a request can decide is reported as "allowed when ..." in words, never guessed; a condition and its
exact negation are one fact; the reported ways in are the fewest, shortest terms; "*" is a stranger of any kind;
the diff of two matrices says who gains and who loses.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from policies.engine import (
    Caller,
    Grant,
    GrantConstraints,
    RequestContext,
    compile_identity_policy,
    compile_key_policy,
)
from policies.engine.analysis import Access, AccessAnalyzer, _minimal_terms
from policies.engine.evaluate import IdentityPolicy
from policies.engine.matrix import Identity, KeyTarget, Principal, Subject, access_matrix, anyone, compare
from policies.engine.unknowns import depends_on_request
from tests.engine.helpers import ACCOUNT, ALICE_ARN, KEY_ARN, OTHER, ROOT_ARN

ALICE = Caller.user(ALICE_ARN)


def key_policy(*statements: dict[str, Any]) -> Any:
    return compile_key_policy(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))


def allow(
    principal: Any, action: str, condition: dict[str, Any] | None = None, effect: str = "Allow"
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": effect,
        "Principal": principal if principal == "*" else {"AWS": principal},
        "Action": action,
        "Resource": "*",
    }
    if condition:
        statement["Condition"] = condition
    return statement


def verdict(policy: Any, action: str = "kms:Decrypt", caller: Caller = ALICE, **options: Any) -> Any:
    context = RequestContext.build(caller=caller, action=action, resource=KEY_ARN)
    return AccessAnalyzer().verdict(context, key_policy=policy, **options)


@pytest.mark.parametrize(
    ("condition", "access", "conditions"),
    [
        (None, Access.ALLOWED, ()),
        (
            {"StringEquals": {"kms:EncryptionContext:dept": "fin"}},
            Access.CONDITIONAL,
            ("kms:EncryptionContext:dept is 'fin'",),
        ),
        (
            {"StringNotEquals": {"kms:EncryptionContext:dept": "fin"}},
            Access.CONDITIONAL,
            ("kms:EncryptionContext:dept is not 'fin'",),
        ),
        (
            {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}},
            Access.CONDITIONAL,
            ("aws:SourceIp is in one of '10.0.0.0/8', '192.168.0.0/16'",),
        ),
        ({"Bool": {"aws:SecureTransport": "true"}}, Access.CONDITIONAL, ("aws:SecureTransport is 'true'",)),
        (
            {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}},
            Access.CONDITIONAL,
            ("aws:CurrentTime is before '2030-01-01T00:00:00Z'",),
        ),
        (
            {"Null": {"kms:EncryptionContextKeys": "false"}},
            Access.CONDITIONAL,
            ("kms:EncryptionContextKeys is present",),
        ),
        (
            {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "dept"}},
            Access.CONDITIONAL,
            ("at least one value of kms:EncryptionContextKeys is 'dept'",),
        ),
        (
            {"StringEqualsIfExists": {"kms:EncryptionContext:dept": "fin"}},
            Access.CONDITIONAL,
            ("kms:EncryptionContext:dept is 'fin', or kms:EncryptionContext:dept is absent",),
        ),
        # Decided from the principal or the key, as a request would: no "when".
        ({"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}, Access.ALLOWED, ()),
        ({"StringEquals": {"kms:CallerAccount": OTHER}}, Access.DENIED, ()),
        ({"StringEquals": {"aws:PrincipalOrgID": "o-123"}}, Access.DENIED, ()),  # never set by this service
    ],
)
def test_what_only_a_request_decides_is_a_condition_in_words(
    condition: dict[str, Any] | None, access: Access, conditions: tuple[str, ...]
) -> None:
    result = verdict(key_policy(allow(ALICE_ARN, "kms:Decrypt", condition)))
    assert result.access is access
    assert result.conditions == conditions
    if access is Access.CONDITIONAL:
        assert result.ways[0].route.statement.index == 0
        assert result.describe().startswith("allowed only when ")


def test_a_condition_and_its_negation_are_one_fact() -> None:
    # Allowed from 10/8 by one statement, denied outside 10/8 by another: one fact, never "in and not in".
    policy = key_policy(
        allow(ALICE_ARN, "kms:Decrypt", {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
        allow("*", "kms:Decrypt", {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, effect="Deny"),
    )
    assert verdict(policy).conditions == ("aws:SourceIp is in '10.0.0.0/8'",)
    contradiction = key_policy(
        allow(ALICE_ARN, "kms:Decrypt", {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
        allow("*", "kms:Decrypt", {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, effect="Deny"),
        allow("*", "kms:Decrypt", {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, effect="Deny"),
    )
    assert verdict(contradiction).access is Access.DENIED


def test_alternatives_are_reported_as_separate_ways_with_their_routes() -> None:
    policy = key_policy(
        {
            **allow(ALICE_ARN, "kms:Decrypt", {"StringEquals": {"kms:EncryptionContext:dept": "fin"}}),
            "Sid": "Fin",
        },
        {**allow(ALICE_ARN, "kms:Decrypt", {"Bool": {"aws:SecureTransport": "true"}}), "Sid": "Tls"},
    )
    result = verdict(policy)
    assert {(way.when, way.route.statement.sid) for way in result.ways} == {
        ("kms:EncryptionContext:dept is 'fin'", "Fin"),
        ("aws:SecureTransport is 'true'", "Tls"),
    }


def test_grants_constraints_and_pending_grants_are_facts() -> None:
    policy = key_policy(allow(ROOT_ARN, "kms:DescribeKey"))
    constrained = Grant(
        "a" * 64,
        KEY_ARN,
        ALICE_ARN,
        frozenset({"Decrypt", "DescribeKey"}),
        constraints=GrantConstraints(encryption_context_equals={"app": "web"}),
    )
    pending = Grant("b" * 64, KEY_ARN, ALICE_ARN, frozenset({"Encrypt"}), effective=False)
    decrypt = verdict(policy, grants=[constrained, pending])
    assert decrypt.conditions == ('the encryption context is exactly {"app": "web"} (grant aaaaaaaaaaaa…)',)
    assert decrypt.ways[0].route.kind == "grant" and decrypt.ways[0].route.grant_id == "a" * 64
    # Constraints do not apply to DescribeKey.
    assert verdict(policy, "kms:DescribeKey", grants=[constrained]).route.grant_id == "a" * 64
    encrypt = verdict(policy, "kms:Encrypt", grants=[constrained, pending])
    assert encrypt.conditions[0].startswith("the request passes the grant token of grant bbbbbbbbbbbb…")
    assert verdict(policy, "kms:Encrypt", grants=[pending], token_grant_ids={"b" * 64}).allowed
    # Another principal's grants are not its facts.
    bob = Caller.user(f"arn:aws:iam::{ACCOUNT}:user/bob")
    assert verdict(policy, "kms:Encrypt", caller=bob, grants=[pending]).access is Access.DENIED


def test_identity_policy_conditions_count_through_delegation() -> None:
    policy = key_policy(allow(ROOT_ARN, "kms:*"))
    iam = IdentityPolicy(
        "dev",
        compile_identity_policy(
            json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "kms:Decrypt",
                            "Resource": "*",
                            "Condition": {"StringLike": {"kms:EncryptionContext:project": "alpha-*"}},
                        }
                    ],
                }
            )
        ),
    )
    result = verdict(policy, identity_policies=[iam])
    assert result.conditions == ("kms:EncryptionContext:project matches 'alpha-*'",)
    assert (
        result.ways[0].route.kind == "identity-policy" and result.ways[0].route.statement.policy_name == "dev"
    )


def test_too_many_facts_give_an_approximate_verdict() -> None:
    condition = {"StringEquals": {f"kms:EncryptionContext:k{index}": "v" for index in range(4)}}
    policy = key_policy(allow(ALICE_ARN, "kms:Decrypt", condition))
    context = RequestContext.build(caller=ALICE, action="kms:Decrypt", resource=KEY_ARN)
    exact = AccessAnalyzer().verdict(context, key_policy=policy)
    assert exact.exact and exact.conditions == (
        " and ".join(f"kms:EncryptionContext:k{index} is 'v'" for index in range(4)),
    )
    rough = AccessAnalyzer(max_facts=2).verdict(context, key_policy=policy)
    assert rough.access is Access.CONDITIONAL and not rough.exact


@pytest.mark.parametrize(
    ("minterms", "width", "terms"),
    [
        ([1, 3], 2, [(1, 1)]),  # bit 0 set, bit 1 either
        ([0, 1, 2], 2, [(1, 0), (2, 0)]),  # not a, or not b
        ([3], 2, [(3, 3)]),
        ([1, 2], 2, [(3, 1), (3, 2)]),
    ],
)
def test_minimal_terms(minterms: list[int], width: int, terms: list[tuple[int, int]]) -> None:
    assert _minimal_terms(minterms, width) == terms


def test_request_keys_are_the_ones_a_request_sets() -> None:
    for key in (
        "aws:sourceip",
        "aws:currenttime",
        "kms:encryptioncontext:dept",
        "kms:viaservice",
        "aws:requesttag/x",
    ):
        assert depends_on_request(key)
    for key in (
        "aws:principalarn",
        "kms:calleraccount",
        "aws:resourcetag/env",
        "kms:keyspec",
        "aws:principalorgid",
    ):
        assert not depends_on_request(key)


def test_the_matrix_anyone_and_the_diff() -> None:
    target = KeyTarget(KEY_ARN, ACCOUNT, key_policy(allow(ROOT_ARN, "kms:*"), allow("*", "kms:DescribeKey")))
    alice = Principal(Subject(ALICE_ARN, "user", ACCOUNT, "alice"), (Identity(ALICE),))
    stranger = anyone("000000000000")
    actions = ("kms:DescribeKey", "kms:Decrypt")
    before = access_matrix(target, [alice, stranger], actions)
    assert before.verdict("*", "kms:DescribeKey").allowed
    assert before.verdict("*", "kms:Decrypt").access is Access.DENIED
    # alice has no identity policy: the root statement delegates, nothing allows.
    assert before.verdict(ALICE_ARN, "kms:Decrypt").access is Access.DENIED
    assert [(subject.arn, action) for subject, action, _ in before.granted()] == [
        (ALICE_ARN, "kms:DescribeKey"),
        ("*", "kms:DescribeKey"),
    ]
    # "*" is also a user or a role session of a stranger account whose own IAM allows: a statement naming
    # only assumed roles still lets a stranger in.
    roles_only = key_policy(
        allow("*", "kms:Decrypt", {"StringEquals": {"aws:PrincipalType": "AssumedRole"}}),
    )
    after = access_matrix(target.with_policy(roles_only), [alice, stranger], actions)
    assert after.verdict("*", "kms:Decrypt").allowed
    changes = {(change.subject.arn, change.action): change.direction for change in compare(before, after)}
    assert changes == {
        (ALICE_ARN, "kms:DescribeKey"): "loses",
        ("*", "kms:DescribeKey"): "loses",
        ("*", "kms:Decrypt"): "gains",
    }
    assert stranger.subject.external_to(ACCOUNT) and not alice.subject.external_to(ACCOUNT)


@pytest.mark.parametrize("pattern", [f"arn:aws:iam::{ACCOUNT}:user/al*", f"arn:aws:iam::{ACCOUNT}:user/zzz*"])
def test_who_the_caller_is_can_be_left_unknown(pattern: str) -> None:
    # A principal standing for any principal of its account: a condition on its ARN (or name, id, type, tags) is a
    # fact, the same whatever the real principals' names are.
    policy = key_policy(allow(ROOT_ARN, "kms:Decrypt", {"StringLike": {"aws:PrincipalArn": pattern}}))
    context = RequestContext.build(caller=ALICE, action="kms:Decrypt", resource=KEY_ARN)
    identity = [IdentityPolicy("all", compile_identity_policy(EVERYTHING_JSON))]
    unknown = AccessAnalyzer(principal_unknown=True).verdict(
        context, key_policy=policy, identity_policies=identity
    )
    assert unknown.access is Access.CONDITIONAL
    assert [way.facts for way in unknown.ways] == [(f"aws:PrincipalArn matches '{pattern}'",)]
    known = AccessAnalyzer().verdict(context, key_policy=policy, identity_policies=identity)
    assert known.access is (Access.ALLOWED if "al*" in pattern else Access.DENIED)


EVERYTHING_JSON = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
