"""What the Principals page tests share: URLs, the seeded principals, and state snapshots to prove nothing changed."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse

from kmsconsole.audit.models import AuditEvent
from policies import services
from policies.models import AccessKey, Account, IamGroup, IamRole, IamUser, IdentityPolicy
from tests.conftest import as_operator

ACCOUNT = settings.KMS_ACCOUNT_ID
POLICY = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}]}'
)


def url(name: str, *args: str) -> str:
    return reverse(f"console:{name}", args=args)


def text(response: Any) -> str:
    return response.content.decode()


def seed_group(name: str = "devs", *members: str) -> IamGroup:
    """A group in the default account, with members, created the way `manage.py iam` does."""
    account = Account.objects.get(account_id=ACCOUNT)
    group = as_operator(
        "iam:CreateGroup", lambda ctx: services.group_create(ctx=ctx, account=account, group_name=name)
    )
    for member in members:
        as_operator(
            "iam:AddUserToGroup",
            lambda ctx, m=member: services.group_add_user(
                ctx=ctx, account=account, group_name=name, user_name=m
            ),
        )
    return group


def seed_role(name: str = "app") -> IamRole:
    account = Account.objects.get(account_id=ACCOUNT)
    return as_operator(
        "iam:CreateRole", lambda ctx: services.role_create(ctx=ctx, account=account, role_name=name)
    )


def seed_policy(
    owner: IamUser | IamRole | IamGroup, name: str = "encrypt", document: str = POLICY
) -> IdentityPolicy:
    operation = f"iam:Put{type(owner).__name__.removeprefix('Iam')}Policy"
    return as_operator(
        operation,
        lambda ctx: services.identity_policy_put(ctx=ctx, owner=owner, policy_name=name, document=document),
    )


def principals_state() -> tuple[Any, ...]:
    """Everything a Principals page could change, to compare before and after a refused or bad request."""
    return (
        sorted(IamUser.objects.values_list("name", "path"), key=repr),
        sorted(IamRole.objects.values_list("name", "path"), key=repr),
        sorted(IamGroup.objects.values_list("name", "members__name"), key=repr),
        sorted(
            IdentityPolicy.objects.values_list("name", "document", "user__name", "role__name", "group__name"),
            key=repr,
        ),
        sorted(AccessKey.objects.values_list("access_key_id", "status"), key=repr),
    )


def last_event(operation: str) -> AuditEvent:
    event = AuditEvent.objects.filter(operation=operation).order_by("-seq").first()
    assert event is not None, f"no audit event for {operation}"
    return event
