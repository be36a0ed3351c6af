"""Reads of principals: finding accounts and entities, resolving an access key to a caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q

from keys.crypto.sealing import SealingError
from kmsconsole.core import errors
from kmsconsole.core.context import Caller
from kmsconsole.core.jsonbody import text_problem
from kmsconsole.core.rootkey import RootKey, open_sealed
from kmsconsole.core.rowmac import integrity_failure, read_consistently
from kmsconsole.core.token_digests import digest_now, matching_key
from kmsconsole.generations.cache import GenerationalCache, current_snapshot
from kmsconsole.generations.scopes import iam_scope
from policies.models import AccessKey, Account, IamGroup, IamRole, IamUser, IdentityPolicy

Entity = IamUser | IamRole | IamGroup
ENTITY_MODELS: dict[str, type[Entity]] = {"user": IamUser, "role": IamRole, "group": IamGroup}

# Identifiers from a URL, a form or a body that PostgreSQL text cannot hold (a NUL, a lone surrogate) name
# nothing: "not found", like any unknown one, without a query (which would fail). Others are looked up as given,
# so rows stored under an older, looser rule (a name ending in a newline) can still be found and removed.


def queryable(text: str) -> bool:
    return text_problem(text) is None


def account_get(account_id: str) -> Account:
    found = Account.objects.filter(account_id=account_id).first() if queryable(account_id) else None
    if found is None:
        raise errors.NoSuchEntityException(f"The account {account_id[:32]} cannot be found.")
    return found


def entity_find(account: Account, kind: str, name: str) -> Entity | None:
    """The account's user, role or group (`kind`) named `name`, or None; never queried for an invalid name."""
    model = ENTITY_MODELS[kind]
    if not queryable(name):
        return None
    return model.objects.select_related("account").filter(account=account, name=name).first()


def entity_get(account: Account, kind: str, name: str) -> Entity:
    """The account's user, role or group named `name`; NoSuchEntityException when there is none."""
    found = entity_find(account, kind, name)
    if found is None:
        raise no_such_entity(kind, name)
    return found


def no_such_entity(kind: str, name: str) -> errors.KmsError:
    return errors.NoSuchEntityException(f"The {kind} with name {name[:128]} cannot be found.")


def user_get(account: Account, name: str) -> IamUser:
    user = entity_get(account, "user", name)
    assert isinstance(user, IamUser)  # noqa: S101 - narrows the shared lookup's return type
    return user


def role_get(account: Account, name: str) -> IamRole:
    """The role, checked against its row MAC (AssumeRole reads its maximum session duration)."""
    role = entity_get(account, "role", name)
    assert isinstance(role, IamRole)  # noqa: S101 - narrows the shared lookup's return type
    role.check_row()
    return role


def group_get(account: Account, name: str) -> IamGroup:
    group = entity_get(account, "group", name)
    assert isinstance(group, IamGroup)  # noqa: S101 - narrows the shared lookup's return type
    return group


SESSION_TOKEN_PURPOSE = "session-token/v1"  # noqa: S105 - a subkey's purpose, not a secret


def session_token_digest(token: str) -> tuple[str, str]:
    """Session tokens are stored only as a keyed hash; a database reader cannot use them. (The digest under the
    current root key, that key's id.)"""
    return digest_now(SESSION_TOKEN_PURPOSE, token.encode())


def session_token_key(token: str, stored: str) -> RootKey | None:
    """The readable root key `stored` is the token's digest under (constant time, every key compared), or None:
    a session made before a rotation keeps working until the key it is under is retired
    (`policies.session_tokens`)."""
    return matching_key(SESSION_TOKEN_PURPOSE, token.encode(), stored)


@dataclass(frozen=True)
class Credentials:
    """What SigV4 verification needs about an access key: its secret and who it stands for."""

    caller: Caller
    # The unsealed secret: kept in this process's memory only (never in a repr, a log line or an error).
    secret: str = field(repr=False)
    session_token_digest: str = field(default="", repr=False)
    expires_at: datetime | None = None

    @property
    def is_temporary(self) -> bool:
        return self.expires_at is not None


# Access key id -> its credentials, under the generation of its account's principals (`iam:<account id>`): a
# deactivated or deleted key, or a deleted owner, bumps it.
_CREDENTIALS: GenerationalCache[str, Credentials] = GenerationalCache("credentials", maxsize=20_000)


def credentials_for(access_key_id: str) -> Credentials | None:
    """The active access key's credentials, or None when the key is unknown or inactive.

    Inside a request snapshot (the AWS endpoint's hot operations) the answer comes from the process cache while
    the account's principals are unchanged; an unknown or inactive key is never cached.
    """
    snapshot = current_snapshot()
    if snapshot is None:
        return _load_credentials(access_key_id)
    cached = _CREDENTIALS.get(access_key_id, snapshot)
    if cached is not None:
        return cached
    account_id = (
        AccessKey.objects.filter(access_key_id=access_key_id)
        .values_list("account__account_id", flat=True)
        .first()
    )
    if account_id is None:
        return None
    # The generation is read before the rows it vouches for (a key never moves to another account).
    scope = iam_scope(account_id)
    generation = snapshot.value(scope)
    credentials = _load_credentials(access_key_id)
    if credentials is None or credentials.caller.account_id != account_id:
        return credentials
    return _CREDENTIALS.put(access_key_id, credentials, ((scope, generation),))


def cached_account_of(access_key_id: str) -> str | None:
    """The account a cached access key belonged to when cached (unvalidated: a hint for what to prefetch)."""
    entry = _CREDENTIALS.peek(access_key_id)
    return entry[1].caller.account_id if entry is not None else None


def _load_credentials(access_key_id: str) -> Credentials | None:
    key = (
        # The owners' accounts come in the same query: their ARNs need the account id.
        AccessKey.objects.select_related("account", "user__account", "session__role__account")
        .filter(access_key_id=access_key_id, status=AccessKey.Status.ACTIVE)
        .first()
    )
    if key is None:
        return None
    # The row MAC binds the key to its kind, status and owner: a key re-pointed or reactivated in the database
    # fails here, closed (KMSInternalException, audited by the endpoint), before its secret is even opened.
    key.check_row()
    try:
        secret = open_sealed(bytes(key.secret_sealed), bound_to=key.sealing_identity).decode()
    except SealingError:
        raise integrity_failure(AccessKey.MAC_KIND, key.pk) from None
    account_id = key.account.account_id
    if key.kind == AccessKey.Kind.USER and key.user is not None:
        user = key.user
        caller = Caller(
            arn=user.arn,
            account_id=account_id,
            principal_type="IAMUser",
            access_key_id=access_key_id,
            user_pk=user.pk,
            username=user.name,
            userid=user.unique_id,
        )
        return Credentials(caller=caller, secret=secret)
    if key.kind == AccessKey.Kind.SESSION and key.session is not None:
        session = key.session
        role = session.role
        caller = Caller(
            arn=session.arn,
            account_id=account_id,
            principal_type="AssumedRole",
            access_key_id=access_key_id,
            role_pk=role.pk,
            session_pk=session.pk,
            userid=f"{role.unique_id}:{session.session_name}",
            role_arn=role.arn,
        )
        return Credentials(
            caller=caller,
            secret=secret,
            session_token_digest=session.session_token_digest,
            expires_at=session.expires_at,
        )
    if key.kind != AccessKey.Kind.ROOT:
        # A user or session key whose owner is gone: never fall back to a more powerful caller.
        return None
    caller = Caller(
        arn=key.account.root_arn,
        account_id=account_id,
        principal_type="Root",
        access_key_id=access_key_id,
        userid=account_id,
    )
    return Credentials(caller=caller, secret=secret)


def identity_policies_for(caller: Caller) -> list[IdentityPolicy]:
    """The identity policies that apply to a caller: a user's own and its groups', or a session's role's.

    The account root has none: AWS treats it as the account itself, covered by the key policy's account statement.
    Every row is checked against its MAC, and so is each owner (the user, its groups, the role), whose MAC covers
    the set of its policies and, for a user, its group memberships: a policy or a membership edited, added or
    deleted in the database fails closed (KMSInternalException). The request path calls this only when it
    (re)loads its cache (`policies.authorization.identity_policies`).
    """
    return read_consistently(lambda: _checked_identity_policies(caller))


def _checked_identity_policies(caller: Caller) -> list[IdentityPolicy]:
    owners = ("user", "group", "role")
    if caller.user_pk is not None:
        user = IamUser.objects.select_related("account").filter(pk=caller.user_pk).first()
        if user is None:
            return []
        groups = list(user.groups.select_related("account"))
        policies = list(
            IdentityPolicy.objects.select_related(*owners).filter(
                Q(user_id=user.pk) | Q(group_id__in=[group.pk for group in groups])
            )
        )
        user.check_loaded(
            [group.unique_id for group in groups],
            [policy for policy in policies if policy.user_id == user.pk],
        )
        for group in groups:
            group.check_loaded([policy for policy in policies if policy.group_id == group.pk])
    elif caller.role_pk is not None:
        role = IamRole.objects.select_related("account").filter(pk=caller.role_pk).first()
        if role is None:
            return []
        policies = list(IdentityPolicy.objects.select_related(*owners).filter(role_id=role.pk))
        role.check_loaded(policies)
    else:
        return []
    for policy in policies:
        policy.check_row()
    return policies
