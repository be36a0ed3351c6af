"""Identity policies have a size quota (AWS's largest inline one, 10,240 characters without whitespace): a larger
document is refused with LimitExceededException and nothing is stored; whitespace does not count."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kmsconsole.core import errors
from policies import services
from policies.models import IdentityPolicy
from policies.policy_documents import IDENTITY_POLICY_MAX_CHARS
from tests.conftest import as_operator

pytestmark = pytest.mark.django_db


def document_of(size: int) -> str:
    """A valid policy of exactly `size` characters without whitespace (the Sid pads it)."""
    empty = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Sid": "", "Effect": "Allow", "Action": "kms:*", "Resource": "*"}],
        }
    )
    padding = size - len("".join(empty.split()))
    return empty.replace('"Sid": ""', '"Sid": "' + "S" * padding + '"')


def put(account: Any, document: str) -> Any:
    user = as_operator(
        "iam:CreateUser", lambda ctx: services.user_create(ctx=ctx, account=account, user_name="big")
    )
    return as_operator(
        "iam:PutUserPolicy",
        lambda ctx: services.identity_policy_put(ctx=ctx, owner=user, policy_name="p", document=document),
    )


def test_a_policy_at_the_quota_is_stored_with_any_whitespace(account: Any) -> None:
    document = document_of(IDENTITY_POLICY_MAX_CHARS).replace(",", ",\n        ")
    assert put(account, document).document == document


def test_a_policy_over_the_quota_is_refused(account: Any) -> None:
    with pytest.raises(
        errors.LimitExceededException, match="10240 characters exceeded: this document has 10241"
    ):
        put(account, document_of(IDENTITY_POLICY_MAX_CHARS + 1))
    assert not IdentityPolicy.objects.exists()
