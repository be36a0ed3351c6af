"""Property tests: the parsers are total, decisions are monotone in allows and denies, and the specialised
condition closures agree with the general evaluator."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.engine import (
    Caller,
    Grant,
    GrantConstraints,
    IdentityPolicy,
    LimitExceededException,
    MalformedPolicyDocumentException,
    compile_policy,
    evaluate,
    parse_identity_policy,
    parse_key_policy,
)
from policies.engine.conditions import CompiledCondition

from .helpers import (
    ACCOUNT,
    ALICE,
    ALICE_ARN,
    BOB,
    BOB_ARN,
    CAROL,
    FEDERATED,
    KEY_ARN,
    OTHER_KEY_ARN,
    OTHER_ROOT,
    OTHER_ROOT_ARN,
    ROLE_ARN,
    ROOT,
    ROOT_ARN,
    SESSION,
    SESSION_ARN,
    context,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PARSE_ERRORS = (MalformedPolicyDocumentException, LimitExceededException)


def parses_or_refuses(text: str | bytes) -> None:
    for parse in (parse_key_policy, parse_identity_policy):
        try:
            policy = parse(text)
        except PARSE_ERRORS:
            continue
        compile_policy(policy)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
ELEMENTS = [
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
    "Version",
    "Statement",
]
element_values = st.one_of(
    json_values,
    st.sampled_from(["Allow", "Deny", "*", "kms:*", ROOT_ARN, ACCOUNT, "2012-10-17", "arn:aws:kms:*"]),
    st.fixed_dictionaries({"AWS": st.sampled_from(["*", ROOT_ARN, "x", ["*", ALICE_ARN]])}),
    st.dictionaries(
        st.sampled_from(
            [
                "StringEquals",
                "ForAllValues:StringEquals",
                "NumericLessThan",
                "Bool",
                "IpAddress",
                "Null",
                "DateLessThan",
                "ArnLike",
                "BinaryEquals",
                "Nope",
            ]
        ),
        st.dictionaries(
            st.sampled_from(["kms:EncryptionContext:a", "aws:SourceIp", "kms:GrantOperations", "x"]),
            json_values,
            max_size=2,
        ),
        max_size=2,
    ),
)
statement_like = st.dictionaries(st.sampled_from(ELEMENTS), element_values, max_size=7)
policy_like = st.fixed_dictionaries(
    {"Statement": st.one_of(statement_like, st.lists(statement_like, max_size=3))},
    optional={"Version": st.sampled_from(["2012-10-17", "2008-10-17", "1"]), "Id": json_values},
)


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    parses_or_refuses(data)


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    parses_or_refuses(text)


@SETTINGS
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    parses_or_refuses(json.dumps(value))


@SETTINGS
@given(policy_like)
def test_policy_shaped_json(value: Any) -> None:
    parses_or_refuses(json.dumps(value))


# --- Monotonicity ----------------------------------------------------------------------------------------------

PRINCIPALS = [
    "*",
    {"AWS": ROOT_ARN},
    {"AWS": ACCOUNT},
    {"AWS": ALICE_ARN},
    {"AWS": ROLE_ARN},
    {"AWS": OTHER_ROOT_ARN},
    {"AWS": [BOB_ARN, SESSION_ARN]},
    {"AWS": "*"},
]
ACTIONS = [
    "kms:*",
    "*",
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:Get*",
    "kms:Re*",
    ["kms:Encrypt", "kms:Sign"],
    "kms:GenerateRandom",
]
RESOURCES = ["*", KEY_ARN, OTHER_KEY_ARN, f"arn:aws:kms:*:{ACCOUNT}:key/*", "arn:aws:kms:us-east-1:*"]
CONDITIONS = [
    None,
    {"StringEquals": {"kms:CallerAccount": ACCOUNT}},
    {"Bool": {"aws:SecureTransport": "false"}},
    {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "dept"}},
    {"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["dept", "app"]}},
    {"StringNotEquals": {"aws:PrincipalTag/team": "blue"}},
    {"StringEquals": {"aws:ResourceTag/owner": "${aws:username}"}},
    {"Null": {"kms:ViaService": "true"}},
    {"StringLike": {"kms:EncryptionContext:dept": "e*"}},
]
CALLERS = [ALICE, BOB, CAROL, SESSION, ROOT, OTHER_ROOT, FEDERATED]
REQUEST_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:GetKeyPolicy", "kms:ReEncryptFrom", "kms:Sign"]


@st.composite
def statements(draw: st.DrawFn, key: bool, effect: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"Effect": effect or draw(st.sampled_from(["Allow", "Deny"]))}
    if key:
        result["NotPrincipal" if draw(st.booleans()) and draw(st.booleans()) else "Principal"] = draw(
            st.sampled_from(PRINCIPALS)
        )
    result["NotAction" if draw(st.integers(0, 5)) == 0 else "Action"] = draw(st.sampled_from(ACTIONS))
    result["NotResource" if draw(st.integers(0, 5)) == 0 else "Resource"] = draw(st.sampled_from(RESOURCES))
    condition = draw(st.sampled_from(CONDITIONS))
    if condition is not None:
        result["Condition"] = condition
    return result


def as_document(items: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": items})


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "key": draw(st.lists(statements(True), min_size=1, max_size=4)),
        "identity": draw(st.lists(st.lists(statements(False), min_size=1, max_size=3), max_size=2)),
        "grants": draw(
            st.lists(
                st.tuples(
                    st.sampled_from([ALICE_ARN, ROLE_ARN, ROOT_ARN, OTHER_ROOT_ARN]),
                    st.sampled_from(["Encrypt", "Decrypt", "Sign"]),
                    st.sampled_from([None, {"dept": "eng"}]),
                    st.booleans(),
                ),
                max_size=2,
            )
        ),
        "caller": draw(st.sampled_from(CALLERS)),
        "action": draw(st.sampled_from(REQUEST_ACTIONS)),
        "resource": draw(st.sampled_from([KEY_ARN, "arn:aws:kms:us-east-1:444455556666:key/k"])),
        "ec": draw(st.sampled_from([None, {"dept": "eng"}, {"dept": "ops", "app": "x"}])),
        "secure": draw(st.booleans()),
        "ip": draw(st.sampled_from(["10.1.2.3", "192.168.0.1", None])),
        "tags": draw(st.sampled_from([{}, {"owner": "alice"}])),
    }


def decide(
    scenario: dict[str, Any],
    key: list[dict[str, Any]],
    identity: list[list[dict[str, Any]]],
    grants: list[tuple[Any, ...]],
) -> bool:
    caller: Caller = scenario["caller"]
    request = context(
        caller,
        scenario["action"],
        scenario["resource"],
        encryption_context=scenario["ec"],
        secure_transport=scenario["secure"],
        source_ip=scenario["ip"],
        resource_tags=scenario["tags"],
    )
    grant_objects = [
        Grant(
            f"g{i}",
            scenario["resource"],
            grantee,
            frozenset({operation}),
            GrantConstraints(encryption_context_subset=subset) if subset else None,
            effective=effective,
        )
        for i, (grantee, operation, subset, effective) in enumerate(grants)
    ]
    decision = evaluate(
        request,
        key_policy=compile_policy(parse_key_policy(as_document(key))),
        identity_policies=[
            IdentityPolicy(f"p{i}", compile_policy(parse_identity_policy(as_document(items))))
            for i, items in enumerate(identity)
        ],
        grants=grant_objects,
    )
    assert decision.trace[-1].startswith("decision: ")
    return decision.allowed


@SETTINGS
@given(scenarios(), statements(True, "Deny"), st.booleans(), st.data())
def test_adding_a_deny_never_allows(
    scenario: dict[str, Any], extra: dict[str, Any], to_key: bool, data: st.DataObject
) -> None:
    before = decide(scenario, scenario["key"], scenario["identity"], scenario["grants"])
    if to_key or not scenario["identity"]:
        after = decide(scenario, [*scenario["key"], extra], scenario["identity"], scenario["grants"])
    else:
        identity_deny = data.draw(statements(False, "Deny"))
        identity = [[*scenario["identity"][0], identity_deny], *scenario["identity"][1:]]
        after = decide(scenario, scenario["key"], identity, scenario["grants"])
    assert not (after and not before)


@SETTINGS
@given(scenarios(), statements(True, "Allow"), st.booleans(), st.data())
def test_adding_an_allow_never_denies(
    scenario: dict[str, Any], extra: dict[str, Any], to_key: bool, data: st.DataObject
) -> None:
    before = decide(scenario, scenario["key"], scenario["identity"], scenario["grants"])
    if to_key:
        after = decide(scenario, [*scenario["key"], extra], scenario["identity"], scenario["grants"])
    else:
        identity_allow = data.draw(statements(False, "Allow"))
        after = decide(
            scenario, scenario["key"], [*scenario["identity"], [identity_allow]], scenario["grants"]
        )
    assert not (before and not after)


@SETTINGS
@given(scenarios(), st.sampled_from([ALICE_ARN, ROLE_ARN, ROOT_ARN]), st.sampled_from(["Encrypt", "Decrypt"]))
def test_adding_a_grant_never_denies(scenario: dict[str, Any], grantee: str, operation: str) -> None:
    before = decide(scenario, scenario["key"], scenario["identity"], scenario["grants"])
    after = decide(
        scenario,
        scenario["key"],
        scenario["identity"],
        [*scenario["grants"], (grantee, operation, None, True)],
    )
    assert not (before and not after)


# --- Fast path == general evaluation ---------------------------------------------------------------------------

OPERATORS = [
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "Bool",
    "Null",
    "ArnLike",
    "ArnNotLike",
    "StringEqualsIfExists",
    "BoolIfExists",
]
scalars = st.one_of(
    st.sampled_from(["a", "A", "ab", "a*", "true", "false", "arn:aws:iam::1:role/a", ""]),
    st.booleans(),
    st.integers(-2, 2),
    st.text(max_size=4),
)


@SETTINGS
@given(
    st.sampled_from(OPERATORS),
    st.sampled_from(["", "ForAnyValue:", "ForAllValues:"]),
    st.lists(
        st.sampled_from(["a", "A", "a*", "true", "false", "arn:aws:iam::*:role/*", "${aws:username}"]),
        min_size=1,
        max_size=3,
    ),
    st.one_of(st.none(), scalars, st.lists(scalars, max_size=3).map(tuple)),
)
def test_fast_check_matches_general_evaluation(
    operator: str, prefix: str, values: list[str], raw: Any
) -> None:
    name = prefix + operator
    if prefix and operator == "Null":
        return
    document = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "*",
                    "Resource": "*",
                    "Condition": {name: {"x:key": values}},
                }
            ],
        }
    )
    try:
        policy = parse_key_policy(document)
    except MalformedPolicyDocumentException:
        return
    clause = policy.statements[0].conditions[0]
    condition = CompiledCondition(clause, variables=True, key_policy=True)
    lookup: dict[str, Any] = {"aws:username": "a"}
    if raw is not None:
        lookup["x:key"] = raw
    assert condition.check(lookup) == condition.evaluate(lookup)
