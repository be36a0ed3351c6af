"""Writes to principals: accounts, users, roles, groups, identity policies, access keys, role sessions.

Every function takes the OperationContext of an operation run through `kmsconsole.operations.perform`, asks
`authorize()` before changing anything, and returns plain data that the interface shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from kmsconsole.api.models import ApiToken
from kmsconsole.audit.recorder import events_at_the_end
from kmsconsole.core import errors
from kmsconsole.core.rootkey import sealer
from kmsconsole.core.rowmac import locked_and_checked as _locked_and_checked
from kmsconsole.operations import OperationContext
from policies import arns, engine
from policies.authorization import authorize, would_allow
from policies.deletion import deletion_blockers, unbind_deleted_principal
from policies.models import (
    AccessKey,
    Account,
    ConsoleIdentity,
    IamGroup,
    IamRole,
    IamUser,
    IdentityPolicy,
    RoleSession,
)
from policies.policy_documents import validate_identity_policy
from policies.principal_locks import held_for_a_child
from policies.selectors import (
    ENTITY_MODELS,
    Entity,
    account_get,
    entity_find,
    no_such_entity,
    queryable,
    role_get,
    session_token_digest,
    user_get,
)

_Entity = TypeVar("_Entity", IamUser, IamRole, IamGroup)

# sts:AssumeRole DurationSeconds lower bound (the upper bound is the role's maximum session duration).
SESSION_MIN_SECONDS = 900
# IAM allows two access keys per user (and per root).
ACCESS_KEYS_PER_OWNER = 2


_KINDS = {IamUser: "user", IamRole: "role", IamGroup: "group"}


def locked_and_checked(row: _Entity) -> _Entity:
    """The user, role or group reloaded under its row lock and checked (`kmsconsole.core.rowmac`); one deleted
    between the lookup and the lock (a racing DeleteUser, DeleteRole or DeleteGroup) is NoSuchEntity, as if the
    lookup had come after it, never a fault."""
    try:
        return _locked_and_checked(row)
    except ObjectDoesNotExist:
        raise no_such_entity(_KINDS[type(row)], row.name) from None


def _check_name(value: str, *, what: str, max_length: int) -> None:
    if not arns.is_valid_name(value, max_length):
        raise errors.ValidationException(
            f"The specified value for {what} is invalid. It must contain 1-{max_length} characters of "
            "letters, digits and +=,.@_-"
        )


def _check_path(path: str) -> None:
    if not arns.is_valid_path(path):
        raise errors.ValidationException(
            f"The specified value for path is invalid. It must be / or begin and end with / (at most "
            f"{arns.PATH_MAX} characters), with names of printable ASCII characters between the slashes. Empty "
            "names (//) are not allowed, nor * or ?: in the principal's ARN, which policies name it by, they "
            "would read as wildcards."
        )


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


@dataclass(frozen=True)
class DeletedEntity:
    """What DeleteUser, DeleteRole or DeleteGroup removed, for the deleting caller's own audit event: the entity,
    the sessions of a role that ended with it, and the integrated services it could act as. Never the keys of
    other accounts whose policies named it (each of those has its own event in its owner's trail)."""

    kind: str
    name: str
    arn: str
    unique_id: str
    sessions_ended: int = 0
    integrated_services: tuple[str, ...] = ()
    api_tokens_revoked: int = 0

    def audit_elements(self) -> dict[str, object]:
        noun = self.kind.capitalize()
        elements: dict[str, object] = {f"{noun}Name": self.name, f"{noun}Id": self.unique_id, "Arn": self.arn}
        if self.kind == "role":
            elements["RoleSessionsEnded"] = self.sessions_ended
        if self.kind == "user":
            elements["ApiTokensRevoked"] = self.api_tokens_revoked  # a number: never a token's id or prefix
        if self.integrated_services:
            elements["IntegratedServicesUnbound"] = list(self.integrated_services)
        return elements


def _entity_delete(ctx: OperationContext, entity: Entity) -> DeletedEntity:
    """Delete an entity the caller was authorized on, in the operation's one transaction: refused with AWS's
    DeleteConflict while anything of `deletion_blockers` is left; a role's sessions (and their temporary keys)
    end with it, as do a user's API tokens (the live ones counted); a user or role is unbound from every key
    policy, grant and integrated service naming it first."""
    entity = locked_and_checked(entity)  # orders concurrent membership and policy changes of the entity
    blockers = deletion_blockers(entity)
    if blockers:
        raise errors.DeleteConflictException(blockers[0].message)
    kind = _KINDS[type(entity)]
    # Counted now, deleted last (below): no session or token is added meanwhile, as AssumeRole and
    # CreateApiToken lock the entity's row first (`held_for_a_child`), which this transaction holds.
    sessions = RoleSession.objects.filter(role=entity) if isinstance(entity, IamRole) else None
    ended = sessions.count() if sessions is not None else 0
    tokens = ApiToken.objects.filter(principal=entity) if isinstance(entity, IamUser) else None
    revoked = (
        tokens.filter(revoked_at__isnull=True, expires_at__gt=timezone.now()).count()
        if tokens is not None
        else 0
    )
    # The lock order of `policies.principal_locks`: the keys, grants and integrated services naming the entity
    # are locked (by the unbinding) before anything here writes the account's IAM generation row (deleting a
    # session, a session's access key or the entity bumps it), and the unbinding's events go on the chain once
    # everything else is written: the head is the last lock this transaction takes, as it is every other
    # change's (a CreateUser in the account holds the generation row while it waits for the head; another
    # deletion in the account holds a key this one rewrites while it waits for the generation row).
    with events_at_the_end() as events:
        services = (
            unbind_deleted_principal(ctx, entity, events) if isinstance(entity, IamUser | IamRole) else []
        )
        deleted = DeletedEntity(
            kind, entity.name, entity.arn, entity.unique_id, ended, tuple(services), revoked
        )
        if sessions is not None:
            sessions.delete()  # their access keys with them: refused at once (the credentials cache is bumped)
        if tokens is not None:
            tokens.delete()  # refused from now on: a token is looked up by its row at every request
        entity.delete()
    return deleted


def user_delete(*, ctx: OperationContext, account: Account, user_name: str) -> DeletedEntity:
    """iam:DeleteUser on the user: refused while it has access keys, a console login, inline policies or group
    memberships; its API tokens are revoked with it."""
    return _entity_delete(ctx, entity_describe(ctx=ctx, account=account, kind="user", name=user_name))


def role_delete(*, ctx: OperationContext, account: Account, role_name: str) -> DeletedEntity:
    """iam:DeleteRole on the role: refused while it has inline policies; its sessions end with it."""
    return _entity_delete(ctx, entity_describe(ctx=ctx, account=account, kind="role", name=role_name))


def group_delete(*, ctx: OperationContext, account: Account, group_name: str) -> DeletedEntity:
    """iam:DeleteGroup on the group: refused while it has members or inline policies."""
    return _entity_delete(ctx, entity_describe(ctx=ctx, account=account, kind="group", name=group_name))


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


@dataclass(frozen=True)
class NewAccessKey:
    """A freshly created access key. The secret exists in clear only in this object, to be shown once."""

    access_key_id: str
    secret_access_key: str
    owner_name: str
    status: str
    created_at: datetime


def _store_access_key(
    *, account: Account, kind: str, user: IamUser | None = None, session: RoleSession | None = None
) -> NewAccessKey:
    secret = arns.new_secret_access_key()
    key = AccessKey(
        access_key_id=arns.new_access_key_id(temporary=kind == AccessKey.Kind.SESSION),
        account=account,
        kind=kind,
        user=user,
        session=session,
    )
    key.secret_sealed = sealer().seal(secret.encode(), bound_to=key.sealing_identity)
    key.save()
    owner = user.name if user else (session.session_name if session else account.root_arn)
    return NewAccessKey(key.access_key_id, secret, owner, key.status, key.created_at)


def access_key_create(*, ctx: OperationContext, account: Account, user_name: str | None) -> NewAccessKey:
    """A long-term access key for a user, or for the account's root when `user_name` is None."""
    if user_name is None:
        authorize(ctx, resource=account.root_arn)
        existing = AccessKey.objects.filter(account=account, kind=AccessKey.Kind.ROOT)
        user = None
    else:
        # Authorized before an unknown name is reported (entity_describe): a refused caller learns nothing about
        # which users exist.
        user = entity_describe(ctx=ctx, account=account, kind="user", name=user_name)
        assert isinstance(user, IamUser)  # noqa: S101 - narrows the shared lookup's return type
        if not held_for_a_child(user):  # deleted meanwhile; else a deletion waits and sees the new key
            raise no_such_entity("user", user_name)
        existing = AccessKey.objects.filter(user=user)
    if existing.count() >= ACCESS_KEYS_PER_OWNER:
        raise errors.LimitExceededException(
            f"Cannot exceed quota for AccessKeysPerUser: {ACCESS_KEYS_PER_OWNER}"
        )
    kind = AccessKey.Kind.ROOT if user is None else AccessKey.Kind.USER
    return _store_access_key(account=account, kind=kind, user=user)


def _access_keys(access_key_id: str) -> QuerySet[AccessKey]:
    """The access key of that id (none for text PostgreSQL cannot hold, never queried: see policies.selectors)."""
    if not queryable(access_key_id):
        return AccessKey.objects.none()
    return AccessKey.objects.select_related("account", "user").filter(access_key_id=access_key_id)


def _no_such_access_key(access_key_id: str) -> errors.KmsError:
    return errors.NoSuchEntityException(f"The Access Key with id {access_key_id[:32]} cannot be found.")


def _long_term_key(account: Account, access_key_id: str) -> AccessKey:
    key = _access_keys(access_key_id).filter(account=account).exclude(kind=AccessKey.Kind.SESSION).first()
    if key is None:
        raise _no_such_access_key(access_key_id)
    return key


def _authorized_key(
    ctx: OperationContext, account: Account, access_key_id: str, user_name: str | None
) -> AccessKey:
    """A long-term key, once the caller may act on its owner. With `user_name`, only that user's key counts (the
    owner is authorized before an unknown key is reported)."""
    if user_name is None:
        key = _long_term_key(account, access_key_id)
        authorize(ctx, resource=key.user.arn if key.user else account.root_arn)
        return key
    user = entity_describe(ctx=ctx, account=account, kind="user", name=user_name)
    key = _access_keys(access_key_id).filter(user=user).first()
    if key is None:
        raise _no_such_access_key(access_key_id)
    return key


def access_key_set_status(
    *, ctx: OperationContext, account: Account, access_key_id: str, status: str, user_name: str | None = None
) -> AccessKey:
    """Activate or deactivate a long-term access key; a deactivated key fails SigV4 at once."""
    key = _authorized_key(ctx, account, access_key_id, user_name)
    if status not in AccessKey.Status.values:
        raise errors.ValidationException("Status must be Active or Inactive.")
    key.status = status
    key.save(update_fields=["status"])
    return key


def access_key_delete(
    *, ctx: OperationContext, account: Account, access_key_id: str, user_name: str | None = None
) -> None:
    _authorized_key(ctx, account, access_key_id, user_name).delete()


def access_key_list(*, ctx: OperationContext, account: Account, user_name: str) -> QuerySet[AccessKey]:
    """A user's long-term access keys (iam:ListAccessKeys on the user), oldest first. Never their secrets."""
    user = entity_describe(ctx=ctx, account=account, kind="user", name=user_name)
    return AccessKey.objects.filter(user=user).select_related("user").order_by("created_at", "pk")


@dataclass(frozen=True)
class SessionCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime
    assumed_role_arn: str
    assumed_role_id: str


def role_assume(
    *,
    ctx: OperationContext,
    account: Account,
    role_name: str,
    session_name: str,
    duration_seconds: int | None = None,
) -> SessionCredentials:
    """Temporary credentials (ASIA… key, secret and session token) for a session of the role."""
    role = role_get(account, role_name)
    authorize(ctx, resource=role.arn)
    if not arns.SESSION_NAME_PATTERN.fullmatch(session_name):
        raise errors.ValidationException(
            "The specified value for roleSessionName is invalid. It must contain 2-64 characters of "
            "letters, digits and +=,.@_-"
        )
    seconds = duration_seconds if duration_seconds is not None else role.max_session_seconds
    if not SESSION_MIN_SECONDS <= seconds <= max(role.max_session_seconds, SESSION_MIN_SECONDS):
        raise errors.ValidationException(
            f"The requested DurationSeconds exceeds the MaxSessionDuration set for this role "
            f"({role.max_session_seconds}) or is below {SESSION_MIN_SECONDS}."
        )
    if not held_for_a_child(role):  # deleted meanwhile; else a deletion waits for this session and ends it
        raise no_such_entity("role", role_name)
    token = arns.new_session_token()
    digest, digest_key_id = session_token_digest(token)
    session = RoleSession.objects.create(
        role=role,
        session_name=session_name,
        session_token_digest=digest,
        session_token_key_id=digest_key_id,
        expires_at=timezone.now() + timedelta(seconds=seconds),
    )
    key = _store_access_key(account=account, kind=AccessKey.Kind.SESSION, session=session)
    return SessionCredentials(
        access_key_id=key.access_key_id,
        secret_access_key=key.secret_access_key,
        session_token=token,
        expiration=session.expires_at,
        assumed_role_arn=session.arn,
        assumed_role_id=f"{role.unique_id}:{session_name}",
    )


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


def group_members(
    *, ctx: OperationContext, account: Account, group_name: str
) -> tuple[IamGroup, list[IamUser]]:
    """iam:GetGroup: the group and its users, by name."""
    group = entity_describe(ctx=ctx, account=account, kind="group", name=group_name)
    assert isinstance(group, IamGroup)  # noqa: S101 - narrows the shared helper's return type
    return group, list(group.members.select_related("account").order_by("name", "pk"))


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
