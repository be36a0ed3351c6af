"""Every condition key the product populates (issue 3, spec §7.6), with realistic statements, plus the
derivation of the global keys by RequestContext.build."""

from __future__ import annotations

from typing import Any

import pytest

from policies.engine import Caller, PrincipalType, ReasonCode, RequestContext

from .helpers import (
    ACCOUNT,
    ALICE,
    ALICE_ARN,
    ALLOWED_IDP,
    ALLOWED_KP,
    BOB,
    CAROL,
    FEDERATED,
    KEY_ARN,
    NO_IDP,
    NO_KP,
    NOW,
    OTHER,
    ROLE_ARN,
    ROOT,
    ROOT_STATEMENT,
    SESSION,
    Case,
    allow,
    aws,
    check,
    context,
    ids,
)


def key(
    case_id: str,
    condition: dict[str, Any],
    expected: tuple[bool, ReasonCode],
    action: str = "kms:Encrypt",
    caller: Caller = ALICE,
    cv: dict[str, Any] | None = None,
    **request: Any,
) -> Case:
    """A key-policy Allow naming the caller, with one condition."""
    if cv is not None:
        request["condition_values"] = cv
    principal = aws(caller.arn) if caller is not ROOT else aws(ACCOUNT)
    return Case(
        case_id,
        expected,
        [allow(principal=principal, condition=condition)],
        caller=caller,
        action=action,
        context=request,
    )


def iam(
    case_id: str,
    condition: dict[str, Any],
    expected: tuple[bool, ReasonCode],
    action: str = "kms:Encrypt",
    caller: Caller = BOB,
    cv: dict[str, Any] | None = None,
    **request: Any,
) -> Case:
    """The account statement in the key policy; an identity-policy Allow with one condition."""
    if cv is not None:
        request["condition_values"] = cv
    return Case(
        case_id,
        expected,
        [ROOT_STATEMENT],
        {"p": [allow(action="kms:*", resource="*", condition=condition)]},
        caller=caller,
        action=action,
        context=request,
    )


SE = "StringEquals"
# fmt: off
KMS_KEYS = [
    key("EncryptionContext-match", {SE: {"kms:EncryptionContext:tenant": "42"}}, ALLOWED_KP,
        encryption_context={"tenant": "42"}),
    key("EncryptionContext-mismatch", {SE: {"kms:EncryptionContext:tenant": "42"}}, NO_KP,
        encryption_context={"tenant": "43"}),
    key("EncryptionContext-absent", {SE: {"kms:EncryptionContext:tenant": "42"}}, NO_KP),
    key("EncryptionContext-like", {"StringLike": {"kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::bucket/*"}},
        ALLOWED_KP, action="kms:Decrypt", encryption_context={"aws:s3:arn": "arn:aws:s3:::bucket/file"}),
    key("EncryptionContextKeys-require-key", {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "tenant"}},
        ALLOWED_KP, encryption_context={"tenant": "1", "x": "2"}),
    key("EncryptionContextKeys-only-listed", {"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": "tenant"}},
        NO_KP, encryption_context={"tenant": "1", "x": "2"}),
    key("EncryptionContextKeys-require-any", {"Null": {"kms:EncryptionContextKeys": "false"}}, NO_KP),
    key("CallerAccount-match", {SE: {"kms:CallerAccount": ACCOUNT}}, ALLOWED_KP),
    key("CallerAccount-mismatch", {SE: {"kms:CallerAccount": OTHER}}, NO_KP),
    key("ViaService-match", {SE: {"kms:ViaService": "ec2.us-east-1.amazonaws.com"}}, ALLOWED_KP,
        cv={"kms:ViaService": "ec2.us-east-1.amazonaws.com"}),
    key("ViaService-absent-for-direct-calls", {SE: {"kms:ViaService": "ec2.us-east-1.amazonaws.com"}}, NO_KP),
    key("GrantIsForAWSResource-true", {"Bool": {"kms:GrantIsForAWSResource": "true"}}, ALLOWED_KP,
        action="kms:CreateGrant", cv={"kms:GrantIsForAWSResource": True}),
    key("GrantIsForAWSResource-absent", {"Bool": {"kms:GrantIsForAWSResource": "true"}}, NO_KP,
        action="kms:CreateGrant"),
    key("GrantOperations-capped", {"ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt", "Encrypt"]}},
        ALLOWED_KP, action="kms:CreateGrant", cv={"kms:GrantOperations": ["Decrypt"]}),
    key("GrantOperations-exceeds-cap", {"ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt"]}}, NO_KP,
        action="kms:CreateGrant", cv={"kms:GrantOperations": ["Decrypt", "CreateGrant"]}),
    key("GranteePrincipal-match", {SE: {"kms:GranteePrincipal": ROLE_ARN}}, ALLOWED_KP, action="kms:CreateGrant",
        cv={"kms:GranteePrincipal": ROLE_ARN}),
    key("GranteePrincipal-mismatch", {SE: {"kms:GranteePrincipal": ROLE_ARN}}, NO_KP, action="kms:CreateGrant",
        cv={"kms:GranteePrincipal": ALICE_ARN}),
    key("RetiringPrincipal-match", {"ArnLike": {"kms:RetiringPrincipal": f"arn:aws:iam::{ACCOUNT}:role/*"}},
        ALLOWED_KP, action="kms:CreateGrant", cv={"kms:RetiringPrincipal": ROLE_ARN}),
    key("RetiringPrincipal-absent", {"ArnLike": {"kms:RetiringPrincipal": f"arn:aws:iam::{ACCOUNT}:role/*"}}, NO_KP,
        action="kms:CreateGrant"),
    key("GrantConstraintType-match", {SE: {"kms:GrantConstraintType": "EncryptionContextEquals"}}, ALLOWED_KP,
        action="kms:CreateGrant", cv={"kms:GrantConstraintType": "EncryptionContextEquals"}),
    key("GrantConstraintType-mismatch", {SE: {"kms:GrantConstraintType": "EncryptionContextEquals"}}, NO_KP,
        action="kms:CreateGrant", cv={"kms:GrantConstraintType": "EncryptionContextSubset"}),
    key("KeySpec-match", {SE: {"kms:KeySpec": "SYMMETRIC_DEFAULT"}}, ALLOWED_KP,
        cv={"kms:KeySpec": "SYMMETRIC_DEFAULT"}),
    key("KeySpec-mismatch", {SE: {"kms:KeySpec": "RSA_4096"}}, NO_KP, cv={"kms:KeySpec": "SYMMETRIC_DEFAULT"}),
    key("KeyUsage-match", {SE: {"kms:KeyUsage": "SIGN_VERIFY"}}, ALLOWED_KP, action="kms:Sign",
        cv={"kms:KeyUsage": "SIGN_VERIFY"}),
    key("KeyUsage-mismatch", {SE: {"kms:KeyUsage": "SIGN_VERIFY"}}, NO_KP, cv={"kms:KeyUsage": "ENCRYPT_DECRYPT"}),
    key("KeyOrigin-match", {SE: {"kms:KeyOrigin": "AWS_KMS"}}, ALLOWED_KP, action="kms:GenerateDataKey",
        cv={"kms:KeyOrigin": "AWS_KMS"}),
    key("KeyOrigin-mismatch", {SE: {"kms:KeyOrigin": "AWS_KMS"}}, NO_KP, action="kms:GenerateDataKey",
        cv={"kms:KeyOrigin": "EXTERNAL"}),
    key("EncryptionAlgorithm-match", {SE: {"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}}, ALLOWED_KP,
        cv={"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}),
    key("EncryptionAlgorithm-mismatch", {SE: {"kms:EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}}, NO_KP,
        cv={"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}),
    key("SigningAlgorithm-match", {"StringLike": {"kms:SigningAlgorithm": "ECDSA_*"}}, ALLOWED_KP,
        action="kms:Sign", cv={"kms:SigningAlgorithm": "ECDSA_SHA_256"}),
    key("SigningAlgorithm-mismatch", {"StringLike": {"kms:SigningAlgorithm": "ECDSA_*"}}, NO_KP, action="kms:Sign",
        cv={"kms:SigningAlgorithm": "RSASSA_PSS_SHA_256"}),
    key("MacAlgorithm-match", {SE: {"kms:MacAlgorithm": "HMAC_SHA_512"}}, ALLOWED_KP, action="kms:GenerateMac",
        cv={"kms:MacAlgorithm": "HMAC_SHA_512"}),
    key("MacAlgorithm-mismatch", {SE: {"kms:MacAlgorithm": "HMAC_SHA_512"}}, NO_KP, action="kms:GenerateMac",
        cv={"kms:MacAlgorithm": "HMAC_SHA_256"}),
    key("RequestAlias-match", {SE: {"kms:RequestAlias": "alias/app"}}, ALLOWED_KP,
        cv={"kms:RequestAlias": "alias/app"}),
    key("RequestAlias-absent-when-arn-used", {SE: {"kms:RequestAlias": "alias/app"}}, NO_KP),
    iam("ResourceAliases-identity-policy", {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/app"}},
        ALLOWED_IDP, cv={"kms:ResourceAliases": ["alias/app", "alias/other"]}),
    iam("ResourceAliases-identity-policy-miss", {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/app"}},
        NO_IDP, cv={"kms:ResourceAliases": ["alias/other"]}),
    key("ResourceAliases-ignored-in-key-policy", {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/app"}},
        NO_KP, cv={"kms:ResourceAliases": ["alias/app"]}),
    key("BypassPolicyLockoutSafetyCheck-null", {"Null": {"kms:BypassPolicyLockoutSafetyCheck": "true"}}, ALLOWED_KP,
        action="kms:PutKeyPolicy"),
    key("BypassPolicyLockoutSafetyCheck-set", {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "false"}}, NO_KP,
        action="kms:PutKeyPolicy", cv={"kms:BypassPolicyLockoutSafetyCheck": True}),
    key("PendingWindow-at-least-14",
        {"NumericGreaterThanEquals": {"kms:ScheduleKeyDeletionPendingWindowInDays": 14}}, ALLOWED_KP,
        action="kms:ScheduleKeyDeletion", cv={"kms:ScheduleKeyDeletionPendingWindowInDays": 30}),
    key("PendingWindow-too-short", {"NumericGreaterThanEquals": {"kms:ScheduleKeyDeletionPendingWindowInDays": 14}},
        NO_KP, action="kms:ScheduleKeyDeletion", cv={"kms:ScheduleKeyDeletionPendingWindowInDays": 7}),
    key("RotationPeriod-at-most-180", {"NumericLessThanEquals": {"kms:RotationPeriodInDays": 180}}, ALLOWED_KP,
        action="kms:EnableKeyRotation", cv={"kms:RotationPeriodInDays": 90}),
    key("RotationPeriod-too-long", {"NumericLessThanEquals": {"kms:RotationPeriodInDays": 180}}, NO_KP,
        action="kms:EnableKeyRotation", cv={"kms:RotationPeriodInDays": 365}),
    key("ReEncryptOnSameKey-true", {"Bool": {"kms:ReEncryptOnSameKey": "true"}}, ALLOWED_KP,
        action="kms:ReEncryptFrom", cv={"kms:ReEncryptOnSameKey": True}),
    key("ReEncryptOnSameKey-false", {"Bool": {"kms:ReEncryptOnSameKey": "true"}}, NO_KP, action="kms:ReEncryptTo",
        cv={"kms:ReEncryptOnSameKey": False}),
    key("PolicyName-default", {SE: {"kms:PolicyName": "default"}}, ALLOWED_KP, action="kms:GetKeyPolicy",
        cv={"kms:PolicyName": "default"}),
    key("PolicyName-other", {SE: {"kms:PolicyName": "default"}}, NO_KP, action="kms:GetKeyPolicy",
        cv={"kms:PolicyName": "AWS_RAM"}),
]
# fmt: on

# fmt: off
GLOBAL_KEYS = [
    key("PrincipalArn-user", {"ArnEquals": {"aws:PrincipalArn": ALICE_ARN}}, ALLOWED_KP),
    key("PrincipalArn-session-is-role", {"ArnEquals": {"aws:PrincipalArn": ROLE_ARN}}, ALLOWED_KP, caller=SESSION),
    key("PrincipalArn-root", {"ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:root"}}, ALLOWED_KP,
        caller=ROOT),
    key("PrincipalAccount-match", {SE: {"aws:PrincipalAccount": ACCOUNT}}, ALLOWED_KP),
    iam("PrincipalAccount-mismatch", {SE: {"aws:PrincipalAccount": OTHER}}, NO_IDP),
    key("PrincipalType-user", {SE: {"aws:PrincipalType": "User"}}, ALLOWED_KP),
    key("PrincipalType-session", {SE: {"aws:PrincipalType": "AssumedRole"}}, ALLOWED_KP, caller=SESSION),
    key("PrincipalType-root", {SE: {"aws:PrincipalType": "Account"}}, ALLOWED_KP, caller=ROOT),
    key("PrincipalType-federated", {SE: {"aws:PrincipalType": "FederatedUser"}}, ALLOWED_KP, caller=FEDERATED),
    key("username-user", {SE: {"aws:username": "alice"}}, ALLOWED_KP),
    key("username-absent-for-sessions", {"Null": {"aws:username": "true"}}, ALLOWED_KP, caller=SESSION),
    key("userid-user", {SE: {"aws:userid": "AIDAALICE"}}, ALLOWED_KP),
    key("userid-session", {"StringLike": {"aws:userid": "AROAAPP:*"}}, ALLOWED_KP, caller=SESSION),
    key("userid-root-is-account", {SE: {"aws:userid": ACCOUNT}}, ALLOWED_KP, caller=ROOT),
    key("PrincipalTag-match", {SE: {"aws:PrincipalTag/team": "blue"}}, ALLOWED_KP),
    key("PrincipalTag-key-case-insensitive", {SE: {"aws:PrincipalTag/ENV": "prod"}}, ALLOWED_KP),
    iam("PrincipalTag-mismatch", {SE: {"aws:PrincipalTag/team": "blue"}}, NO_IDP),
    key("PrincipalTag-session", {SE: {"aws:PrincipalTag/team": "blue"}}, ALLOWED_KP, caller=SESSION),
    key("ResourceTag-match", {SE: {"aws:ResourceTag/env": "prod"}}, ALLOWED_KP, resource_tags={"env": "prod"}),
    key("ResourceTag-mismatch", {SE: {"aws:ResourceTag/env": "prod"}}, NO_KP, resource_tags={"env": "dev"}),
    iam("ResourceTag-abac-match", {SE: {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}}, ALLOWED_IDP,
        resource_tags={"team": "red"}),
    key("RequestTag-match", {SE: {"aws:RequestTag/owner": "alice"}}, ALLOWED_KP, action="kms:TagResource",
        request_tags={"owner": "alice"}),
    key("RequestTag-mismatch", {SE: {"aws:RequestTag/owner": "alice"}}, NO_KP, action="kms:TagResource",
        request_tags={"owner": "bob"}),
    key("TagKeys-from-request-tags", {"ForAllValues:StringEquals": {"aws:TagKeys": ["owner", "env"]}}, ALLOWED_KP,
        action="kms:TagResource", request_tags={"owner": "alice"}),
    key("TagKeys-explicit", {"ForAnyValue:StringEquals": {"aws:TagKeys": "secret"}}, ALLOWED_KP,
        action="kms:UntagResource", tag_keys=["secret", "x"]),
    key("SourceIp-match", {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, ALLOWED_KP),
    key("SourceIp-mismatch", {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, NO_KP, source_ip="172.16.0.1"),
    key("CurrentTime-window",
        {"DateGreaterThan": {"aws:CurrentTime": "2025-01-01T00:00:00Z"},
         "DateLessThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}},
        ALLOWED_KP),
    key("CurrentTime-expired", {"DateLessThan": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}}, NO_KP),
    key("EpochTime-numeric", {"NumericLessThan": {"aws:EpochTime": int(NOW.timestamp()) + 1}}, ALLOWED_KP),
    key("EpochTime-numeric-past", {"NumericLessThan": {"aws:EpochTime": int(NOW.timestamp())}}, NO_KP),
    key("SecureTransport-true", {"Bool": {"aws:SecureTransport": "true"}}, ALLOWED_KP),
    key("SecureTransport-false", {"Bool": {"aws:SecureTransport": "true"}}, NO_KP, secure_transport=False),
]
# fmt: on

ALL = KMS_KEYS + GLOBAL_KEYS


@pytest.mark.parametrize("case", ALL, ids=ids(ALL))
def test_context_key(case: Case) -> None:
    check(case)


def test_build_derives_global_keys() -> None:
    request = context(ALICE, encryption_context={"Dept": "eng"}, resource_tags={"env": "prod"})
    values = request.values
    assert values["aws:principalarn"] == ALICE_ARN
    assert values["aws:principalaccount"] == ACCOUNT
    assert values["aws:principaltype"] == "User"
    assert values["aws:username"] == "alice"
    assert values["aws:userid"] == "AIDAALICE"
    assert values["aws:principaltag/team"] == "blue"
    assert values["aws:resourcetag/env"] == "prod"
    assert values["aws:sourceip"] == "10.1.2.3"
    assert values["aws:securetransport"] is True
    assert values["aws:currenttime"] == NOW
    assert values["aws:epochtime"] == int(NOW.timestamp())
    assert values["kms:calleraccount"] == ACCOUNT
    assert values["kms:encryptioncontext:dept"] == "eng"
    assert values["kms:encryptioncontextkeys"] == ("Dept",)
    assert request.resource_account == ACCOUNT
    assert request.same_account


def test_build_account_level_request() -> None:
    request = RequestContext.build(caller=CAROL, action="kms:GenerateRandom")
    assert request.resource == "*"
    assert request.resource_account is None
    assert "kms:calleraccount" not in request.values
    assert request.values["aws:currenttime"].tzinfo is not None
    assert request.is_account_level


def test_build_never_lets_callers_override_principal_keys() -> None:
    request = context(
        ALICE,
        condition_values={
            "aws:PrincipalArn": ROLE_ARN,
            "aws:username": "root",
            "aws:PrincipalTag/team": "admins",
        },
    )
    assert request.values["aws:principalarn"] == ALICE_ARN
    assert request.values["aws:username"] == "alice"
    assert request.values["aws:principaltag/team"] == "blue"


def test_case_colliding_context_keys_merge() -> None:
    request = context(ALICE, encryption_context={"Dept": "a", "dept": "b"})
    assert request.values["kms:encryptioncontext:dept"] == ("a", "b")


def test_root_and_session_keys() -> None:
    root = context(ROOT).values
    assert root["aws:principaltype"] == PrincipalType.ROOT.value == "Account"
    assert "aws:username" not in root
    session = context(SESSION).values
    assert session["aws:principalarn"] == ROLE_ARN
    assert session["aws:userid"] == "AROAAPP:job-1"


def test_service_caller_keys() -> None:
    request = context(Caller.service("logs.amazonaws.com"))
    assert request.values["aws:principalservicename"] == "logs.amazonaws.com"
    assert "aws:principalarn" not in request.values


def test_naive_now_is_utc() -> None:
    request = context(ALICE, now=NOW.replace(tzinfo=None))
    assert request.values["aws:epochtime"] == int(NOW.timestamp())


def test_with_action_keeps_everything_else() -> None:
    request = context(ALICE, encryption_context={"a": "b"})
    other = request.with_action("kms:Decrypt")
    assert other.action == "kms:Decrypt" and other.action_lower == "kms:decrypt"
    assert other.values == request.values and other.encryption_context == {"a": "b"}
    assert other.resource == KEY_ARN
