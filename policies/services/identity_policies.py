"""Inline identity policies of users, roles and groups: put, list, get and delete (the owner's row MAC covers
them)."""

from __future__ import annotations

from django.db.models import QuerySet

from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies import arns
from policies.authorization import authorize
from policies.models import Account, IamGroup, IamRole, IamUser, IdentityPolicy
from policies.policy_documents import validate_identity_policy
from policies.selectors import queryable
from policies.services.entity_checks import _check_name, locked_and_checked
from policies.services.lookups import entity_describe


def identity_policy_put(
    *, ctx: OperationContext, owner: IamUser | IamRole | IamGroup, policy_name: str, document: str
) -> IdentityPolicy:
    """Create or replace an inline identity policy; the engine validates the document first. The owner's row MAC
    covers its policies: it is locked and checked before, and resealed after."""
    authorize(ctx, resource=owner.arn)
    _check_name(policy_name, what="policyName", max_length=arns.POLICY_NAME_MAX)
    validate_identity_policy(document)
    owner_field = {IamUser: "user", IamRole: "role", IamGroup: "group"}[type(owner)]
    owner = locked_and_checked(owner)
    policy, _ = IdentityPolicy.objects.update_or_create(
        **{owner_field: owner, "name": policy_name}, defaults={"document": document}
    )
    owner.seal()
    return policy


def identity_policy_list(
    *, ctx: OperationContext, account: Account, kind: str, owner_name: str
) -> QuerySet[IdentityPolicy]:
    """The inline policies of a user, role or group (iam:List<Kind>Policies on the owner), by name."""
    owner = entity_describe(ctx=ctx, account=account, kind=kind, name=owner_name)
    return IdentityPolicy.objects.filter(**{kind: owner}).order_by("name", "pk")


def identity_policy_describe(
    *, ctx: OperationContext, account: Account, kind: str, owner_name: str, policy_name: str
) -> IdentityPolicy:
    """One inline policy (iam:Get<Kind>Policy on the owner)."""
    found = identity_policy_list(ctx=ctx, account=account, kind=kind, owner_name=owner_name)
    # Text PostgreSQL cannot hold names no policy, and is not queried (see policies.selectors).
    policy = found.filter(name=policy_name).first() if queryable(policy_name) else None
    if policy is None:
        raise errors.NoSuchEntityException(
            f"The {kind} policy with name {policy_name[:128]} cannot be found."
        )
    return policy


def identity_policy_delete(
    *, ctx: OperationContext, account: Account, kind: str, owner_name: str, policy_name: str
) -> None:
    """Delete an inline policy (iam:Delete<Kind>Policy on the owner), resealing the owner, whose MAC covers it."""
    policy = identity_policy_describe(
        ctx=ctx, account=account, kind=kind, owner_name=owner_name, policy_name=policy_name
    )
    owner = policy.user or policy.group or policy.role
    assert owner is not None  # noqa: S101 - a database constraint gives every policy exactly one owner
    owner = locked_and_checked(owner)
    policy.delete()
    owner.seal()
