"""REST API fixtures: API clients signed in with tokens of the admin and outsider personas, and a small world
of keys (one with an alias, a tag, a grant and rotation on; one disabled; one pending deletion), all made as the
operator through the services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from grants import services as grant_services
from keys.models import Key
from keys.services import aliases, crypto, deletion, lifecycle, rotation, tags
from kmsconsole.api.tokens import api_token_create
from kmsconsole.audit.models import AuditEvent
from policies import services
from policies.models import Account, IamUser
from tests.conftest import ALLOW_RANDOM, Persona, as_operator


def token_for(account: Account, user_name: str, **options: Any) -> str:
    created = as_operator(
        "kmsconsole:CreateApiToken",
        lambda ctx: api_token_create(ctx=ctx, account=account, user_name=user_name, **options),
    )
    return created.plaintext


def client_with(token: str | None) -> APIClient:
    client = APIClient()
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def api_as(account: Account) -> Callable[[Persona], APIClient]:
    def make(persona: Persona) -> APIClient:
        return client_with(token_for(account, persona.name))

    return make


@pytest.fixture
def admin_api(admin: Persona, api_as: Callable[[Persona], APIClient]) -> APIClient:
    return api_as(admin)


@pytest.fixture
def outsider_api(outsider: Persona, api_as: Callable[[Persona], APIClient]) -> APIClient:
    return api_as(outsider)


def make_key(description: str = "", **options: Any) -> Key:
    return as_operator(
        "CreateKey", lambda ctx: lifecycle.key_create(ctx=ctx, description=description, **options)
    )


def encrypted(key: Key) -> AuditEvent:
    """Encrypt under the key as the operator; the Encrypt's audit event."""
    as_operator(
        "Encrypt",
        lambda ctx: crypto.key_encrypt(ctx=ctx, key_id=str(key.key_id), plaintext=b"a use"),
        KeyId=str(key.key_id),
    )
    return AuditEvent.objects.filter(operation="Encrypt").latest("seq")


@dataclass(frozen=True)
class World:
    key: str
    other: str
    pending: str
    grant: str
    admin_arn: str


@pytest.fixture
def world(admin: Persona) -> World:
    key, other, pending = make_key("main"), make_key("other"), make_key("pending")
    key_id = str(key.key_id)
    as_operator(
        "CreateAlias", lambda ctx: aliases.alias_create(ctx=ctx, alias_name="alias/app", target_key_id=key_id)
    )
    as_operator(
        "TagResource",
        lambda ctx: tags.key_tag(ctx=ctx, key_id=key_id, tags=[{"TagKey": "env", "TagValue": "prod"}]),
    )
    created = as_operator(
        "CreateGrant",
        lambda ctx: grant_services.grant_create(
            ctx=ctx,
            key_id=key_id,
            grantee_principal=admin.arn,
            operations=["Encrypt"],
            retiring_principal=admin.arn,
        ),
    )
    as_operator("DisableKey", lambda ctx: lifecycle.key_disable(ctx=ctx, key_id=str(other.key_id)))
    as_operator("EnableKeyRotation", lambda ctx: rotation.key_rotation_enable(ctx=ctx, key_id=key_id))
    as_operator(
        "ScheduleKeyDeletion",
        lambda ctx: deletion.key_schedule_deletion(
            ctx=ctx, key_id=str(pending.key_id), pending_window_days=7
        ),
    )
    return World(key_id, str(other.key_id), str(pending.key_id), created.grant.grant_id, admin.arn)


def iam_user(name: str) -> IamUser:
    return IamUser.objects.select_related("account").get(
        account__account_id=settings.KMS_ACCOUNT_ID, name=name
    )


@dataclass(frozen=True)
class People:
    """alice (in group devs, with an inline policy p1 and an access key), role app and group devs (each with a
    policy p1), and an API token of the admin."""

    access_key_id: str
    admin_token_id: str


ALLOW_RANDOM_POLICY = ALLOW_RANDOM


@pytest.fixture
def people(account: Account, admin: Persona) -> People:
    alice = as_operator(
        "iam:CreateUser", lambda ctx: services.user_create(ctx=ctx, account=account, user_name="alice")
    )
    role = as_operator(
        "iam:CreateRole", lambda ctx: services.role_create(ctx=ctx, account=account, role_name="app")
    )
    group = as_operator(
        "iam:CreateGroup", lambda ctx: services.group_create(ctx=ctx, account=account, group_name="devs")
    )
    as_operator(
        "iam:AddUserToGroup",
        lambda ctx: services.group_add_user(ctx=ctx, account=account, group_name="devs", user_name="alice"),
    )
    for owner, operation in (
        (alice, "iam:PutUserPolicy"),
        (role, "iam:PutRolePolicy"),
        (group, "iam:PutGroupPolicy"),
    ):
        as_operator(
            operation,
            lambda ctx, o=owner: services.identity_policy_put(
                ctx=ctx, owner=o, policy_name="p1", document=ALLOW_RANDOM_POLICY
            ),
        )
    key = as_operator(
        "iam:CreateAccessKey",
        lambda ctx: services.access_key_create(ctx=ctx, account=account, user_name="alice"),
    )
    token = as_operator(
        "kmsconsole:CreateApiToken",
        lambda ctx: api_token_create(ctx=ctx, account=account, user_name="admin", name="spare"),
    )
    return People(key.access_key_id, str(token.token.pk))
