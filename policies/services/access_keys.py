"""Access keys: long-term keys of users and of an account's root (create, activate or deactivate, delete, list),
and the storing of every new key, the temporary keys of role sessions included."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from kmsconsole.core import errors
from kmsconsole.core.rootkey import sealer
from kmsconsole.operations import OperationContext
from policies import arns
from policies.authorization import authorize
from policies.models import AccessKey, Account, IamUser, RoleSession
from policies.principal_locks import held_for_a_child
from policies.selectors import no_such_entity, queryable
from policies.services.lookups import entity_describe

# IAM allows two access keys per user (and per root).
ACCESS_KEYS_PER_OWNER = 2


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
