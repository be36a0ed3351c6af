"""A deleted principal's unique id in a key policy (what IAM leaves in place of its ARN): a stored policy keeps it
and compiles, no caller is ever matched by it (not the new principal of the same name, not one whose aws:userid is
that id), a NotPrincipal naming it exempts nobody, and a policy being written may not name it."""

from __future__ import annotations

import json

import pytest

from policies.engine import (
    INVALID_PRINCIPALS_MESSAGE,
    Caller,
    MalformedPolicyDocumentException,
    RequestContext,
    compile_key_policy,
    evaluate,
    is_unique_id,
    parse_key_policy,
)

ACCOUNT = "111122223333"
ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
OLD_ALICE = "AIDACKCEVSQ6C2EXAMPLE"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def policy(effect: str, element: str, principals: list[str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:DescribeKey", "Resource": "*"},
                {"Effect": effect, element: {"AWS": principals}, "Action": "kms:Encrypt", "Resource": "*"},
            ],
        }
    )


def decide(text: str, caller: Caller) -> bool:
    request = RequestContext.build(caller=caller, action="kms:Encrypt", resource=KEY)
    return evaluate(request, key_policy=compile_key_policy(text)).allowed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (OLD_ALICE, True),
        ("AROADBQP57FF2AEXAMPLE", True),
        ("AGPAJQABLZS4A3QDU576Q", False),  # a group's: never a principal
        ("AIDACKCEVSQ6C2EXAMPL", False),
        ("aidackcevsq6c2example", False),
        (ALICE_ARN, False),
    ],
)
def test_what_is_a_unique_id(text: str, expected: bool) -> None:
    assert is_unique_id(text) is expected


def test_a_policy_being_written_may_not_name_one() -> None:
    with pytest.raises(MalformedPolicyDocumentException) as refused:
        parse_key_policy(policy("Allow", "Principal", [OLD_ALICE]))
    assert refused.value.message.startswith(INVALID_PRINCIPALS_MESSAGE)


def test_a_stored_policy_keeps_it_and_names_it() -> None:
    compiled = compile_key_policy(policy("Allow", "Principal", [OLD_ALICE, ALICE_ARN]))
    assert compiled.policy.named_principals() == (OLD_ALICE, ALICE_ARN)


@pytest.mark.parametrize(
    "caller",
    [
        Caller.user(ALICE_ARN, userid="AIDANEWALICE000000000"),
        Caller.user(ALICE_ARN, userid=OLD_ALICE),  # even a caller claiming the old id
        Caller.root(ACCOUNT),
        Caller.assumed_role(
            f"arn:aws:sts::{ACCOUNT}:assumed-role/app/s", role_arn=f"arn:aws:iam::{ACCOUNT}:role/app"
        ),
    ],
)
def test_no_caller_is_matched_by_it(caller: Caller) -> None:
    assert not decide(policy("Allow", "Principal", [OLD_ALICE]), caller)


def test_a_not_principal_naming_only_it_exempts_nobody() -> None:
    text = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": ALICE_ARN},
                    "Action": "kms:Encrypt",
                    "Resource": "*",
                },
                {
                    "Effect": "Deny",
                    "NotPrincipal": {"AWS": [OLD_ALICE]},
                    "Action": "kms:Encrypt",
                    "Resource": "*",
                },
            ],
        }
    )
    assert not decide(text, Caller.user(ALICE_ARN, userid="AIDANEWALICE000000000"))
