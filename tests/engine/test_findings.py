"""Policy findings (policies.engine.findings): table cases on purpose-built key and identity policies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from keys.default_policies import console_key_policy, default_key_policy
from policies.engine import (
    Finding,
    Severity,
    compile_key_policy,
    identity_policy_findings,
    key_policy_findings,
    parse_identity_policy,
    parse_key_policy,
)

from .helpers import (
    ACCOUNT,
    ALICE_ARN,
    BOB_ARN,
    CAROL_ARN,
    KEY_ARN,
    OTHER_KEY_ARN,
    OTHER_ROOT_ARN,
    ROLE_ARN,
    ROOT_ARN,
    ROOT_STATEMENT,
    SESSION_ARN,
    Statement,
    allow,
    aws,
    deny,
    document,
)

ADMIN = ["kms:Create*", "kms:Describe*", "kms:Put*", "kms:Get*", "kms:Revoke*", "kms:Disable*"]
USE = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]


@dataclass
class Case:
    """A key policy and the findings expected: {finding id: principals it names}."""

    id: str
    statements: Sequence[Statement]
    expected: Mapping[str, Sequence[str]]
    key_spec: str = "SYMMETRIC_DEFAULT"
    key_usage: str = "ENCRYPT_DECRYPT"
    key_arn: str | None = None
    absent: Sequence[str] = field(default_factory=tuple)


CASES = [
    Case("root only: nothing to say", [ROOT_STATEMENT], {}),
    # -- access for everyone or another account ------------------------------------------------------------------
    Case(
        "Principal * without a condition",
        [ROOT_STATEMENT, allow(principal="*", action="kms:Decrypt", sid="Open")],
        {"public-access": ["*"]},
    ),
    Case(
        'Principal {"AWS": "*"} is everyone too',
        [ROOT_STATEMENT, allow(principal=aws("*"), action="kms:Encrypt")],
        {"public-access": ["*"]},
    ),
    Case(
        "Principal * narrowed by kms:CallerAccount",
        [
            ROOT_STATEMENT,
            allow(
                principal="*",
                action="kms:Decrypt",
                condition={"StringEquals": {"kms:CallerAccount": ACCOUNT}},
            ),
        ],
        {},
    ),
    Case(
        "Principal * narrowed by kms:ViaService (StringLike)",
        [
            ROOT_STATEMENT,
            allow(
                principal="*",
                action="kms:Decrypt",
                condition={"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}},
            ),
        ],
        {},
    ),
    Case(
        "a negated condition does not narrow",
        [
            ROOT_STATEMENT,
            allow(
                principal="*",
                action="kms:Decrypt",
                condition={"StringNotEquals": {"aws:PrincipalAccount": OTHER_ROOT_ARN[13:25]}},
            ),
        ],
        {"public-access": ["*"]},
    ),
    Case(
        "an unrelated condition does not narrow",
        [
            ROOT_STATEMENT,
            allow(
                principal="*",
                action="kms:Decrypt",
                condition={"StringEquals": {"kms:EncryptionContext:app": "web"}},
            ),
        ],
        {"public-access": ["*"]},
    ),
    Case(
        "NotPrincipal Allow reaches everyone not listed",
        [ROOT_STATEMENT, allow(not_principal=aws(BOB_ARN), action="kms:Decrypt")],
        {"public-access": ["*"]},
    ),
    Case(
        "a Deny for everyone is not access",
        [ROOT_STATEMENT, deny(principal="*", action="kms:ScheduleKeyDeletion")],
        {},
    ),
    Case(
        "another account's root",
        [ROOT_STATEMENT, allow(principal=aws(OTHER_ROOT_ARN), action=["kms:Decrypt"], sid="Partner")],
        {"cross-account-access": [OTHER_ROOT_ARN]},
    ),
    Case(
        "another account's user, with one of ours",
        [ROOT_STATEMENT, allow(principal=aws(ALICE_ARN, CAROL_ARN), action=USE)],
        {"cross-account-access": [CAROL_ARN]},
    ),
    Case(
        "another account narrowed by kms:ViaService",
        [
            ROOT_STATEMENT,
            allow(
                principal=aws(OTHER_ROOT_ARN),
                action="kms:Decrypt",
                condition={"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
            ),
        ],
        {},
    ),
    # -- the account root ----------------------------------------------------------------------------------------
    Case(
        "no statement for the root",
        [allow(principal=aws(ALICE_ARN), action="kms:*")],
        {"no-root-access": [ROOT_ARN], "full-access-to-non-root": [ALICE_ARN]},
    ),
    Case(
        "root named, but without kms:PutKeyPolicy",
        [
            allow(principal=aws(ROOT_ARN), action=["kms:Describe*", "kms:Encrypt"]),
            allow(principal=aws(ALICE_ARN)),
        ],
        {"no-root-access": [ROOT_ARN], "full-access-to-non-root": [ALICE_ARN]},
    ),
    Case(
        "root allowed by a 12-digit account id",
        [allow(principal=aws(ACCOUNT), action="kms:*")],
        {},
    ),
    Case(
        "root allowed, then denied kms:PutKeyPolicy",
        [ROOT_STATEMENT, deny(principal=aws(ROOT_ARN), action="kms:PutKeyPolicy")],
        {"no-root-access": [ROOT_ARN]},
    ),
    Case(
        "root allowed through NotAction that keeps kms:PutKeyPolicy",
        [allow(principal=aws(ROOT_ARN), not_action="kms:ScheduleKeyDeletion")],
        {},
    ),
    Case(
        "a conditional Deny on the root does not count as a lockout",
        [
            ROOT_STATEMENT,
            deny(
                principal=aws(ROOT_ARN),
                action="kms:PutKeyPolicy",
                condition={"Bool": {"aws:SecureTransport": "false"}},
            ),
        ],
        {},
    ),
    # -- administrators who can give themselves use ------------------------------------------------------------
    Case(
        "administrators with kms:Create* and kms:Put* but no use",
        [ROOT_STATEMENT, allow(principal=aws(ALICE_ARN, ROLE_ARN), action=ADMIN, sid="Admins")],
        {"admins-can-self-grant": [ALICE_ARN, ROLE_ARN]},
    ),
    Case(
        "an administrator who is also a key user has nothing to gain",
        [
            ROOT_STATEMENT,
            allow(principal=aws(ALICE_ARN, BOB_ARN), action=ADMIN, sid="Admins"),
            allow(principal=aws(ALICE_ARN), action=USE, sid="Users"),
        ],
        {"admins-can-self-grant": [BOB_ARN]},
    ),
    Case(
        "only kms:CreateGrant, spelled with a wildcard",
        [ROOT_STATEMENT, allow(principal=aws(SESSION_ARN), action="kms:Cr*Grant")],
        {"admins-can-self-grant": [SESSION_ARN]},
    ),
    Case(
        "kms:CreateGrant only for AWS resources is not a self-grant",
        [
            ROOT_STATEMENT,
            allow(
                principal=aws(ALICE_ARN),
                action="kms:CreateGrant",
                condition={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
        ],
        {},
    ),
    Case(
        "NotAction that leaves out the use actions",
        [ROOT_STATEMENT, allow(principal=aws(ALICE_ARN), not_action=["kms:Encrypt", "kms:Decrypt"])],
        {"admins-can-self-grant": [ALICE_ARN], "admins-can-delete": [ALICE_ARN]},
    ),
    Case(
        "an explicit Deny of kms:CreateGrant and kms:PutKeyPolicy removes the power",
        [
            ROOT_STATEMENT,
            allow(principal=aws(ALICE_ARN), action=ADMIN),
            deny(principal=aws(ALICE_ARN), action=["kms:CreateGrant", "kms:PutKeyPolicy"]),
        ],
        {},
    ),
    Case(
        "signing key: use means kms:Sign and kms:Verify",
        [
            ROOT_STATEMENT,
            allow(principal=aws(ALICE_ARN), action=["kms:CreateGrant", "kms:Encrypt", "kms:Decrypt"]),
        ],
        {"admins-can-self-grant": [ALICE_ARN]},
        key_spec="ECC_NIST_P256",
        key_usage="SIGN_VERIFY",
    ),
    Case(
        "a statement on another key does not count",
        [ROOT_STATEMENT, allow(principal=aws(ALICE_ARN), action=ADMIN, resource=OTHER_KEY_ARN)],
        {},
        key_arn=KEY_ARN,
    ),
    # -- deletion and kms:* ----------------------------------------------------------------------------------------
    Case(
        "administrators allowed to delete",
        [
            ROOT_STATEMENT,
            allow(principal=aws(BOB_ARN), action=["kms:Describe*", "kms:ScheduleKeyDeletion"], sid="Del"),
        ],
        {"admins-can-delete": [BOB_ARN]},
    ),
    Case(
        "kms:* for a role",
        [ROOT_STATEMENT, allow(principal=aws(ROLE_ARN), action="kms:*", sid="Ops")],
        {"full-access-to-non-root": [ROLE_ARN]},
        absent=["admins-can-self-grant"],
    ),
    Case(
        'Action "*" counts as kms:*',
        [ROOT_STATEMENT, allow(principal=aws(BOB_ARN), action="*")],
        {"full-access-to-non-root": [BOB_ARN]},
    ),
    Case(
        "kms:* for the root and a user in one statement names only the user",
        [allow(principal=aws(ROOT_ARN, ALICE_ARN), action="kms:*")],
        {"full-access-to-non-root": [ALICE_ARN]},
    ),
    # -- statements that never apply --------------------------------------------------------------------------------
    Case(
        "a statement without Resource",
        [ROOT_STATEMENT, allow(principal=aws(ALICE_ARN), action="kms:Encrypt", resource=None, sid="NoRes")],
        {"statement-without-effect": []},
    ),
]


def findings_of(case: Case) -> tuple[Finding, ...]:
    return key_policy_findings(
        parse_key_policy(document(*case.statements)),
        account_id=ACCOUNT,
        key_spec=case.key_spec,
        key_usage=case.key_usage,
        key_arn=case.key_arn,
    )


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_key_policy_findings(case: Case) -> None:
    found = findings_of(case)
    by_id: dict[str, list[str]] = {}
    for finding in found:
        by_id.setdefault(finding.id, []).extend(finding.principals)
    assert by_id == {name: list(principals) for name, principals in case.expected.items()}
    assert not set(case.absent) & set(by_id)


def test_each_finding_says_where_and_what_to_do() -> None:
    for case in CASES:
        for finding in findings_of(case):
            assert finding.severity in (Severity.HIGH, Severity.MEDIUM, Severity.LOW)
            assert finding.title and finding.fix
            if finding.statement_index is not None:
                statement = case.statements[finding.statement_index]
                where = f"'{statement['Sid']}'" if "Sid" in statement else f"#{finding.statement_index + 1}"
                assert f"statement {where}" in finding.detail
            for principal in finding.principals:
                assert principal in finding.detail


def test_console_default_policy_warns_that_administrators_can_grant_themselves_use() -> None:
    admins = [ALICE_ARN, ROLE_ARN]
    policy = console_key_policy(
        account_id=ACCOUNT,
        key_spec="SYMMETRIC_DEFAULT",
        key_usage="ENCRYPT_DECRYPT",
        administrators=admins,
        users=[BOB_ARN],
    )
    found = {
        finding.id: finding for finding in key_policy_findings(compile_key_policy(policy), account_id=ACCOUNT)
    }
    assert set(found) == {"admins-can-self-grant", "admins-can-delete"}
    grant = found["admins-can-self-grant"]
    assert grant.title == "Key administrators can grant themselves use of this key"
    assert grant.sid == "Allow access for Key Administrators"
    assert grant.principals == tuple(admins)
    assert "kms:CreateGrant" in grant.detail and "kms:Encrypt" in grant.detail
    assert grant.to_dict()["severity"] == "medium"
    # The fix is given where the finding is shown (the key policy editor), which has no "untick" box.
    delete = found["admins-can-delete"]
    assert "untick" not in delete.fix and "Allow key administrators to delete" not in delete.fix
    assert "Remove kms:ScheduleKeyDeletion from this statement's Action list" in delete.fix


def test_console_default_policy_without_deletion_for_administrators() -> None:
    policy = console_key_policy(
        account_id=ACCOUNT,
        key_spec="HMAC_256",
        key_usage="GENERATE_VERIFY_MAC",
        administrators=[ALICE_ARN],
        users=[BOB_ARN],
        allow_administrators_to_delete=False,
    )
    found = key_policy_findings(
        parse_key_policy(policy), account_id=ACCOUNT, key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC"
    )
    assert [finding.id for finding in found] == ["admins-can-self-grant"]
    assert "kms:GenerateMac" in found[0].detail


def test_the_default_key_policy_has_no_findings() -> None:
    assert key_policy_findings(parse_key_policy(default_key_policy(ACCOUNT)), account_id=ACCOUNT) == ()


def test_findings_are_ordered_by_severity() -> None:
    statements = [
        allow(principal=aws(BOB_ARN), action=["kms:ScheduleKeyDeletion"]),
        allow(principal="*", action="kms:Encrypt"),
    ]
    found = key_policy_findings(parse_key_policy(document(*statements)), account_id=ACCOUNT)
    severities = [finding.severity for finding in found]
    assert severities == sorted(severities, key=[Severity.HIGH, Severity.MEDIUM, Severity.LOW].index)
    assert severities[0] is Severity.HIGH


def test_key_policy_findings_refuse_an_identity_policy() -> None:
    with pytest.raises(TypeError):
        key_policy_findings(parse_identity_policy(document(allow(action="kms:*"))), account_id=ACCOUNT)


IDENTITY_CASES: list[tuple[str, list[dict[str, Any]], list[str]]] = [
    ("kms:* on *", [allow(action="kms:*", sid="All")], ["identity-full-kms-access"]),
    ("* on *", [allow(action="*")], ["identity-full-kms-access"]),
    ("NotAction iam:* on *", [allow(not_action="iam:*")], ["identity-full-kms-access"]),
    ("kms:* on one key", [allow(action="kms:*", resource=KEY_ARN)], []),
    ("a few actions on *", [allow(action=["kms:Encrypt", "kms:Decrypt"])], []),
    (
        "kms:* on * with a condition",
        [allow(action="kms:*", condition={"StringEquals": {"aws:ResourceTag/team": "blue"}})],
        [],
    ),
    ("a Deny of kms:*", [deny(action="kms:*")], []),
]


@pytest.mark.parametrize(
    ("name", "statements", "expected"), IDENTITY_CASES, ids=[c[0] for c in IDENTITY_CASES]
)
def test_identity_policy_findings(name: str, statements: list[dict[str, Any]], expected: list[str]) -> None:
    found = identity_policy_findings(parse_identity_policy(document(*statements)))
    assert [finding.id for finding in found] == expected


def test_identity_policy_findings_refuse_a_key_policy() -> None:
    with pytest.raises(TypeError):
        identity_policy_findings(parse_key_policy(document(ROOT_STATEMENT)))
