"""Policy variables (Version 2012-10-17): substitution, defaults, escapes, missing values, literal values."""

from __future__ import annotations

from typing import Any

import pytest

from policies.engine import Caller, ReasonCode
from policies.engine.matching import Dialect
from policies.engine.variables import Variable, parse_template

from .helpers import (
    ACCOUNT,
    ALIAS_ARN,
    ALICE,
    ALICE_ARN,
    ALLOWED_IDP,
    ALLOWED_KP,
    NO_IDP,
    NO_KP,
    ROOT_STATEMENT,
    SESSION,
    Case,
    allow,
    aws,
    check,
    ids,
)


def var(
    case_id: str,
    condition: dict[str, Any],
    expected: tuple[bool, ReasonCode],
    caller: Caller = ALICE,
    version: str | None = "2012-10-17",
    **request: Any,
) -> Case:
    return Case(
        case_id,
        expected,
        [allow(principal="*", condition=condition)],
        caller=caller,
        version=version,
        context=request,
    )


OWNER = "aws:ResourceTag/owner"
# fmt: off
CASES = [
    var("username-match", {"StringEquals": {OWNER: "${aws:username}"}}, ALLOWED_KP, resource_tags={"owner": "alice"}),
    var("username-mismatch", {"StringEquals": {OWNER: "${aws:username}"}}, NO_KP, resource_tags={"owner": "bob"}),
    var("username-missing-for-session", {"StringEquals": {OWNER: "${aws:username}"}}, NO_KP, caller=SESSION,
        resource_tags={"owner": "alice"}),
    var("variable-name-case-insensitive", {"StringEquals": {OWNER: "${AWS:UserName}"}}, ALLOWED_KP,
        resource_tags={"owner": "alice"}),
    var("principal-tag", {"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}}, ALLOWED_KP,
        resource_tags={"team": "blue"}),
    var("principal-tag-mismatch", {"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}}, NO_KP,
        resource_tags={"team": "red"}),
    var("principal-tag-missing", {"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/cost}"}}, NO_KP,
        resource_tags={"team": "blue"}),
    var("userid", {"StringEquals": {"kms:EncryptionContext:owner": "${aws:userid}"}}, ALLOWED_KP,
        encryption_context={"owner": "AIDAALICE"}),
    var("userid-in-like-pattern", {"StringLike": {"kms:EncryptionContext:owner": "${aws:userid}*"}}, ALLOWED_KP,
        encryption_context={"owner": "AIDAALICE-backup"}),
    var("default-value", {"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/cost, 'none'}"}}, ALLOWED_KP,
        resource_tags={"team": "none"}),
    var("default-value-not-used", {"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team, 'none'}"}},
        NO_KP, resource_tags={"team": "none"}),
    var("default-value-quote", {"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/cost, 'it''s'}"}},
        ALLOWED_KP, resource_tags={"team": "it's"}),
    var("version-2008-is-literal", {"StringEquals": {OWNER: "${aws:username}"}}, ALLOWED_KP, version="2008-10-17",
        resource_tags={"owner": "${aws:username}"}),
    var("version-2008-does-not-substitute", {"StringEquals": {OWNER: "${aws:username}"}}, NO_KP,
        version="2008-10-17", resource_tags={"owner": "alice"}),
    var("no-version-does-not-substitute", {"StringEquals": {OWNER: "${aws:username}"}}, NO_KP, version=None,
        resource_tags={"owner": "alice"}),
    var("escape-star-literal", {"StringLike": {OWNER: "a${*}b"}}, ALLOWED_KP, resource_tags={"owner": "a*b"}),
    var("escape-star-not-wildcard", {"StringLike": {OWNER: "a${*}b"}}, NO_KP, resource_tags={"owner": "axyb"}),
    var("escape-question-literal", {"StringLike": {OWNER: "a${?}"}}, ALLOWED_KP, resource_tags={"owner": "a?"}),
    var("escape-question-not-wildcard", {"StringLike": {OWNER: "a${?}"}}, NO_KP, resource_tags={"owner": "ab"}),
    var("escape-dollar", {"StringEquals": {OWNER: "${$}{x}"}}, ALLOWED_KP, resource_tags={"owner": "${x}"}),
    var("unresolved-negated-is-true", {"StringNotEquals": {OWNER: "${aws:PrincipalTag/cost}"}}, ALLOWED_KP,
        resource_tags={"owner": "alice"}),
    var("multivalued-variable-unresolved", {"StringEquals": {OWNER: "${aws:TagKeys}"}}, NO_KP,
        resource_tags={"owner": "x"}, tag_keys=["x"]),
    var("substituted-star-is-literal", {"StringLike": {OWNER: "${aws:PrincipalTag/pattern}"}}, NO_KP,
        caller=Caller.user(ALICE_ARN, tags={"pattern": "*"}), resource_tags={"owner": "anything"}),
    var("substituted-star-matches-itself", {"StringLike": {OWNER: "${aws:PrincipalTag/pattern}"}}, ALLOWED_KP,
        caller=Caller.user(ALICE_ARN, tags={"pattern": "*"}), resource_tags={"owner": "*"}),
    var("arn-like-with-variable",
        {"ArnLike": {"kms:GranteePrincipal": "arn:aws:iam::${aws:PrincipalAccount}:role/*"}}, ALLOWED_KP,
        condition_values={"kms:GranteePrincipal": f"arn:aws:iam::{ACCOUNT}:role/worker"}),
    var("arn-like-with-variable-other-account",
        {"ArnLike": {"kms:GranteePrincipal": "arn:aws:iam::${aws:PrincipalAccount}:role/*"}}, NO_KP,
        condition_values={"kms:GranteePrincipal": "arn:aws:iam::999999999999:role/worker"}),
    var("ignore-case-with-variable", {"StringEqualsIgnoreCase": {OWNER: "${aws:username}"}}, ALLOWED_KP,
        resource_tags={"owner": "ALICE"}),
    var("kms-key-as-variable", {"StringEquals": {"kms:EncryptionContext:account": "${kms:CallerAccount}"}},
        ALLOWED_KP, encryption_context={"account": ACCOUNT}),
    var("bool-key-as-variable", {"StringEquals": {OWNER: "${aws:SecureTransport}"}}, ALLOWED_KP,
        resource_tags={"owner": "true"}),
    var("malformed-variable-is-literal", {"StringEquals": {OWNER: "${aws:username"}}, ALLOWED_KP,
        resource_tags={"owner": "${aws:username"}),
    Case("key-policy-resource-variable", ALLOWED_KP,
         [allow(principal=aws(ALICE_ARN), resource="arn:aws:kms:us-east-1:${aws:PrincipalAccount}:key/*")]),
    Case("identity-resource-variable", ALLOWED_IDP, None,
         {"p": [allow(action="kms:CreateAlias", resource="arn:aws:kms:us-east-1:*:alias/${aws:username}-*")]},
         action="kms:CreateAlias", resource=f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/alice-app"),
    Case("identity-resource-variable-other-alias", NO_IDP, None,
         {"p": [allow(action="kms:CreateAlias", resource="arn:aws:kms:us-east-1:*:alias/${aws:username}-*")]},
         action="kms:CreateAlias", resource=ALIAS_ARN),
    Case("identity-resource-variable-unresolved", NO_IDP, [ROOT_STATEMENT],
         {"p": [allow(action="kms:*", resource="arn:aws:kms:us-east-1:*:key/${aws:username}")]}, caller=SESSION),
]
# fmt: on


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_policy_variable(case: Case) -> None:
    check(case)


def test_parse_template_parts() -> None:
    template = parse_template("a${aws:username}b${*}${ aws:PrincipalTag/x , 'd' }")
    assert template is not None
    assert template.parts == (
        "a",
        Variable("aws:username", None),
        "b",
        ("*",),
        Variable("aws:principaltag/x", "d"),
    )
    assert parse_template("no variables") is None
    assert parse_template("${not closed") is None
    assert parse_template("${}") is None


def test_render_regex_keeps_substituted_text_literal() -> None:
    template = parse_template("arn:aws:kms:*:${aws:PrincipalAccount}:key/*")
    assert template is not None
    regex = template.render_regex({"aws:principalaccount": "1?3"}, Dialect.RESOURCE_ARN)
    assert regex is not None
    assert regex.fullmatch("arn:aws:kms:us-east-1:1?3:key/abc")
    assert not regex.fullmatch("arn:aws:kms:us-east-1:123:key/abc")
    assert template.render_regex({}, Dialect.RESOURCE_ARN) is None
