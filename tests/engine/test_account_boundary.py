"""Without a key policy, identity policies (and a root's implicit rights) speak only for the caller's account."""

from __future__ import annotations

import json

import pytest

from policies import engine

ALLOW_ALL = engine.compile_identity_policy(
    json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
)


@pytest.mark.parametrize(
    "caller",
    [engine.Caller.root("111122223333"), engine.Caller.user("arn:aws:iam::111122223333:user/admin")],
    ids=["root", "user"],
)
@pytest.mark.parametrize(
    ("resource", "allowed"),
    [
        ("*", True),
        ("arn:aws:kms:us-east-1:111122223333:alias/mine", True),
        ("arn:aws:kms:us-east-1:444455556666:alias/theirs", False),
        ("arn:aws:iam::444455556666:user/someone", False),
    ],
)
def test_account_level_decisions_stop_at_the_account(
    caller: engine.Caller, resource: str, allowed: bool
) -> None:
    context = engine.RequestContext.build(caller=caller, action="kms:CreateAlias", resource=resource)
    decision = engine.evaluate(
        context, key_policy=None, identity_policies=[engine.IdentityPolicy("all", ALLOW_ALL)]
    )
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reason is engine.ReasonCode.NO_IDENTITY_POLICY_ALLOWS
