"""What a `bench kms` run needs on the server under test, created through the services as the local operator
(so it is authorized and audited like any other change): an IAM user allowed kms:* with a fresh access key, and
a key of the spec the operation needs under the default key policy (which delegates to IAM policies, the usual
production path)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from keys.services.lifecycle import key_create
from kmsconsole.core.context import RequestMeta, operator_caller
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
        meta=RequestMeta(interface="cli", user_agent="manage.py bench kms"),
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
