"""The second row-MAC migrations on an installation that has rows: newly protected rows get their MACs, and users
and keys move to the formulas that cover their children, but only when their MAC verifies under the old formula
(a row changed outside before the upgrade stays refused: the upgrade never blesses it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from grants import services as grant_services
from grants.models import IntegratedService
from keys.models import Alias, Key, KeyMaterial, KeyPolicyVersion, Tag
from kmsconsole.core import errors, rowmac
from policies import services
from policies.models import Account, IamGroup, IamRole, IamUser
from tests.conftest import ALLOW_ALL, Persona, as_operator

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [
    ("policies", "0003_fill_row_macs"),
    ("keys", "0005_fill_row_macs"),
    ("grants", "0004_fill_row_macs"),
]


def test_the_upgrade_fills_new_macs_and_moves_only_verified_rows(
    kms_client: Callable[..., Any], account: Account, admin: Persona, make_user: Callable[..., Persona]
) -> None:
    kms = kms_client(admin)
    key_id = kms.create_key(Tags=[{"TagKey": "env", "TagValue": "prod"}])["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/app", TargetKeyId=key_id)
    make_user("mallory")
    as_operator("iam:CreateRole", lambda ctx: services.role_create(ctx=ctx, account=account, role_name="app"))
    group = as_operator(
        "iam:CreateGroup", lambda ctx: services.group_create(ctx=ctx, account=account, group_name="g")
    )
    as_operator(
        "iam:PutGroupPolicy",
        lambda ctx: services.identity_policy_put(ctx=ctx, owner=group, policy_name="p", document=ALLOW_ALL),
    )
    as_operator(
        "kmsconsole:RegisterIntegratedService",
        lambda ctx: grant_services.integrated_service_register(
            ctx=ctx, name="ec2.us-east-1.amazonaws.com", principals=[admin.arn]
        ),
    )

    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    # The rows as the first migrations left them: MACs under the first formulas. Mallory's user row was then
    # renamed in the database, so its old MAC no longer verifies.
    for row in old.get_model("policies", "IamUser").objects.all():
        row.mac = rowmac.row_mac("iam-user", *rowmac.iam_user_mac_fields_v1(row))
        row.save(update_fields=["mac"])
    old.get_model("policies", "IamUser").objects.filter(name="mallory").update(path="/admins/")
    for row in old.get_model("keys", "Key").objects.all():
        row.mac = rowmac.row_mac("key", *rowmac.key_mac_fields_v1(row))
        row.save(update_fields=["mac"])

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    for model in (Alias, Tag, KeyMaterial, KeyPolicyVersion, IamRole, IamGroup, IntegratedService, Key):
        rows = list(model.objects.all())  # type: ignore[attr-defined]
        assert rows, model
        for row in rows:
            row.check_row()
    IamUser.objects.get(name="admin").check_row()
    with pytest.raises(errors.KMSInternalException):
        IamUser.objects.get(name="mallory").check_row()
    assert kms.encrypt(KeyId="alias/app", Plaintext=b"x")["KeyId"].endswith(key_id)


def test_api_tokens_issued_before_their_mac_keep_working(account: Account, admin: Persona) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from kmsconsole.api.tokens import TOKEN_SCHEME, secret_digest
    from tests.api.conftest import client_with

    executor = MigrationExecutor(connection)
    before = [("api", "0003_api_token_expires_at_required")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    user = old.get_model("policies", "IamUser").objects.get(name="admin")
    old.get_model("api", "ApiToken").objects.create(
        principal=user,
        prefix="0123456789ab",
        secret_digest=secret_digest("0123456789ab", "s3cret"),
        expires_at=timezone.now() + timedelta(days=30),
    )
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    api = client_with(f"{TOKEN_SCHEME}_0123456789ab_s3cret")
    assert api.get("/api/v1/users").status_code == 200
