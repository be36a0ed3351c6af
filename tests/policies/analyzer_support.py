"""Helpers for the analyzer and simulator tests: policy documents, keys, groups, grants and role principals made
through the services (as the operator), and a way to run an analyzer service as a persona or as the operator."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings

from grants import services as grant_services
from keys.models import Key
from keys.services import lifecycle
from kmsconsole.core.context import RequestMeta
from kmsconsole.operations import perform
from policies import services
from policies.models import AccessKey, Account, IamGroup, IamRole, IamUser
from policies.selectors import credentials_for
from tests.conftest import Persona, as_operator, create_user

ACCOUNT = settings.KMS_ACCOUNT_ID
PARTNER = "444455556666"
ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"
PARTNER_ROOT = f"arn:aws:iam::{PARTNER}:root"


def user_arn(name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:iam::{account}:user/{name}"


def role_arn(name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: Any, *actions: str, sid: str | None = None, **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal if principal == "*" else {"AWS": principal},
        "Action": list(actions),
        "Resource": "*",
    }
    if sid:
        statement["Sid"] = sid
    if condition:
        statement["Condition"] = condition
    return statement


def deny(principal: Any, *actions: str, sid: str | None = None, **condition: Any) -> dict[str, Any]:
    return {**allow(principal, *actions, sid=sid, **condition), "Effect": "Deny"}


ROOT = allow(ROOT_ARN, "kms:*", sid="Enable IAM User Permissions")
# What a key's analysis shows, each read allowed as its own request: its policy, tags, grants, rotation status.
ANALYSIS_READS = ("kms:GetKeyPolicy", "kms:ListResourceTags", "kms:ListGrants", "kms:GetKeyRotationStatus")


def identity_policy(*actions: str, effect: str = "Allow", **condition: Any) -> str:
    statement: dict[str, Any] = {"Effect": effect, "Action": list(actions), "Resource": "*"}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def make_key(document: str | None = None, description: str = "analyzed", **options: Any) -> Key:
    return as_operator(
        "CreateKey",
        lambda ctx: lifecycle.key_create(ctx=ctx, description=description, policy=document, **options),
    )


def grant(key: Key, grantee: str, *operations: str, name: str = "", **constraints: dict[str, str]) -> str:
    created = as_operator(
        "CreateGrant",
        lambda ctx: grant_services.grant_create(
            ctx=ctx,
            key_id=str(key.key_id),
            grantee_principal=grantee,
            operations=list(operations),
            constraints=constraints or None,
            name=name or None,
        ),
    )
    return str(created.grant.grant_id)


def grant_token(key: Key, grantee: str, *operations: str) -> tuple[str, str]:
    created = as_operator(
        "CreateGrant",
        lambda ctx: grant_services.grant_create(
            ctx=ctx, key_id=str(key.key_id), grantee_principal=grantee, operations=list(operations)
        ),
    )
    return str(created.grant.grant_id), str(created.token)


def group_with(account: Account, name: str, members: list[str], document: str) -> None:
    group = as_operator(
        "iam:CreateGroup", lambda ctx: services.group_create(ctx=ctx, account=account, group_name=name)
    )
    as_operator(
        "iam:PutGroupPolicy",
        lambda ctx: services.identity_policy_put(
            ctx=ctx, owner=group, policy_name=f"{name}-policy", document=document
        ),
    )
    for member in members:
        as_operator(
            "iam:AddUserToGroup",
            lambda ctx, m=member: services.group_add_user(
                ctx=ctx, account=account, group_name=name, user_name=m
            ),
        )


def role_with(account: Account, name: str, *documents: str) -> None:
    role = as_operator(
        "iam:CreateRole", lambda ctx: services.role_create(ctx=ctx, account=account, role_name=name)
    )
    for index, document in enumerate(documents):
        as_operator(
            "iam:PutRolePolicy",
            lambda ctx, d=document, i=index: services.identity_policy_put(
                ctx=ctx, owner=role, policy_name=f"role-policy-{i}", document=d
            ),
        )


def bare_user(account: Account, name: str, *documents: str) -> IamUser:
    """A user with identity policies (policy-0, policy-1, ...), made as tests/conftest.py makes personas."""
    create_user(account, name, *documents)
    return IamUser.objects.get(account=account, name=name)


def run_as(persona: Persona | None, operation: str, work: Callable[[Any], Any], **params: Any) -> Any:
    """Run a service as a persona (interface "api"), or as the operator when `persona` is None."""
    if persona is None:
        return as_operator(operation, work, **params)
    credentials = credentials_for(persona.access_key_id)
    assert credentials is not None
    holder: dict[str, Any] = {}

    def service(ctx: Any) -> dict[str, Any]:
        holder["value"] = work(ctx)
        return {}

    perform(
        operation,
        caller=credentials.caller,
        meta=RequestMeta(interface="api"),
        params=params,
        service=service,
    )
    return holder["value"]


def stored_before_the_path_rule(model: type[IamUser | IamRole | IamGroup], name: str) -> str:
    """Move a principal to /a//b/, a path the service accepted before it held paths to the engine's rule, and return
    its ARN. Its row and its access keys' rows are sealed with that path (their MACs cover the owner's ARN), as the
    service sealed them then."""
    entity = model.objects.select_related("account").get(name=name)
    entity.path = "/a//b/"
    entity.save(update_fields=["path"])
    for key in AccessKey.objects.select_related("account", "user__account").filter(user__name=name):
        key.save(update_fields=["mac"])
    return entity.arn


UNRELATED = "777788889999"
# The key policy names badmin (the key owner wrote it); badmin's identity policies and the unrelated account are not
# the key owner's to read.
PARTNER_SECRETS = ("BDenyDecrypt", "'deny'", "'kms'", "user/eve", UNRELATED)


def partner_with_secrets(partner: Callable[..., Persona]) -> Key:
    """A key whose policy gives the partner account's user badmin Encrypt and Decrypt (naming it), badmin's own
    identity policies ('kms': everything; 'deny': Sid BDenyDecrypt refuses Decrypt), and an unrelated account with
    a user eve who may do anything in its IAM: what a key owner's analysis must not name."""
    partner("badmin")
    user = IamUser.objects.get(account__account_id=PARTNER, name="badmin")
    everything = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    )
    refuse = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "BDenyDecrypt", "Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}
            ],
        }
    )
    for name, document in (("kms", everything), ("deny", refuse)):
        as_operator(
            "iam:PutUserPolicy",
            lambda ctx, n=name, d=document: services.identity_policy_put(
                ctx=ctx, owner=user, policy_name=n, document=d
            ),
        )
    other = as_operator(
        "iam:CreateAccount", lambda ctx: services.account_create(ctx=ctx, account_id=UNRELATED)
    )
    create_user(other, "eve", everything)
    return make_key(
        policy(ROOT, allow(user_arn("badmin", PARTNER), "kms:Encrypt", "kms:Decrypt", sid="Partner"))
    )
