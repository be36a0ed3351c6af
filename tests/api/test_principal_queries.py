"""The principals' list endpoints (and a group's members, ListKeyRotations, ListRetirableGrants) keep a fixed
number of queries as their rows grow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from grants import services as grant_services
from keys.services import rotation
from kmsconsole.api.tokens import api_token_create
from policies import services
from policies.models import Account, IamUser
from tests.api.conftest import ALLOW_RANDOM_POLICY, People, World
from tests.conftest import as_operator

pytestmark = pytest.mark.django_db


def grow(account: Account, world: World, round_: int) -> None:
    """A few more rows of every listed kind (alice gets her second access key in round 2: a user has at most two)."""
    alice = IamUser.objects.select_related("account").get(account=account, name="alice")
    for index in range(3):
        name = f"r{round_}-{index}"
        as_operator(
            "iam:CreateAccount",
            lambda ctx, n=round_ * 10 + index: services.account_create(ctx=ctx, account_id=f"{n:012d}"),
        )
        as_operator(
            "iam:CreateUser", lambda ctx, n=name: services.user_create(ctx=ctx, account=account, user_name=n)
        )
        as_operator(
            "iam:CreateRole", lambda ctx, n=name: services.role_create(ctx=ctx, account=account, role_name=n)
        )
        as_operator(
            "iam:CreateGroup",
            lambda ctx, n=name: services.group_create(ctx=ctx, account=account, group_name=n),
        )
        as_operator(
            "iam:AddUserToGroup",
            lambda ctx, n=name: services.group_add_user(
                ctx=ctx, account=account, group_name="devs", user_name=n
            ),
        )
        as_operator(
            "iam:PutUserPolicy",
            lambda ctx, n=name: services.identity_policy_put(
                ctx=ctx, owner=alice, policy_name=n, document=ALLOW_RANDOM_POLICY
            ),
        )
        as_operator(
            "kmsconsole:CreateApiToken",
            lambda ctx, n=name: api_token_create(ctx=ctx, account=account, user_name="admin", name=n),
        )
        as_operator(
            "CreateGrant",
            lambda ctx: grant_services.grant_create(
                ctx=ctx,
                key_id=world.key,
                grantee_principal=world.admin_arn,
                operations=["Encrypt"],
                retiring_principal=world.admin_arn,
            ),
        )
        as_operator("RotateKeyOnDemand", lambda ctx: rotation.key_rotate_on_demand(ctx=ctx, key_id=world.key))
    if round_ == 2:
        as_operator(
            "iam:CreateAccessKey",
            lambda ctx: services.access_key_create(ctx=ctx, account=account, user_name="alice"),
        )


def rows(body: dict[str, Any]) -> int:
    return len(body["results"] if "results" in body else body["users"])


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/accounts",
        "/api/v1/users",
        "/api/v1/roles",
        "/api/v1/groups",
        "/api/v1/groups/devs",
        "/api/v1/users/alice/policies",
        "/api/v1/users/alice/access-keys",
        "/api/v1/api-tokens",
        "/api/v1/keys/{key}/rotations?include_key_material=ALL_KEY_MATERIAL",
        "/api/v1/retirable-grants?retiring_principal={admin_arn}",
    ],
)
def test_list_queries_do_not_grow_with_rows(
    account: Account,
    world: World,
    people: People,
    admin_api: APIClient,
    django_assert_num_queries: Callable[..., Any],
    path: str,
) -> None:
    url = path.replace("{key}", world.key).replace("{admin_arn}", world.admin_arn)
    admin_api.get(url)  # warm the per-process caches (compiled policies, subkeys)
    grow(account, world, 1)
    with CaptureQueriesContext(connection) as first:
        response = admin_api.get(url)
    assert response.status_code == 200, response.content
    counted = rows(response.json())
    grow(account, world, 2)
    with django_assert_num_queries(len(first.captured_queries)):
        response = admin_api.get(url)
    assert rows(response.json()) > counted
