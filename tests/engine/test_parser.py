"""Parsing and validation of key policies and identity policies (spec §6.1): every error, and the accepted
forms."""

from __future__ import annotations

import json
from typing import Any

import pytest

from policies.engine import (
    INVALID_PRINCIPALS_MESSAGE,
    KEY_POLICY_MAX_BYTES,
    NO_PRINCIPAL_MESSAGE,
    Effect,
    EngineError,
    LimitExceededException,
    MalformedPolicyDocumentException,
    PolicyKind,
    parse_identity_policy,
    parse_key_policy,
)

from .helpers import ACCOUNT, ALICE_ARN, FEDERATED_ARN, ROLE_ARN, ROOT_ARN, SESSION_ARN

KEY = "key"
IDENTITY = "identity"
OK_KEY_STATEMENT: dict[str, Any] = {
    "Effect": "Allow",
    "Principal": {"AWS": ROOT_ARN},
    "Action": "kms:*",
    "Resource": "*",
}
OK_IDENTITY_STATEMENT: dict[str, Any] = {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}


def kstmt(**changes: Any) -> str:
    """A key policy with one statement: the valid one with ``changes`` (a value of None removes the element)."""
    statement = {**OK_KEY_STATEMENT, **changes}
    body = {"Version": "2012-10-17", "Statement": [{k: v for k, v in statement.items() if v is not None}]}
    return json.dumps(body, ensure_ascii=False)


def istmt(**changes: Any) -> str:
    statement = {**OK_IDENTITY_STATEMENT, **changes}
    body = {"Version": "2012-10-17", "Statement": [{k: v for k, v in statement.items() if v is not None}]}
    return json.dumps(body, ensure_ascii=False)


def cond(condition: Any) -> str:
    return kstmt(Condition=condition)


# (id, kind, text, message fragment, element)
MULTIVALUED = (
    "kms:EncryptionContextKeys",
    "kms:GrantOperations",
    "kms:ResourceAliases",
    "aws:TagKeys",
    "aws:PrincipalOrgPaths",
    "aws:CalledVia",
    "aws:PrincipalServiceNamesList",
)

# fmt: off
MALFORMED: list[tuple[str, str, str | bytes, str, str | None]] = [
    ("empty", KEY, "", "empty", None),
    ("whitespace", KEY, "  \n\t ", "empty", None),
    ("not-json", KEY, "{", "Syntax errors in policy.", None),
    ("trailing-garbage", KEY, kstmt() + "x", "Syntax errors in policy.", None),
    ("json-array", KEY, "[]", "must be a JSON object", None),
    ("json-string", KEY, '"policy"', "must be a JSON object", None),
    ("nan-constant", KEY, '{"Version": NaN}', "Syntax errors in policy.", None),
    ("duplicate-name", KEY, '{"Statement": [], "Statement": []}', "Duplicate element name 'Statement'", None),
    ("deeply-nested", KEY, "[" * 16_000 + "]" * 16_000, "Syntax errors in policy.", None),
    ("deeply-nested-identity", IDENTITY, '{"Statement": ' + "[" * 200_000 + "]" * 200_000 + "}",
     "Syntax errors in policy.", None),
    ("huge-integer", IDENTITY, '{"Version": ' + "9" * 5000 + "}", "Syntax errors in policy.", None),
    ("invalid-utf8", KEY, b'{"Statement": "\xff"}', "not valid UTF-8", None),
    ("char-above-00ff", KEY, kstmt(Sid="\u0100"), "U+0100", None),
    ("nul-char", KEY, kstmt(Sid="ab").replace("ab", "a\x00b"), "U+0000", None),
    ("bom", KEY, "\ufeff" + kstmt(), "U+FEFF", None),
    ("emoji", IDENTITY, istmt(Sid="\U0001f600"), "not allowed", None),
    ("unknown-top-element", KEY, json.dumps({"Version": "2012-10-17", "Statement": [OK_KEY_STATEMENT], "Foo": 1}),
     "unknown element 'Foo'", "Foo"),
    ("lowercase-top-element", KEY, json.dumps({"version": "2012-10-17", "Statement": [OK_KEY_STATEMENT]}),
     "unknown element 'version'", "version"),
    ("bad-version", KEY, json.dumps({"Version": "2012-10-18", "Statement": [OK_KEY_STATEMENT]}), "Version must be",
     "Version"),
    ("version-not-string", KEY, json.dumps({"Version": 2012, "Statement": [OK_KEY_STATEMENT]}), "Version must be",
     "Version"),
    ("id-not-string", KEY, json.dumps({"Id": 1, "Statement": [OK_KEY_STATEMENT]}), "Id must be a string", "Id"),
    ("missing-statement", KEY, json.dumps({"Version": "2012-10-17"}), "must contain a Statement", "Statement"),
    ("statement-string", KEY, json.dumps({"Statement": "x"}), "Statement must be an object or a list", "Statement"),
    ("statement-empty-list", KEY, json.dumps({"Statement": []}), "at least one statement", "Statement"),
    ("statement-not-object", KEY, json.dumps({"Statement": ["x"]}), "Statement must be a JSON object", "Statement"),
    ("unknown-statement-element", KEY, kstmt(Effects="Allow"), "unknown element 'Effects'", "Effects"),
    ("sid-not-string", KEY, kstmt(Sid=5), "Sid must be a string", "Sid"),
    ("identity-sid-with-space", IDENTITY, istmt(Sid="Allow use"), "Statement IDs (SID) must be alpha-numeric", "Sid"),
    ("duplicate-sids", KEY,
     json.dumps({"Statement": [{**OK_KEY_STATEMENT, "Sid": "a b"}, {**OK_KEY_STATEMENT, "Sid": "a b"}]}),
     "Statement IDs (SID) in a single policy must be unique.", "Sid"),
    ("missing-effect", KEY, kstmt(Effect=None), "Missing required field Effect.", "Effect"),
    ("lowercase-effect", KEY, kstmt(Effect="allow"), "Invalid effect", "Effect"),
    ("effect-not-string", KEY, kstmt(Effect=True), "Invalid effect", "Effect"),
    ("no-principal", KEY, kstmt(Principal=None), NO_PRINCIPAL_MESSAGE, "Principal"),
    ("empty-principal-object", KEY, kstmt(Principal={}), NO_PRINCIPAL_MESSAGE, "Principal"),
    ("empty-principal-list", KEY, kstmt(Principal={"AWS": []}), NO_PRINCIPAL_MESSAGE, "Principal"),
    ("principal-and-not-principal", KEY, kstmt(NotPrincipal={"AWS": ALICE_ARN}), "both Principal and NotPrincipal",
     "NotPrincipal"),
    ("principal-arn-string", KEY, kstmt(Principal=ALICE_ARN), INVALID_PRINCIPALS_MESSAGE, "Principal"),
    ("principal-number", KEY, kstmt(Principal=5), INVALID_PRINCIPALS_MESSAGE, "Principal"),
    ("principal-group", KEY, kstmt(Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:group/admins"}),
     INVALID_PRINCIPALS_MESSAGE, "Principal.AWS"),
    ("principal-garbage", KEY, kstmt(Principal={"AWS": "alice"}), INVALID_PRINCIPALS_MESSAGE, "Principal.AWS"),
    ("principal-wildcard-arn", KEY, kstmt(Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:user/*"}),
     INVALID_PRINCIPALS_MESSAGE, "Principal.AWS"),
    ("principal-short-account", KEY, kstmt(Principal={"AWS": "12345"}), INVALID_PRINCIPALS_MESSAGE, "Principal.AWS"),
    ("principal-unique-id", KEY, kstmt(Principal={"AWS": "AIDAJQABLZS4A3QDU576Q"}), INVALID_PRINCIPALS_MESSAGE,
     "Principal.AWS"),
    ("principal-not-string-entry", KEY, kstmt(Principal={"AWS": [ROOT_ARN, 5]}), INVALID_PRINCIPALS_MESSAGE,
     "Principal.AWS"),
    ("principal-canonical-user", KEY, kstmt(Principal={"CanonicalUser": "abc"}), INVALID_PRINCIPALS_MESSAGE,
     "Principal.CanonicalUser"),
    ("principal-lowercase-type", KEY, kstmt(Principal={"aws": ROOT_ARN}), INVALID_PRINCIPALS_MESSAGE,
     "Principal.aws"),
    ("principal-bad-service", KEY, kstmt(Principal={"Service": "not a service"}), INVALID_PRINCIPALS_MESSAGE,
     "Principal.Service"),
    ("principal-service-star", KEY, kstmt(Principal={"Service": "*"}), INVALID_PRINCIPALS_MESSAGE,
     "Principal.Service"),
    ("principal-bad-federated", KEY, kstmt(Principal={"Federated": "arn:aws:iam::111122223333:user/x"}),
     INVALID_PRINCIPALS_MESSAGE, "Principal.Federated"),
    ("not-principal-invalid", KEY, kstmt(Principal=None, NotPrincipal={"AWS": "x"}), INVALID_PRINCIPALS_MESSAGE,
     "NotPrincipal.AWS"),
    ("identity-principal", IDENTITY, istmt(Principal="*"), "Policy document should not specify a principal.",
     "Principal"),
    ("identity-not-principal", IDENTITY, istmt(NotPrincipal={"AWS": ROOT_ARN}),
     "Policy document should not specify a principal.", "NotPrincipal"),
    ("action-and-not-action", KEY, kstmt(NotAction="kms:Decrypt"), "both Action and NotAction", "NotAction"),
    ("resource-and-not-resource", KEY, kstmt(NotResource="*"), "both Resource and NotResource", "NotResource"),
    ("action-number", KEY, kstmt(Action=5), "Action must be a string or a list of strings", "Action"),
    ("action-empty-list", KEY, kstmt(Action=[]), "Action must not be an empty list", "Action"),
    ("action-list-with-number", KEY, kstmt(Action=["kms:Encrypt", 1]), "must be a string or a list", "Action"),
    ("action-no-vendor", KEY, kstmt(Action="Encrypt"), "Actions/Conditions must be prefaced by a vendor", "Action"),
    ("action-bad-characters", KEY, kstmt(Action="kms:Encrypt Decrypt"), "Invalid action", "Action"),
    ("action-vendor-wildcard", KEY, kstmt(Action="*:Encrypt"), "Invalid action", "Action"),
    ("not-action-no-vendor", IDENTITY, istmt(Action=None, NotAction="Decrypt"), "prefaced by a vendor", "NotAction"),
    ("identity-missing-action", IDENTITY, istmt(Action=None), "Policy statement must contain actions.", "Action"),
    ("identity-missing-resource", IDENTITY, istmt(Resource=None), "Policy statement must contain resources.",
     "Resource"),
    ("resource-not-arn", KEY, kstmt(Resource="key/1234"), 'must be in ARN format or "*"', "Resource"),
    ("resource-too-short", IDENTITY, istmt(Resource="arn:aws"), 'must be in ARN format or "*"', "Resource"),
    ("resource-vendor-wildcard", IDENTITY, istmt(Resource="arn:aws:*:us-east-1:1:key/x"),
     "Resource vendor must be fully qualified", "Resource"),
    ("resource-number", KEY, kstmt(Resource=1), "Resource must be a string or a list", "Resource"),
    ("condition-not-object", KEY, cond(["x"]), "Condition must be a JSON object", "Condition"),
    ("condition-unknown-operator", KEY, cond({"StringEqualz": {"kms:KeySpec": "x"}}),
     "Invalid Condition type : StringEqualz", "Condition"),
    ("condition-null-if-exists", KEY, cond({"NullIfExists": {"kms:KeySpec": "true"}}), "Invalid Condition type",
     "Condition"),
    ("condition-for-any-value-null", KEY, cond({"ForAnyValue:Null": {"kms:KeySpec": "true"}}),
     "Invalid Condition type", "Condition"),
    ("condition-unknown-set-operator", KEY, cond({"ForSomeValues:StringEquals": {"kms:KeySpec": "x"}}),
     "Invalid Condition type", "Condition"),
    ("condition-block-not-object", KEY, cond({"StringEquals": "x"}), "must map condition keys", "Condition"),
    ("condition-block-empty", KEY, cond({"StringEquals": {}}), "must map condition keys", "Condition"),
    ("condition-key-no-vendor", KEY, cond({"StringEquals": {"KeySpec": "x"}}), "prefaced by a vendor", "Condition"),
    ("condition-values-empty", KEY, cond({"StringEquals": {"kms:KeySpec": []}}), "empty list of values", "Condition"),
    ("condition-value-null", KEY, cond({"StringEquals": {"kms:KeySpec": None}}), "strings, numbers or booleans",
     "Condition"),
    ("condition-value-object", KEY, cond({"StringEquals": {"kms:KeySpec": {"a": "b"}}}),
     "strings, numbers or booleans", "Condition"),
    ("condition-numeric-text", KEY, cond({"NumericEquals": {"kms:RotationPeriodInDays": "ten"}}), "Invalid value",
     "Condition"),
    ("condition-numeric-bool", KEY, cond({"NumericLessThan": {"kms:RotationPeriodInDays": True}}), "Invalid value",
     "Condition"),
    ("condition-date-text", KEY, cond({"DateLessThan": {"aws:CurrentTime": "tomorrow"}}), "Invalid value",
     "Condition"),
    ("condition-bool-text", KEY, cond({"Bool": {"aws:SecureTransport": "yes"}}), "Invalid value", "Condition"),
    ("condition-null-text", KEY, cond({"Null": {"kms:ViaService": "maybe"}}), "Invalid value", "Condition"),
    ("condition-ip-text", KEY, cond({"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}), "Invalid value", "Condition"),
    ("condition-binary-text", KEY, cond({"BinaryEquals": {"x:Blob": "not base64!"}}), "Invalid value", "Condition"),
    *[(f"multivalued-without-set-operator-{key}", KEY, cond({"StringEquals": {key: "x"}}), "is multivalued",
       "Condition") for key in MULTIVALUED],
    ("multivalued-case-insensitive", KEY, cond({"StringLike": {"KMS:GRANTOPERATIONS": "x"}}), "is multivalued",
     "Condition"),
    ("for-all-values-encryption-context", KEY,
     cond({"ForAllValues:StringEquals": {"kms:EncryptionContext:dept": "eng"}}),
     "OverlyPermissiveCondition:EncryptionContext:", "Condition"),
    ("for-all-values-encryption-context-case", IDENTITY,
     istmt(Condition={"forallvalues:StringLike": {"KMS:ENCRYPTIONCONTEXT:Dept": "e*"}}),
     "OverlyPermissiveCondition:EncryptionContext:", "Condition"),
]
# fmt: on


@pytest.mark.parametrize(
    ("kind", "text", "fragment", "element"), [row[1:] for row in MALFORMED], ids=[row[0] for row in MALFORMED]
)
def test_malformed(kind: str, text: str | bytes, fragment: str, element: str | None) -> None:
    parse = parse_key_policy if kind == KEY else parse_identity_policy
    with pytest.raises(MalformedPolicyDocumentException) as raised:
        parse(text)
    error = raised.value
    assert fragment in error.message
    assert error.code == "MalformedPolicyDocumentException"
    assert error.element == element
    assert str(error) == error.message
    assert "MalformedPolicyDocumentException" in repr(error)


def test_statement_level_errors_say_where() -> None:
    text = json.dumps(
        {"Statement": [OK_KEY_STATEMENT, {**OK_KEY_STATEMENT, "Sid": "Allow use", "Principal": {}}]}
    )
    with pytest.raises(MalformedPolicyDocumentException) as raised:
        parse_key_policy(text)
    error = raised.value
    assert error.message == (
        'Policy contains a statement with no principal. (statement 2 (Sid "Allow use"), element Principal)'
    )
    assert (error.statement_index, error.sid, error.element) == (1, "Allow use", "Principal")


def test_invalid_principal_message_names_the_value() -> None:
    with pytest.raises(MalformedPolicyDocumentException) as raised:
        parse_key_policy(kstmt(Principal={"AWS": [ROOT_ARN, "arn:aws:iam::111122223333:group/g"]}))
    assert raised.value.message.startswith(INVALID_PRINCIPALS_MESSAGE)
    assert "arn:aws:iam::111122223333:group/g" in raised.value.message


def test_overly_permissive_message_starts_with_aws_prefix() -> None:
    with pytest.raises(MalformedPolicyDocumentException) as raised:
        parse_key_policy(cond({"ForAllValues:StringEquals": {"kms:EncryptionContext:dept": "eng"}}))
    assert raised.value.message.startswith("OverlyPermissiveCondition:EncryptionContext:")


def padded(size: int) -> str:
    base = kstmt(Sid="")
    return base[:-2] + " " * (size - len(base)) + base[-2:]


def test_key_policy_size_limit() -> None:
    assert parse_key_policy(padded(KEY_POLICY_MAX_BYTES)).size_bytes == KEY_POLICY_MAX_BYTES
    with pytest.raises(LimitExceededException) as raised:
        parse_key_policy(padded(KEY_POLICY_MAX_BYTES + 1))
    assert raised.value.code == "LimitExceededException"
    assert isinstance(raised.value, EngineError)
    with pytest.raises(LimitExceededException):
        parse_key_policy(padded(KEY_POLICY_MAX_BYTES + 1).encode())


def test_size_counts_utf8_bytes() -> None:
    text = kstmt(Sid="\u00e9" * 20_000)  # 2 bytes each in UTF-8
    with pytest.raises(LimitExceededException):
        parse_key_policy(text)


def test_identity_policies_have_no_engine_size_limit() -> None:
    text = istmt(Sid="a" * 40_000)
    assert parse_identity_policy(text).size_bytes > KEY_POLICY_MAX_BYTES


def test_limit_checked_before_anything_else() -> None:
    with pytest.raises(LimitExceededException):
        parse_key_policy(b"\xff" * (KEY_POLICY_MAX_BYTES + 1))


ACCEPTED_PRINCIPALS = [
    "*",
    {"AWS": "*"},
    {"AWS": ACCOUNT},
    {"AWS": ROOT_ARN},
    {"AWS": ALICE_ARN},
    {"AWS": f"arn:aws:iam::{ACCOUNT}:user/division/team/alice"},
    {"AWS": ROLE_ARN},
    {"AWS": f"arn:aws:iam::{ACCOUNT}:role/service-role/app"},
    {"AWS": SESSION_ARN},
    {"AWS": FEDERATED_ARN},
    {"AWS": f"arn:aws-cn:iam::{ACCOUNT}:root"},
    {"Service": "logs.us-east-1.amazonaws.com"},
    {"Service": ["ec2.amazonaws.com", "s3.amazonaws.com"]},
    {"Federated": "cognito-identity.amazonaws.com"},
    {"Federated": f"arn:aws:iam::{ACCOUNT}:saml-provider/okta"},
    {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"},
    {"AWS": [ALICE_ARN, ROOT_ARN], "Service": "logs.amazonaws.com"},
]


@pytest.mark.parametrize("principal", ACCEPTED_PRINCIPALS, ids=[json.dumps(p) for p in ACCEPTED_PRINCIPALS])
def test_accepted_principal_forms(principal: Any) -> None:
    policy = parse_key_policy(kstmt(Principal=principal))
    assert policy.statements[0].principal is not None


def test_accepted_document_shapes() -> None:
    single = parse_key_policy(json.dumps({"Statement": OK_KEY_STATEMENT}))
    assert len(single.statements) == 1 and single.version is None and not single.supports_variables
    old = parse_key_policy(json.dumps({"Version": "2008-10-17", "Id": "x", "Statement": [OK_KEY_STATEMENT]}))
    assert old.version == "2008-10-17" and old.id == "x" and not old.supports_variables
    new = parse_key_policy(kstmt(Sid="Allow use of the key (spaces are fine in key policies)"))
    assert new.supports_variables and new.kind is PolicyKind.KEY
    assert new.statements[0].sid == "Allow use of the key (spaces are fine in key policies)"
    assert new.statements[0].effect is Effect.ALLOW
    assert parse_key_policy(kstmt().encode()) == parse_key_policy(kstmt())
    escaped = parse_key_policy(kstmt(Sid="\\u4e2d"))  # JSON escapes may name any character
    assert escaped.statements[0].sid == "\\u4e2d"
    assert parse_key_policy(kstmt(Sid="\u00e9")).statements[0].sid == "\u00e9"
    assert parse_identity_policy(istmt(Sid="Abc123")).kind is PolicyKind.IDENTITY


def test_unicode_escape_allowed() -> None:
    text = kstmt().replace('"Allow"', '"\\u0041llow"')
    assert parse_key_policy(text).statements[0].effect is Effect.ALLOW


def test_statement_without_action_or_resource_is_accepted_but_inert() -> None:
    policy = parse_key_policy(
        json.dumps(
            {
                "Statement": [
                    {**OK_KEY_STATEMENT, "Sid": "s"},
                    {k: v for k, v in OK_KEY_STATEMENT.items() if k != "Action"},
                    {k: v for k, v in OK_KEY_STATEMENT.items() if k != "Resource"},
                ]
            }
        )
    )
    assert [s.inert for s in policy.statements] == [False, True, True]
    assert policy.warnings == (
        "Statement #2 has no Action or NotAction, so it has no effect.",
        "Statement #3 has no Resource or NotResource, so it has no effect.",
    )


def test_empty_sid_is_no_sid() -> None:
    policy = parse_key_policy(
        json.dumps({"Statement": [{**OK_KEY_STATEMENT, "Sid": ""}, {**OK_KEY_STATEMENT, "Sid": ""}]})
    )
    assert [s.sid for s in policy.statements] == [None, None]
    assert policy.statements[1].label == "#2"


def test_named_principals() -> None:
    text = json.dumps(
        {
            "Statement": [
                {
                    **OK_KEY_STATEMENT,
                    "Principal": {"AWS": [ACCOUNT, ALICE_ARN, "*"], "Service": "logs.amazonaws.com"},
                },
                {**OK_KEY_STATEMENT, "Principal": {"AWS": [ROOT_ARN, SESSION_ARN]}},
                {**OK_KEY_STATEMENT, "Effect": "Deny", "Principal": None, "NotPrincipal": {"AWS": ROLE_ARN}},
                {**OK_KEY_STATEMENT, "Principal": "*"},
            ]
        }
    ).replace(', "Principal": null', "")
    policy = parse_key_policy(text)
    assert policy.named_principals() == (ROOT_ARN, ALICE_ARN, SESSION_ARN, ROLE_ARN)
    assert policy.named_services() == ("logs.amazonaws.com",)
    assert parse_identity_policy(istmt()).named_principals() == ()


def test_condition_clauses_are_parsed() -> None:
    policy = parse_key_policy(
        cond(
            {
                "ForAnyValue:StringEqualsIfExists": {"kms:EncryptionContextKeys": ["a", 1, True]},
                "Null": {"kms:ViaService": False},
            }
        )
    )
    first, second = policy.statements[0].conditions
    assert first.operator.canonical == "ForAnyValue:StringEqualsIfExists"
    assert first.operator.if_exists and first.values == ("a", 1, True)
    assert second.operator.canonical == "Null" and second.key_lower == "kms:viaservice"


def test_null_and_for_any_value_on_multivalued_keys_are_fine() -> None:
    parse_key_policy(cond({"Null": {"kms:EncryptionContextKeys": "false"}}))
    parse_key_policy(cond({"ForAnyValue:StringEquals": {"kms:EncryptionContext:dept": "eng"}}))
    parse_key_policy(cond({"ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt"]}}))


def test_parser_accepts_memoryview_and_bytearray() -> None:
    assert parse_key_policy(bytearray(kstmt().encode())).statements
    assert parse_key_policy(memoryview(kstmt().encode())).statements  # type: ignore[arg-type]


def test_non_text_input_is_malformed() -> None:
    with pytest.raises(MalformedPolicyDocumentException):
        parse_key_policy(12)  # type: ignore[arg-type]
