"""Console sign-ins that act as an IAM user: create one, delete one or all of a user's."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser

from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies.authorization import authorize
from policies.models import Account, ConsoleIdentity, IamUser
from policies.principal_locks import held_for_a_child
from policies.selectors import no_such_entity, queryable
from policies.services.lookups import entity_describe


def console_login_create(
    *, ctx: OperationContext, iam_user: IamUser, username: str, password: str, superuser: bool = False
) -> AbstractBaseUser:
    """A console sign-in that acts as `iam_user`: what it does in the console is done as that principal."""
    authorize(ctx, resource=iam_user.arn)
    if not held_for_a_child(iam_user):  # deleted meanwhile; else a deletion waits and sees the login
        raise no_such_entity("user", iam_user.name)
    user_model = get_user_model()
    if user_model.objects.filter(username=username).exists():
        raise errors.EntityAlreadyExistsException(f"Console login {username} already exists.")
    if superuser:
        login = user_model.objects.create_superuser(username=username, password=password)
    else:
        login = user_model.objects.create_user(username=username, password=password)
    ConsoleIdentity.objects.create(login=login, iam_user=iam_user)
    return login


def console_login_delete(
    *, ctx: OperationContext, account: Account, user_name: str, login: str | None
) -> int:
    """kmsconsole:DeleteConsoleLogin on the user: the console sign-in `login` that acts as it is deleted (IAM's
    DeleteLoginProfile), or with `login` None every one of them (the console's deletion page, which does not show
    their names), and their console sessions with them (a session of a login that no longer exists signs in
    nobody). Returns how many were deleted."""
    user = entity_describe(ctx=ctx, account=account, kind="user", name=user_name)
    assert isinstance(user, IamUser)  # noqa: S101 - narrows the shared lookup's return type
    found = ConsoleIdentity.objects.select_related("login").filter(iam_user=user).order_by("pk")
    if login is not None:
        found = found.filter(login__username=login) if queryable(login) else found.none()
    links = list(found)
    if not links:
        if login is None:
            raise errors.NoSuchEntityException(f"The user {user_name[:64]} has no console login.")
        raise errors.NoSuchEntityException(
            f"The console login {login[:150]} of user {user_name[:64]} cannot be found."
        )
    for link in links:
        link.login.delete()  # the link goes with it (on_delete=CASCADE)
    return len(links)
