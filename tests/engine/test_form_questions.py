"""What a page asks before a form is filled in (pure, table-driven): `AccessAnalyzer(open_keys=...)` leaves open only
the condition keys the form will set and decides the rest from the request in hand; `identity_may_allow_under`
says whether identity policies could allow an action on some alias name not typed yet."""

from __future__ import annotations

import json
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
from policies.engine.evaluate import IdentityPolicy
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
