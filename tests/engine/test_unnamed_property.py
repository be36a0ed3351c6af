"""`identity_may_allow_under` against `evaluate` (pure): it decides parts of the engine's decision on its own
(explicit deny, the root's implicit allow, service principals, same account), so it is checked against the
engine itself. For each policy of a table, every concrete alias ARN built from the statements' patterns (each
``*`` and ``?`` filled, variables resolved for the caller) and a few plain names are decided by the engine: when
any of them is allowed, the question asked before a name is typed must answer True (a form hidden while some
name would be allowed is the failure this guards against)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from policies.engine import (
    Caller,
    RequestContext,
    compile_identity_policy,
    identity_may_allow_under,
    would_allow,
)
from policies.engine.evaluate import IdentityPolicy
from tests.engine.helpers import ACCOUNT, ALICE_ARN

PREFIX = f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/"
NAME_CHARACTERS = "a-zA-Z0-9/_-"
ALICE = Caller.user(ALICE_ARN)
PLAIN_NAMES = ("x", "app", "app-x", "alice", "alice-x", "team/x")
HERE = {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}  # the request's own address
AWAY = {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
APP = f"{PREFIX}app-*"


def statement(
    effect: str, *, resource: Any = None, not_resource: Any = None, **condition: Any
) -> dict[str, Any]:
    found: dict[str, Any] = {"Effect": effect, "Action": "kms:CreateAlias"}
    if not_resource is not None:
        found["NotResource"] = not_resource
    else:
        found["Resource"] = resource if resource is not None else "*"
    if condition:
        found["Condition"] = condition
    return found


POLICIES: list[list[dict[str, Any]]] = [
    [statement("Allow")],
    [statement("Allow", resource=APP)],
    [statement("Allow", resource=f"arn:aws:kms:*:{ACCOUNT}:alias/a?p-*")],
    [statement("Allow", not_resource=APP)],
    [statement("Allow", not_resource="*")],
    [statement("Allow", not_resource=f"arn:aws:kms:*:{ACCOUNT}:key/*")],
    [statement("Allow"), statement("Deny")],
    [statement("Allow"), statement("Deny", resource=APP)],
    [statement("Allow"), statement("Deny", not_resource=APP)],
    [statement("Allow"), statement("Deny", resource=f"arn:aws:kms:*:{ACCOUNT}:alias/*")],
    [statement("Allow"), statement("Deny", **AWAY)],
    [statement("Allow"), statement("Deny", **HERE)],
    [statement("Allow", **HERE)],
    [statement("Allow", **AWAY)],
    [statement("Allow", resource=f"{PREFIX}${{aws:username}}-*")],
    [statement("Allow", resource=f"{PREFIX}${{aws:username}}")],
    [statement("Allow", resource=f"{PREFIX}${{aws:PrincipalTag/team, 'none'}}")],
    [statement("Allow", resource="arn:aws:kms:us-east-1:999999999999:alias/*")],
    [statement("Allow", resource=f"arn:aws:kms:*:{ACCOUNT}:key/*")],
    [],
]
CALLERS = {
    "alice": ALICE,
    "root": Caller.root(ACCOUNT),
    "service": Caller.service("logs.us-east-1.amazonaws.com", account_id=ACCOUNT),
}


def identity_policies(policy: list[dict[str, Any]]) -> list[IdentityPolicy]:
    if not policy:
        return []
    document = json.dumps({"Version": "2012-10-17", "Statement": policy})
    return [IdentityPolicy("p", compile_identity_policy(document))]


def witness_names(policy: list[dict[str, Any]]) -> set[str]:
    """Alias names built from the statements' patterns: the part after "alias/", wildcards filled, the caller's
    user name for ${aws:username}, a variable's default for the rest."""
    names = set(PLAIN_NAMES)
    for item in policy:
        patterns = item.get("Resource") or item.get("NotResource")
        for pattern in [patterns] if isinstance(patterns, str) else patterns:
            if ":alias/" not in pattern:
                continue
            tail = pattern.split(":alias/", 1)[1]
            tail = tail.replace("${aws:username}", "alice")
            tail = re.sub(r"\$\{[^}]*, '([^']*)'\}", r"\1", tail)
            for fill in ("x", "p"):
                names.add(tail.replace("*", fill).replace("?", fill))
    return {name for name in names if re.fullmatch(f"[{NAME_CHARACTERS}]+", name)}


@pytest.mark.parametrize("caller_name", sorted(CALLERS))
@pytest.mark.parametrize("index", range(len(POLICIES)))
def test_some_allowed_name_means_the_form_is_offered(index: int, caller_name: str) -> None:
    policy = POLICIES[index]
    caller = CALLERS[caller_name]
    policies = identity_policies(policy)

    def context(resource: str) -> RequestContext:
        return RequestContext.build(
            caller=caller, action="kms:CreateAlias", resource=resource, source_ip="192.0.2.7"
        )

    allowed = sorted(
        name
        for name in witness_names(policy)
        if would_allow(context(PREFIX + name), key_policy=None, identity_policies=policies)
    )
    offered = identity_may_allow_under(
        context(PREFIX), policies, prefix=PREFIX, name_characters=NAME_CHARACTERS
    )
    if allowed:
        assert offered, f"{allowed} would be allowed, but no name is offered"


def test_the_table_covers_both_answers() -> None:
    """The property is not vacuous: some policies allow a name, some allow none."""
    outcomes = set()
    for policy in POLICIES:
        policies = identity_policies(policy)
        outcomes.add(
            any(
                would_allow(
                    RequestContext.build(
                        caller=ALICE,
                        action="kms:CreateAlias",
                        resource=PREFIX + name,
                        source_ip="192.0.2.7",
                    ),
                    key_policy=None,
                    identity_policies=policies,
                )
                for name in witness_names(policy)
            )
        )
    assert outcomes == {True, False}
