"""`request_allowed`: whether a request by the caller on a key would be allowed, decided as that request would be
(the account check of key resolution, authorization, the key-state check), from inside another operation."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from keys.models import Key
from keys.services import lifecycle
from keys.services.access import request_allowed
from kmsconsole.api.authentication import user_caller
from kmsconsole.core.context import RequestMeta
from kmsconsole.operations import OperationContext, perform
from policies.models import IamUser
from tests.api.conftest import make_key
from tests.conftest import PARTNER_ACCOUNT, Persona, as_operator

pytestmark = pytest.mark.django_db

ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
)


def open_to(*accounts: str) -> str:
    """A key policy giving every action to the root of each account (their IAM policies decide)."""
    principals = [f"arn:aws:iam::{account}:root" for account in accounts]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": principals}, "Action": "kms:*", "Resource": "*"}
            ],
        }
    )


def asked(persona: Persona, account_id: str, key: Key, *names: str) -> dict[str, bool]:
    """Each request's answer, asked from inside a DescribeKey of the persona."""
    user = IamUser.objects.select_related("account").get(account__account_id=account_id, name=persona.name)
    holder: dict[str, Any] = {}

    def service(ctx: OperationContext) -> dict[str, Any]:
        described = lifecycle.key_describe(ctx=ctx, key_id=key.arn)  # the operation's own decision first
        holder["answers"] = {name: request_allowed(ctx, described, name) for name in names}
        return {}

    perform(
        "DescribeKey",
        caller=user_caller(user),
        meta=RequestMeta(interface="api", source_ip="10.0.0.7", secure_transport=True),
        params={"KeyId": key.arn},
        service=service,
    )
    return holder["answers"]


def test_another_accounts_key_only_for_a_cross_account_operation(
    make_user: Callable[..., Persona], partner: Callable[..., Persona]
) -> None:
    key = make_key(policy=open_to("111122223333", PARTNER_ACCOUNT))
    outside = partner("outside-user", ALLOW_ALL)
    # The key policy and the partner's IAM allow both; GetKeyLastUsage never reaches another account's key.
    assert asked(outside, PARTNER_ACCOUNT, key, "Encrypt", "GetKeyLastUsage") == {
        "Encrypt": True,
        "GetKeyLastUsage": False,
    }
    inside = make_user("inside-user", ALLOW_ALL)
    assert asked(inside, "111122223333", key, "Encrypt", "GetKeyLastUsage") == {
        "Encrypt": True,
        "GetKeyLastUsage": True,
    }


def test_the_key_state_is_checked_as_the_request_would(make_user: Callable[..., Persona]) -> None:
    key = make_key(policy=open_to("111122223333"))
    user = make_user("state-user", ALLOW_ALL)
    as_operator(
        "DisableKey",
        lambda ctx: lifecycle.key_disable(ctx=ctx, key_id=str(key.key_id)),
        KeyId=str(key.key_id),
    )
    # Encrypt refuses a disabled key (DisabledException); GetKeyLastUsage reads a key in any state.
    assert asked(user, "111122223333", key, "Encrypt", "GetKeyLastUsage") == {
        "Encrypt": False,
        "GetKeyLastUsage": True,
    }
