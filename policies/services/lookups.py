"""Reads of accounts, users, roles and groups, and the lookups the other principals services go through: which
account a request names, and one entity once the caller may act on it (another account's answered as unknown)."""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import QuerySet

from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies import arns, engine
from policies.authorization import authorize, would_allow
from policies.models import Account
from policies.selectors import ENTITY_MODELS, Entity, account_get, entity_find, no_such_entity

# Reads and the rest of the entity administration (the REST API). The caller's own account is the only one named:
# an entity ARN of another account is never allowed by identity policies alone.

LIST_ACCOUNTS_ACTION = "kmsconsole:ListAccounts"
OWN_ACCOUNT_REASON = (
    "allowed: every principal may see its own account (kmsconsole:ListAccounts lists the others)"
)

# Each kind's ARN (its model: policies.selectors.ENTITY_MODELS).
ENTITY_KINDS: dict[str, Callable[[str, str, str], str]] = {
    "user": arns.user_arn,
    "role": arns.role_arn,
    "group": arns.group_arn,
}


def account_list(*, ctx: OperationContext) -> QuerySet[Account]:
    """Every account when the identity policies allow kmsconsole:ListAccounts; otherwise only the caller's own."""
    if ctx.caller.is_operator or would_allow(ctx.caller, LIST_ACCOUNTS_ACTION):
        authorize(ctx, resource="*", action=LIST_ACCOUNTS_ACTION)
        return Account.objects.order_by("account_id")
    ctx.audit.authorized(allowed=True, reason=OWN_ACCOUNT_REASON, decided_by="own account")
    return Account.objects.filter(account_id=ctx.caller.account_id).order_by("account_id")


def entity_list(*, ctx: OperationContext, account: Account, kind: str) -> QuerySet[Entity]:
    """The account's users, roles or groups (iam:ListUsers, iam:ListRoles, iam:ListGroups), by name."""
    model = ENTITY_MODELS[kind]
    authorize(ctx, resource=ENTITY_KINDS[kind](account.account_id, "/", "*"))
    return model.objects.filter(account=account).select_related("account").order_by("name", "pk")


def principals_account(ctx: OperationContext, *, account_id: str, kind: str) -> Account:
    """The account named (by a console URL) for a list or a creation of its users, roles or groups. Another
    account's is refused before it is looked up, as the list of its `kind` would be (the engine refuses every
    request on another account's IAM resources), so an account that exists and one that does not get the same
    answer (AccessDenied, not NoSuchEntity for the unknown one). Nothing for the operator, in the caller's own
    account, or for what is no account id at all (not 12 ASCII digits: no account can have it, so "cannot be
    found" tells nothing)."""
    elsewhere = not ctx.caller.is_operator and account_id != ctx.caller.account_id
    if elsewhere and engine.is_account_id(account_id):
        authorize(ctx, resource=ENTITY_KINDS[kind](account_id, "/", "*"))
    return account_get(account_id)


def refuse_as_unknown_elsewhere(ctx: OperationContext, *, account_id: str, kind: str, name: str) -> None:
    """Another account's user, role or group: the engine refuses every request on another account's IAM resources
    (no key policy can allow one), and the refusal must not tell which principals, or accounts, exist. So it is
    decided on the ARN the name would have at path "/", before anything is looked up, and answered as an unknown
    name is (NoSuchEntity, the same words): a principal that exists, one that does not, and one of an account that
    does not exist get the same answer and leave the same audit event. Nothing for the operator, or in the
    caller's own account (where identity policies decide, and `entity_describe` hides unknown names)."""
    if ctx.caller.is_operator or account_id == ctx.caller.account_id:
        return
    try:
        authorize(ctx, resource=ENTITY_KINDS[kind](account_id[:32], "/", name[:128]))
    except errors.AccessDeniedException:
        raise no_such_entity(kind, name) from None


def entity_account(*, ctx: OperationContext, account_id: str, kind: str, name: str) -> Account:
    """The account of the user, role or group a request names by account id and name; for another account,
    whether it exists or not, NoSuchEntity for the name (`refuse_as_unknown_elsewhere`)."""
    refuse_as_unknown_elsewhere(ctx, account_id=account_id, kind=kind, name=name)
    return account_get(account_id)


def entity_describe(*, ctx: OperationContext, account: Account, kind: str, name: str) -> Entity:
    """One user, role or group, once the caller may act on it. An unknown name is authorized on the ARN it would
    have at path "/" before it is reported, so a caller without permission learns nothing about which exist; a
    principal of another account is answered as unknown (`refuse_as_unknown_elsewhere`)."""
    refuse_as_unknown_elsewhere(ctx, account_id=account.account_id, kind=kind, name=name)
    found = entity_find(account, kind, name)
    unknown_arn = ENTITY_KINDS[kind](account.account_id, "/", name[:128])
    authorize(ctx, resource=found.arn if found is not None else unknown_arn)
    if found is None:
        raise no_such_entity(kind, name)
    return found
