"""sts:AssumeRole: a session of a role and its temporary credentials."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies import arns
from policies.authorization import authorize
from policies.models import AccessKey, Account, RoleSession
from policies.principal_locks import held_for_a_child
from policies.selectors import no_such_entity, role_get, session_token_digest
from policies.services.access_keys import _store_access_key

# sts:AssumeRole DurationSeconds lower bound (the upper bound is the role's maximum session duration).
SESSION_MIN_SECONDS = 900


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
