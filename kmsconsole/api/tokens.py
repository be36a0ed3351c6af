"""API token services: create (the token is returned once), revoke, and verify a presented token."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from kmsconsole.api.models import ApiToken
from kmsconsole.core import errors
from kmsconsole.core.rootkey import subkey
from kmsconsole.operations import OperationContext
from policies.authorization import authorize
from policies.models import Account, IamUser
from policies.principal_locks import held_for_a_child
from policies.selectors import no_such_entity, user_get

TOKEN_SCHEME = "kmsc"  # noqa: S105 - the token prefix, not a secret
MAX_EXPIRY_DAYS = 3650


def secret_digest(prefix: str, secret: str) -> str:
    """A keyed hash (bound to the prefix): a database reader cannot use or forge a token."""
    message = f"{prefix}:{secret}".encode()
    return hmac.new(subkey("api-token/v1"), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    plaintext: str


def api_token_create(
    *,
    ctx: OperationContext,
    account: Account,
    user_name: str,
    name: str = "",
    expires_in_days: int | None = None,
) -> CreatedToken:
    """Issue a token for an IAM user. kmsconsole:CreateApiToken on the user's ARN. Every token expires: after
    `expires_in_days`, or KMS_API_TOKEN_TTL_DAYS when not given."""
    user = user_get(account, user_name)
    authorize(ctx, resource=user.arn)
    if not held_for_a_child(user):  # deleted meanwhile; else a deletion waits and revokes this token too
        raise no_such_entity("user", user_name)
    if expires_in_days is None:
        expires_in_days = settings.KMS_API_TOKEN_TTL_DAYS
    errors.check_value_range("expiresInDays", expires_in_days, minimum=1, maximum=MAX_EXPIRY_DAYS)
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(days=expires_in_days)
    token = ApiToken.objects.create(
        principal=user,
        name=name,
        prefix=prefix,
        secret_digest=secret_digest(prefix, secret),
        expires_at=expires_at,
    )
    return CreatedToken(token=token, plaintext=f"{TOKEN_SCHEME}_{prefix}_{secret}")


def api_token_list(*, ctx: OperationContext, user: IamUser) -> QuerySet[ApiToken]:
    """A user's tokens, newest first (never their secrets). kmsconsole:ListApiTokens on the user's ARN."""
    authorize(ctx, resource=user.arn)
    return ApiToken.objects.filter(principal=user).order_by("-created_at", "-id")


def api_token_revoke(*, ctx: OperationContext, token_id: int, owner: IamUser | None = None) -> ApiToken:
    """Revoke a token at once. kmsconsole:RevokeApiToken on its user's ARN. With `owner`, only that user's tokens
    count (authorized on the owner before an unknown token is reported)."""
    # Ids beyond the id column's range name no token (and must not reach the database as an overflow).
    in_range = 0 < token_id < 2**63
    tokens = ApiToken.objects.select_related("principal__account").filter(pk=token_id if in_range else 0)
    if owner is not None:
        authorize(ctx, resource=owner.arn)
        tokens = tokens.filter(principal=owner)
    token = tokens.first()
    if token is None:
        raise errors.NotFoundException(f"API token {token_id} does not exist.")
    if owner is None:
        authorize(ctx, resource=token.principal.arn)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def token_principal(presented: str) -> tuple[ApiToken, IamUser] | None:
    """The live token a presented bearer value stands for, or None (unknown, wrong secret, expired, revoked)."""
    scheme, _, rest = presented.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != TOKEN_SCHEME or not prefix or not secret:
        return None
    token = ApiToken.objects.select_related("principal__account").filter(prefix=prefix).first()
    # Compare even when no row matched, so timing says nothing about which prefixes exist.
    expected = token.secret_digest if token is not None else "0" * 64
    if not hmac.compare_digest(expected, secret_digest(prefix, secret)) or token is None:
        return None
    if token.revoked_at is not None or token.expires_at <= timezone.now():
        return None
    try:
        # The row MAC binds the token to its owner, expiry and revocation: a token re-pointed at another user,
        # un-revoked or extended in the database is refused (logged as an integrity failure), never honoured.
        token.check_row()
    except errors.KmsError:
        return None
    return token, token.principal
