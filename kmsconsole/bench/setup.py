"""What a `bench kms` run needs on the server under test, created through the services as the local operator
(so it is authorized and audited like any other change): an IAM user allowed kms:* with a fresh access key, and
a key of the spec the operation needs under the default key policy (which delegates to IAM policies, the usual
production path).

`seed()` adds bulk: grants on the bench key (to other principals) and keys in the account, inserted directly in
batches (not through the services: this is test data, and 60,000 audited calls would take minutes), to check that
the request path does not slow down with them.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from grants.models import Grant
from keys.models import Key
from keys.services.lifecycle import key_create
from kmsconsole.core.context import command_line_meta, operator_caller
from kmsconsole.operations import perform
from policies import services
from policies.models import AccessKey, Account, IamUser, IdentityPolicy

BENCH_USER = "kms-bench"
BENCH_POLICY_NAME = "KmsBench"
BENCH_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
)


@dataclass(frozen=True)
class BenchPrincipal:
    access_key_id: str
    secret_access_key: str
    key_id: str


def _as_operator(operation: str, params: dict[str, Any], work: Callable[[Any], Any]) -> Any:
    holder: dict[str, Any] = {}

    def service(ctx: Any) -> dict[str, Any]:
        holder["result"] = work(ctx)
        return {}

    perform(
        operation,
        caller=operator_caller(settings.KMS_ACCOUNT_ID, "bench"),
        meta=command_line_meta("manage.py bench kms", settings.KMS_ACCOUNT_ID),
        params=params,
        service=service,
    )
    return holder["result"]


def prepare(*, key_spec: str, key_usage: str) -> BenchPrincipal:
    """The bench user (created once, its access keys replaced on every run) and a new key of `key_spec`."""
    account_id = settings.KMS_ACCOUNT_ID
    account = Account.objects.filter(account_id=account_id).first()
    if account is None:
        account = _as_operator(
            "iam:CreateAccount",
            {"AccountId": account_id},
            lambda ctx: services.account_create(ctx=ctx, account_id=account_id),
        )
    user = IamUser.objects.filter(account=account, name=BENCH_USER).first()
    if user is None:
        user = _as_operator(
            "iam:CreateUser",
            {"UserName": BENCH_USER},
            lambda ctx: services.user_create(ctx=ctx, account=account, user_name=BENCH_USER),
        )
    if not IdentityPolicy.objects.filter(user=user, name=BENCH_POLICY_NAME).exists():
        _as_operator(
            "iam:PutUserPolicy",
            {"UserName": BENCH_USER, "PolicyName": BENCH_POLICY_NAME, "PolicyDocument": BENCH_POLICY},
            lambda ctx: services.identity_policy_put(
                ctx=ctx, owner=user, policy_name=BENCH_POLICY_NAME, document=BENCH_POLICY
            ),
        )
    for old in AccessKey.objects.filter(user=user).values_list("access_key_id", flat=True):
        _as_operator(
            "iam:DeleteAccessKey",
            {"UserName": BENCH_USER, "AccessKeyId": old},
            lambda ctx, old=old: services.access_key_delete(ctx=ctx, account=account, access_key_id=old),
        )
    access_key = _as_operator(
        "iam:CreateAccessKey",
        {"UserName": BENCH_USER},
        lambda ctx: services.access_key_create(ctx=ctx, account=account, user_name=BENCH_USER),
    )
    key = _as_operator(
        "CreateKey",
        {"KeySpec": key_spec, "KeyUsage": key_usage, "Description": "manage.py bench kms"},
        lambda ctx: key_create(
            ctx=ctx, description="manage.py bench kms", key_spec=key_spec, key_usage=key_usage
        ),
    )
    return BenchPrincipal(access_key.access_key_id, access_key.secret_access_key, str(key.key_id))


SEED_BATCH = 2000
# Seeded grants go to this many distinct principals of the account (none of them the bench user).
SEED_GRANTEES = 5000


@dataclass(frozen=True)
class SeedReport:
    grants_on_key: int
    keys_in_account: int


def seed(*, key_id: str, grants: int, keys: int) -> SeedReport:
    """Bring the bench key to at least `grants` grants and its account to at least `keys` keys."""
    key = Key.objects.select_related("account").get(key_id=key_id)
    account_id = key.account.account_id

    def sealed(row: Any) -> Any:
        # Rows protected by a row MAC get theirs, as save() would give it (bulk_create calls no save()).
        refresh = getattr(row, "refresh_mac", None)
        if refresh is not None:
            refresh()
        return row

    now = timezone.now()
    missing = grants - Grant.objects.filter(key=key).count()
    while missing > 0:
        batch = min(missing, SEED_BATCH)
        with transaction.atomic():
            Grant.objects.bulk_create(
                sealed(
                    Grant(
                        grant_id=secrets.token_hex(32),
                        key=key,
                        grantee_principal=f"arn:aws:iam::{account_id}:user/seed-{secrets.randbelow(SEED_GRANTEES)}",
                        operations=["Encrypt", "Decrypt", "GenerateDataKey"],
                        parameters_digest=secrets.token_hex(32),
                        issuing_account=account_id,
                        created_by="manage.py bench kms --seed-grants",
                        propagate_after=now,
                        effective_at=now,
                    )
                )
                for _ in range(batch)
            )
        missing -= batch
    missing = keys - Key.objects.filter(account=key.account).count()
    while missing > 0:
        batch = min(missing, SEED_BATCH)
        with transaction.atomic():
            Key.objects.bulk_create(
                sealed(
                    Key(
                        account=key.account,
                        description="manage.py bench kms --seed-keys",
                        key_spec=key.key_spec,
                        key_usage=key.key_usage,
                        policy=key.policy,
                    )
                )
                for _ in range(batch)
            )
        missing -= batch
    return SeedReport(
        grants_on_key=Grant.objects.filter(key=key).count(),
        keys_in_account=Key.objects.filter(account=key.account).count(),
    )
