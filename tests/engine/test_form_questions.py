"""What a page asks before a form is filled in (pure, table-driven): `AccessAnalyzer(open_keys=...)` leaves open only
the condition keys the form will set and decides the rest from the request in hand; `identity_may_allow_under`
says whether identity policies could allow an action on some alias name not typed yet."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from policies.engine import (
    Caller,
    RequestContext,
    compile_identity_policy,
    compile_key_policy,
    identity_may_allow_under,
)
from policies.engine.analysis import Access, AccessAnalyzer
from policies.engine.evaluate import IdentityPolicy, evaluate
from tests.engine.helpers import ACCOUNT, ALICE_ARN, KEY_ARN

ALICE = Caller.user(ALICE_ARN)
PREFIX = f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/"
NAME_CHARACTERS = "a-zA-Z0-9/_-"


def key_policy(condition: dict[str, Any]) -> Any:
    statement = {
        "Effect": "Allow",
        "Principal": {"AWS": ALICE_ARN},
        "Action": "kms:TagResource",
        "Resource": "*",
    }
    return compile_key_policy(
        json.dumps({"Version": "2012-10-17", "Statement": [{**statement, "Condition": condition}]})
    )


@pytest.mark.parametrize(
    ("condition", "open_keys", "access"),
    [
        # A tag not typed yet: the condition on it is left open, so some tag could be allowed.
        ({"StringEquals": {"aws:RequestTag/team": "ops"}}, ("aws:requesttag/",), Access.CONDITIONAL),
        # The caller's address is the page request's: decided, not left open.
        ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, ("aws:requesttag/",), Access.DENIED),
        ({"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}, ("aws:requesttag/",), Access.ALLOWED),
        # Without open_keys every request key is a fact, the address too (the analyzer's own default).
        ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, None, Access.CONDITIONAL),
    ],
)
def test_open_keys_leave_open_only_what_the_form_sets(
    condition: dict[str, Any], open_keys: tuple[str, ...] | None, access: Access
) -> None:
    context = RequestContext.build(
        caller=ALICE, action="kms:TagResource", resource=KEY_ARN, source_ip="192.0.2.7"
    )
    test = None if open_keys is None else (lambda name: name.startswith(open_keys))
    verdict = AccessAnalyzer(open_keys=test).verdict(context, key_policy=key_policy(condition))
    assert verdict.access is access


def identity(*resources: str, effect: str = "Allow", **condition: Any) -> IdentityPolicy:
    statement: dict[str, Any] = {"Effect": effect, "Action": "kms:CreateAlias", "Resource": list(resources)}
    if condition:
        statement["Condition"] = condition
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    return IdentityPolicy(f"p{len(resources)}{effect}", compile_identity_policy(document))


KEYS = f"arn:aws:kms:*:{ACCOUNT}:key/*"


@pytest.mark.parametrize(
    ("policies", "caller", "expected"),
    [
        ((identity("*"),), ALICE, True),
        ((identity(f"arn:aws:kms:*:{ACCOUNT}:alias/app-*"),), ALICE, True),
        ((identity(f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/app"),), ALICE, True),
        ((identity(f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/a?p"),), ALICE, True),
        # Key ARNs only: the region's * cannot make an alias name of ":…:key/…" (names have no colon).
        ((identity(KEYS),), ALICE, False),
        ((identity(f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/"),), ALICE, False),  # no name after the prefix
        ((identity("arn:aws:kms:us-east-1:999999999999:alias/*"),), ALICE, False),  # another account's
        ((identity(f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/a:b"),), ALICE, False),  # a colon: never a name
        ((identity("*", IpAddress={"aws:SourceIp": "10.0.0.0/8"}),), ALICE, False),  # the address is known
        ((identity("*"), identity("*", effect="Deny")), ALICE, False),  # a Deny of every name
        ((identity("*"), identity(f"{PREFIX}x", effect="Deny")), ALICE, True),  # a Deny of one name only
        ((), Caller.root(ACCOUNT), True),  # the root's identity half is implicit
        ((), ALICE, False),
    ],
)
def test_identity_may_allow_some_alias_name(
    policies: tuple[IdentityPolicy, ...], caller: Caller, expected: bool
) -> None:
    context = RequestContext.build(
        caller=caller, action="kms:CreateAlias", resource=PREFIX, source_ip="192.0.2.7"
    )
    assert (
        identity_may_allow_under(context, policies, prefix=PREFIX, name_characters=NAME_CHARACTERS)
        is expected
    )


# ---------------------------------------------------------------------------------- possible(): bounded, no terms

TAG_KEYS = ("aws:requesttag/", "aws:tagkeys")


def open_tags(name: str) -> bool:
    return name.startswith(TAG_KEYS)


def tag_statements(count: int, **extra: Any) -> Any:
    """`count` Allow statements for kms:TagResource, each on its own tag (one open fact each)."""
    items = [
        {
            "Effect": "Allow",
            "Principal": {"AWS": ALICE_ARN},
            "Action": "kms:TagResource",
            "Resource": "*",
            "Condition": {"StringEquals": {f"aws:RequestTag/team{index}": "ops"}, **extra},
        }
        for index in range(count)
    ]
    return compile_key_policy(json.dumps({"Version": "2012-10-17", "Statement": items}))


@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the engine evaluations the analysis makes (one entry per call)."""
    from policies.engine import analysis

    calls: list[int] = []
    real = analysis.evaluate

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(analysis, "evaluate", counting)
    return calls


def tag_request() -> RequestContext:
    return RequestContext.build(
        caller=ALICE, action="kms:TagResource", resource=KEY_ARN, source_ip="192.0.2.7"
    )


def test_possible_stops_at_the_first_allowing_assignment(evaluations: list[int]) -> None:
    """Ten statements, ten facts: "all true" allows, so one evaluation answers (no terms are built)."""
    analyzer = AccessAnalyzer(max_facts=10, open_keys=open_tags)
    possibility = analyzer.possible(tag_request(), key_policy=tag_statements(10))
    assert possibility.allowed and possibility.exact
    assert len(evaluations) == 1


def test_possible_evaluates_at_most_two_to_the_bound(evaluations: list[int]) -> None:
    """Five facts, none of whose assignments allows (each statement also needs another address): every
    assignment is evaluated once, 2**5, and the answer is an exact "no"."""
    policy = tag_statements(5, IpAddress={"aws:SourceIp": "10.0.0.0/8"})
    possibility = AccessAnalyzer(max_facts=6, open_keys=open_tags).possible(tag_request(), key_policy=policy)
    assert not possibility.allowed and possibility.exact
    assert len(evaluations) == 2**5


@pytest.mark.parametrize("count", [7, 12])
def test_possible_with_more_facts_than_the_bound_answers_allowed_inexactly(
    evaluations: list[int], count: int
) -> None:
    """More open facts than the bound: "could allow" without evaluating anything, marked inexact (a form
    offered whose request is decided when sent), even where no assignment would allow."""
    policy = tag_statements(count, IpAddress={"aws:SourceIp": "10.0.0.0/8"})
    possibility = AccessAnalyzer(max_facts=6, open_keys=open_tags).possible(tag_request(), key_policy=policy)
    assert possibility.allowed and not possibility.exact
    assert evaluations == []


# ------------------------------------------------------------------- variables naming an open key are open too


def one_statement(action: str, condition: dict[str, Any] | None = None, resource: str = "*") -> Any:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": ALICE_ARN},
        "Action": action,
        "Resource": resource,
    }
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.mark.parametrize(
    ("action", "condition", "open_keys"),
    [
        # The caller's tag must equal the tag typed: some tag (the caller's own value) could be allowed.
        (
            "kms:TagResource",
            {"StringEquals": {"aws:PrincipalTag/team": "${aws:RequestTag/team}"}},
            ("aws:requesttag/", "aws:tagkeys"),
        ),
        (
            "kms:TagResource",
            {"StringEquals": {"aws:ResourceTag/owner": "${aws:RequestTag/owner}"}},
            ("aws:requesttag/", "aws:tagkeys"),
        ),
        (
            "kms:CreateGrant",
            {"StringLike": {"aws:PrincipalArn": "${kms:GranteePrincipal}"}},
            ("kms:granteeprincipal",),
        ),
    ],
)
def test_a_value_naming_an_open_key_is_left_open(
    action: str, condition: dict[str, Any], open_keys: tuple[str, ...]
) -> None:
    caller = Caller.user(ALICE_ARN, tags={"team": "ops"})
    context = RequestContext.build(
        caller=caller,
        action=action,
        resource=KEY_ARN,
        source_ip="192.0.2.7",
        resource_tags={"owner": "alice"},
    )
    policy = compile_key_policy(one_statement(action, condition))
    analyzer = AccessAnalyzer(open_keys=lambda name: name.startswith(open_keys))
    assert analyzer.possible(context, key_policy=policy).allowed
    assert analyzer.verdict(context, key_policy=policy).access is Access.CONDITIONAL
    # A value naming a key the form does not set is decided on the request's values, as before.
    closed = AccessAnalyzer(open_keys=lambda name: name == "aws:tagkeys")
    assert not closed.possible(context, key_policy=policy).allowed


@pytest.mark.parametrize(
    ("version", "open_resource"), [("2012-10-17", True), (None, False), ("2008-10-17", False)]
)
def test_a_resource_naming_an_open_key_answers_allowed_inexactly_in_version_2012(
    version: str | None, open_resource: bool
) -> None:
    """An identity policy whose Resource is built from a tag typed later: whether it names the key cannot be
    decided before the tag is typed. Only in Version 2012-10-17: elsewhere the pattern is the literal text,
    which names no key, and the answer is an exact "no"."""
    resource = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/${{aws:RequestTag/key}}"
    document: dict[str, Any] = {
        "Statement": [{"Effect": "Allow", "Action": "kms:TagResource", "Resource": resource}]
    }
    if version is not None:
        document["Version"] = version
    identity = IdentityPolicy("tagged", compile_identity_policy(json.dumps(document)))
    root_delegation = compile_key_policy(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                        "Action": "kms:*",
                        "Resource": "*",
                    }
                ],
            }
        )
    )
    analyzer = AccessAnalyzer(max_facts=6, open_keys=open_tags)
    possibility = analyzer.possible(tag_request(), key_policy=root_delegation, identity_policies=[identity])
    assert possibility.allowed is open_resource and possibility.exact is not open_resource
    closed = AccessAnalyzer(open_keys=lambda name: name == "kms:rotationperiodindays")
    assert not closed.possible(
        tag_request(), key_policy=root_delegation, identity_policies=[identity]
    ).allowed


# ------------------------------------------------- only where the policy's Version substitutes variables at all


def tag_equals_typed_tag(version: str | None) -> Any:
    """Alice may tag when her team tag equals the tag she types, under `version` (None: no Version)."""
    document: dict[str, Any] = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": ALICE_ARN},
                "Action": "kms:TagResource",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:PrincipalTag/team": "${aws:RequestTag/team}"}},
            }
        ]
    }
    if version is not None:
        document["Version"] = version
    return compile_key_policy(json.dumps(document))


def tagged_alice_tags(tags: dict[str, str] | None = None) -> RequestContext:
    return RequestContext.build(
        caller=Caller.user(ALICE_ARN, tags={"team": "ops"}),
        action="kms:TagResource",
        resource=KEY_ARN,
        source_ip="192.0.2.7",
        request_tags=tags,
    )


@pytest.mark.parametrize("version", [None, "2008-10-17"])
@pytest.mark.parametrize("analyzer", [AccessAnalyzer, lambda: AccessAnalyzer(open_keys=open_tags)])
def test_without_variables_a_dollar_brace_value_is_literal_and_decided(
    version: str | None, analyzer: Callable[[], AccessAnalyzer]
) -> None:
    """No Version (or 2008-10-17): the engine compares the caller's tag with the text "${aws:RequestTag/team}",
    whatever tag is typed, and so never allows; the analysis says so exactly, as the engine does."""
    policy = tag_equals_typed_tag(version)
    assert not evaluate(tagged_alice_tags({"team": "ops"}), key_policy=policy).allowed
    verdict = analyzer().verdict(tagged_alice_tags(), key_policy=policy)
    assert verdict.access is Access.DENIED and verdict.exact
    possibility = analyzer().possible(tagged_alice_tags(), key_policy=policy)
    assert not possibility.allowed and possibility.exact


@pytest.mark.parametrize("analyzer", [AccessAnalyzer, lambda: AccessAnalyzer(open_keys=open_tags)])
def test_with_variables_the_same_value_is_open(analyzer: Callable[[], AccessAnalyzer]) -> None:
    """Version 2012-10-17: the engine allows the caller's own team typed, so the analysis leaves it open; the
    default analyzer (every request key open) reads it CONDITIONAL where it once read DENIED."""
    policy = tag_equals_typed_tag("2012-10-17")
    assert evaluate(tagged_alice_tags({"team": "ops"}), key_policy=policy).allowed
    verdict = analyzer().verdict(tagged_alice_tags(), key_policy=policy)
    assert verdict.access is Access.CONDITIONAL and verdict.exact
    assert verdict.conditions == ("aws:PrincipalTag/team is '${aws:RequestTag/team}'",)
    assert analyzer().possible(tagged_alice_tags(), key_policy=policy).allowed


def test_account_wide_a_value_naming_the_principal_is_a_condition() -> None:
    """For a principal standing for any of its account's (principal_unknown): a resource tag that must equal
    ``${aws:username}`` holds for some user, so the statement reads conditional, not denied on the name the
    analysis happens to hold."""
    policy = compile_key_policy(
        one_statement("kms:Decrypt", {"StringEquals": {"aws:ResourceTag/owner": "${aws:username}"}})
    )
    context = RequestContext.build(
        caller=ALICE, action="kms:Decrypt", resource=KEY_ARN, resource_tags={"owner": "bob"}
    )
    assert AccessAnalyzer().verdict(context, key_policy=policy).access is Access.DENIED
    verdict = AccessAnalyzer(principal_unknown=True).verdict(context, key_policy=policy)
    assert verdict.access is Access.CONDITIONAL
    assert verdict.conditions == ("aws:ResourceTag/owner is '${aws:username}'",)
