"""Creating accounts, users, roles and groups, and group membership (AddUserToGroup, RemoveUserFromGroup,
GetGroup)."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies import arns, engine
from policies.authorization import authorize
from policies.models import Account, IamGroup, IamRole, IamUser
from policies.selectors import user_get
from policies.services.entity_checks import _check_name, _check_path, locked_and_checked
from policies.services.lookups import entity_describe


def account_create(*, ctx: OperationContext, account_id: str) -> Account:
    """Create an account (a 12-digit id); its root principal exists with it."""
    if not engine.is_account_id(account_id):
        raise errors.ValidationException("An account id is 12 ASCII digits (0-9).")
    # Creating an account is account-level (kmsconsole:CreateAccount on "*"): the new account is nobody's yet, so
    # its root ARN, a resource of another account, could never be allowed by identity policies alone.
    authorize(ctx, resource="*")
    account, created = Account.objects.get_or_create(account_id=account_id)
    if not created:
        raise errors.EntityAlreadyExistsException(f"Account {account_id} already exists.")
    return account


def _create_entity(
    model: type[IamUser | IamRole | IamGroup],
    *,
    account: Account,
    name: str,
    path: str,
    what: str,
    max_length: int,
    id_prefix: str,
) -> IamUser | IamRole | IamGroup:
    _check_name(name, what=what, max_length=max_length)
    _check_path(path)
    try:
        with transaction.atomic():
            return model.objects.create(
                account=account, name=name, path=path, unique_id=arns.new_unique_id(id_prefix)
            )
    except IntegrityError:
        noun = model.__name__.removeprefix("Iam").lower()
        raise errors.EntityAlreadyExistsException(
            f"{noun.capitalize()} with name {name} already exists."
        ) from None


def user_create(*, ctx: OperationContext, account: Account, user_name: str, path: str = "/") -> IamUser:
    authorize(ctx, resource=arns.user_arn(account.account_id, path, user_name))
    user = _create_entity(
        IamUser,
        account=account,
        name=user_name,
        path=path,
        what="userName",
        max_length=arns.USER_NAME_MAX,
        id_prefix="AIDA",
    )
    assert isinstance(user, IamUser)  # noqa: S101 - narrows the shared helper's return type
    return user


def role_create(*, ctx: OperationContext, account: Account, role_name: str, path: str = "/") -> IamRole:
    authorize(ctx, resource=arns.role_arn(account.account_id, path, role_name))
    role = _create_entity(
        IamRole,
        account=account,
        name=role_name,
        path=path,
        what="roleName",
        max_length=arns.ROLE_NAME_MAX,
        id_prefix="AROA",
    )
    assert isinstance(role, IamRole)  # noqa: S101 - narrows the shared helper's return type
    return role


def group_create(*, ctx: OperationContext, account: Account, group_name: str, path: str = "/") -> IamGroup:
    authorize(ctx, resource=arns.group_arn(account.account_id, path, group_name))
    group = _create_entity(
        IamGroup,
        account=account,
        name=group_name,
        path=path,
        what="groupName",
        max_length=arns.GROUP_NAME_MAX,
        id_prefix="AGPA",
    )
    assert isinstance(group, IamGroup)  # noqa: S101 - narrows the shared helper's return type
    return group


def group_add_user(*, ctx: OperationContext, account: Account, group_name: str, user_name: str) -> None:
    group = entity_describe(ctx=ctx, account=account, kind="group", name=group_name)
    assert isinstance(group, IamGroup)  # noqa: S101 - narrows the shared lookup's return type
    # The group first (as group_delete locks it): a member added while the group is being deleted waits, then
    # finds it gone, instead of leaving a user whose MAC covers a group that no longer exists.
    group = locked_and_checked(group)
    user = locked_and_checked(user_get(account, user_name))  # the user's row MAC covers its memberships
    group.members.add(user)
    user.seal()


def group_remove_user(*, ctx: OperationContext, account: Account, group_name: str, user_name: str) -> None:
    """iam:RemoveUserFromGroup on the group; the user must be a member."""
    group = entity_describe(ctx=ctx, account=account, kind="group", name=group_name)
    assert isinstance(group, IamGroup)  # noqa: S101 - narrows the shared helper's return type
    user = user_get(account, user_name)
    if not group.members.filter(pk=user.pk).exists():
        raise errors.NoSuchEntityException(f"The user {user_name[:64]} is not in group {group_name[:128]}.")
    user = locked_and_checked(user)
    group.members.remove(user)
    user.seal()


def group_members(
    *, ctx: OperationContext, account: Account, group_name: str
) -> tuple[IamGroup, list[IamUser]]:
    """iam:GetGroup: the group and its users, by name."""
    group = entity_describe(ctx=ctx, account=account, kind="group", name=group_name)
    assert isinstance(group, IamGroup)  # noqa: S101 - narrows the shared helper's return type
    return group, list(group.members.select_related("account").order_by("name", "pk"))
