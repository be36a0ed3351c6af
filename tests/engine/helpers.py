"""Shared builders for the engine tests: accounts, callers, policies, request contexts and table cases.

Everything here is pure: the engine tests never need Django or a database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from policies.engine import (
    Caller,
    CompiledPolicy,
    Decision,
    Grant,
    GrantIndex,
    IdentityPolicy,
    ReasonCode,
    RequestContext,
    compile_policy,
    evaluate,
    parse_identity_policy,
    parse_key_policy,
)

ACCOUNT = "111122223333"
OTHER = "444455556666"
REGION = "us-east-1"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
OTHER_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0987dcba-09ba-87dc-65fe-ba0987654321"
ALIAS_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/app"
NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)

ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"
OTHER_ROOT_ARN = f"arn:aws:iam::{OTHER}:root"
ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB_ARN = f"arn:aws:iam::{ACCOUNT}:user/bob"
CAROL_ARN = f"arn:aws:iam::{OTHER}:user/carol"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/app"
SESSION_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/app/job-1"
FEDERATED_ARN = f"arn:aws:sts::{ACCOUNT}:federated-user/dana"

ALICE = Caller.user(ALICE_ARN, userid="AIDAALICE", tags={"team": "blue", "Env": "prod"})
BOB = Caller.user(BOB_ARN, userid="AIDABOB", tags={"team": "red"})
CAROL = Caller.user(CAROL_ARN, userid="AIDACAROL")
SESSION = Caller.assumed_role(SESSION_ARN, role_arn=ROLE_ARN, userid="AROAAPP:job-1", tags={"team": "blue"})
FEDERATED = Caller.federated_user(FEDERATED_ARN)
ROOT = Caller.root(ACCOUNT)
OTHER_ROOT = Caller.root(OTHER)
LOGS = Caller.service("logs.us-east-1.amazonaws.com")

ALLOWED_KP = (True, ReasonCode.ALLOWED_BY_KEY_POLICY)
ALLOWED_IDP = (True, ReasonCode.ALLOWED_BY_IDENTITY_POLICY)
ALLOWED_XA = (True, ReasonCode.ALLOWED_CROSS_ACCOUNT)
ALLOWED_GRANT = (True, ReasonCode.ALLOWED_BY_GRANT)
ALLOWED_ROOT = (True, ReasonCode.ALLOWED_AS_ROOT)
DENY_KP = (False, ReasonCode.EXPLICIT_DENY_KEY_POLICY)
DENY_IDP = (False, ReasonCode.EXPLICIT_DENY_IDENTITY_POLICY)
NOT_DELEGATED = (False, ReasonCode.IAM_NOT_DELEGATED)
NO_KP = (False, ReasonCode.NO_KEY_POLICY_ALLOWS)
NO_IDP = (False, ReasonCode.NO_IDENTITY_POLICY_ALLOWS)
PENDING = (False, ReasonCode.GRANT_NOT_YET_EFFECTIVE)
UNMET = (False, ReasonCode.GRANT_CONSTRAINTS_NOT_MET)

Statement = dict[str, Any]


def statement(
    effect: str,
    *,
    principal: Any = None,
    not_principal: Any = None,
    action: Any = "kms:*",
    not_action: Any = None,
    resource: Any = "*",
    not_resource: Any = None,
    condition: Mapping[str, Any] | None = None,
    sid: str | None = None,
) -> Statement:
    """A statement dict; pass ``action=None``/``resource=None`` to leave them out."""
    result: Statement = {"Effect": effect}
    if sid is not None:
        result["Sid"] = sid
    if principal is not None:
        result["Principal"] = principal
    if not_principal is not None:
        result["NotPrincipal"] = not_principal
    if not_action is not None:
        result["NotAction"] = not_action
    elif action is not None:
        result["Action"] = action
    if not_resource is not None:
        result["NotResource"] = not_resource
    elif resource is not None:
        result["Resource"] = resource
    if condition is not None:
        result["Condition"] = dict(condition)
    return result


def allow(**kwargs: Any) -> Statement:
    return statement("Allow", **kwargs)


def deny(**kwargs: Any) -> Statement:
    return statement("Deny", **kwargs)


def aws(*arns: str) -> dict[str, Any]:
    return {"AWS": list(arns) if len(arns) > 1 else arns[0]}


ROOT_STATEMENT = allow(principal=aws(ROOT_ARN), sid="Enable IAM User Permissions")


def document(*statements: Statement, version: str | None = "2012-10-17") -> str:
    body: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        body = {"Version": version, **body}
    return json.dumps(body)


def key_policy(*statements: Statement, version: str | None = "2012-10-17") -> CompiledPolicy:
    return compile_policy(parse_key_policy(document(*statements, version=version)))


def identity_policy(*statements: Statement, version: str | None = "2012-10-17") -> CompiledPolicy:
    return compile_policy(parse_identity_policy(document(*statements, version=version)))


def context(
    caller: Caller = ALICE,
    action: str = "kms:Encrypt",
    resource: str = KEY_ARN,
    **kwargs: Any,
) -> RequestContext:
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("source_ip", "10.1.2.3")
    kwargs.setdefault("secure_transport", True)
    return RequestContext.build(caller=caller, action=action, resource=resource, **kwargs)


@dataclass
class Case:
    """One table row: a request against policies and grants, and the expected (allowed, reason)."""

    id: str
    expected: tuple[bool, ReasonCode]
    key_statements: Sequence[Statement] | None = (ROOT_STATEMENT,)
    identity: Mapping[str, Sequence[Statement]] = field(default_factory=dict)
    caller: Caller = ALICE
    action: str = "kms:Encrypt"
    resource: str = KEY_ARN
    context: Mapping[str, Any] = field(default_factory=dict)
    grants: Sequence[Grant] = ()
    token_grant_ids: frozenset[str] = frozenset()
    version: str | None = "2012-10-17"

    def run(self) -> Decision:
        kp = None if self.key_statements is None else key_policy(*self.key_statements, version=self.version)
        policies = [
            IdentityPolicy(name, identity_policy(*statements, version=self.version))
            for name, statements in self.identity.items()
        ]
        request = context(self.caller, self.action, self.resource, **self.context)
        return evaluate(
            request,
            key_policy=kp,
            identity_policies=policies,
            grants=GrantIndex(self.grants) if self.grants else (),
            token_grant_ids=self.token_grant_ids,
        )


def check(case: Case) -> Decision:
    """Run a case and assert both the decision and the reason."""
    decision = case.run()
    assert (decision.allowed, decision.reason) == case.expected, decision.explanation()
    return decision


def ids(cases: Sequence[Case]) -> list[str]:
    return [case.id for case in cases]
