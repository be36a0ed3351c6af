"""API token services: create (the token is returned once), revoke, and verify a presented token.

Across a root-key rotation (kmsconsole.core.token_digests): a token is verified under every readable root key, and
one verified under a previous key is hashed again under the current one in the same request. The dependent "API
token digests" (registered by `kmsconsole.api.token_dependents`) counts the live tokens nobody has used since.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from kmsconsole.api.models import ApiToken
from kmsconsole.core import errors
from kmsconsole.core.rootkey import root_keys
from kmsconsole.core.token_digests import digest_now, matching_key, rehash_quietly
from kmsconsole.operations import OperationContext
from policies.authorization import authorize
from policies.models import Account, IamUser
from policies.principal_locks import held_for_a_child
from policies.selectors import no_such_entity, user_get

TOKEN_SCHEME = "kmsc"  # noqa: S105 - the token prefix, not a secret
MAX_EXPIRY_DAYS = 3650
DIGEST_PURPOSE = "api-token/v1"
# What the stored digest is compared with when no token has the presented prefix (never matches a real one).
_NO_DIGEST = "0" * 64


def _message(prefix: str, secret: str) -> bytes:
    return f"{prefix}:{secret}".encode()


def secret_digest(prefix: str, secret: str) -> str:
    """A keyed hash (bound to the prefix) under the current root key: a database reader cannot use or forge a
    token."""
    return digest_now(DIGEST_PURPOSE, _message(prefix, secret))[0]


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
    digest, key_id = digest_now(DIGEST_PURPOSE, _message(prefix, secret))
    token = ApiToken.objects.create(
        principal=user,
        name=name,
        prefix=prefix,
        secret_digest=digest,
        secret_digest_key_id=key_id,
        expires_at=expires_at,
    )
    return CreatedToken(token=token, plaintext=f"{TOKEN_SCHEME}_{prefix}_{secret}")


def api_token_list(*, ctx: OperationContext, user: IamUser) -> QuerySet[ApiToken]:
    """A user's tokens, newest first (never their secrets). kmsconsole:ListApiTokens on the user's ARN."""
    authorize(ctx, resource=user.arn)
    return ApiToken.objects.filter(principal=user).order_by("-created_at", "-id")


def api_token_revoke(
    *, ctx: OperationContext, token_id: int, owner: IamUser | None = None, account: Account | None = None
) -> ApiToken:
    """Revoke a token at once. kmsconsole:RevokeApiToken on its user's ARN. With `owner`, only that user's tokens
    count (authorized on the owner before an unknown token is reported); with `account`, only its users' (the
    operator names the account whose trail records the revocation: it must be the token owner's, or a token of
    another account would be revoked in a trail its owner never reads).

    The row is locked and checked before it is written, as every writer of a MAC-protected row does: the token's
    first use after a rotation re-hashes it (`_rehash`, NOWAIT: it gives way to this lock), and a revocation that
    saved a row read before that re-hash committed would MAC the old digest beside the new one (a false integrity
    alarm, and a token no retirement could end)."""
    # Ids beyond the id column's range name no token (and must not reach the database as an overflow).
    in_range = 0 < token_id < 2**63
    tokens = (
        ApiToken.objects.select_for_update(of=("self",))
        .select_related("principal__account")
        .filter(pk=token_id if in_range else 0)
    )
    if owner is not None:
        authorize(ctx, resource=owner.arn)
        tokens = tokens.filter(principal=owner)
    if account is not None:
        tokens = tokens.filter(principal__account=account)
    token = tokens.first()
    if token is None:
        raise errors.NotFoundException(f"API token {token_id} does not exist.")
    if owner is None:
        authorize(ctx, resource=token.principal.arn)
    if token.revoked_at is None:
        token.check_row()  # the MAC made below covers what is verified here (the digest above all)
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def token_principal(presented: str) -> tuple[ApiToken, IamUser] | None:
    """The live token a presented bearer value stands for, or None (unknown, wrong secret, expired, revoked).
    A token verified under a previous root key is hashed again under the current one (`_rehash`)."""
    scheme, _, rest = presented.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != TOKEN_SCHEME or not prefix or not secret:
        return None
    token = ApiToken.objects.select_related("principal__account").filter(prefix=prefix).first()
    # Compare even when no row matched, so timing says nothing about which prefixes exist.
    under = matching_key(
        DIGEST_PURPOSE, _message(prefix, secret), token.secret_digest if token is not None else _NO_DIGEST
    )
    if under is None or token is None:
        return None
    if token.revoked_at is not None or token.expires_at <= timezone.now():
        return None
    try:
        # The row MAC binds the token to its owner, expiry and revocation: a token re-pointed at another user,
        # un-revoked or extended in the database is refused (logged as an integrity failure), never honoured.
        token.check_row()
    except errors.KmsError:
        return None
    if under.key_id != root_keys().current.key_id:
        rehash_quietly("API token", token.pk, lambda: _rehash(token, prefix, secret))
    return token, token.principal


def _rehash(verified: ApiToken, prefix: str, secret: str) -> bool:
    """Hash a token just verified under a previous root key again under the current one, and MAC its row again
    (the MAC covers the digest). Only what is verified under the row lock is rewritten: the locked row must
    still hold the digest the token matched and pass its row check, so a row revoked, re-pointed or changed
    meanwhile is left alone (the request already verified keeps its answer, as without the re-hash). The token
    row is the only row locked (NOWAIT) and written, and no generation row covers it: tokens are looked up at
    every request, never cached."""
    locked = (
        ApiToken.objects.select_for_update(nowait=True, of=("self",))
        .select_related("principal__account")
        .filter(pk=verified.pk)
        .first()
    )
    if locked is None or not hmac.compare_digest(locked.secret_digest, verified.secret_digest):
        return False
    if matching_key(DIGEST_PURPOSE, _message(prefix, secret), locked.secret_digest) is None:
        return False
    locked.check_row()
    locked.secret_digest, locked.secret_digest_key_id = digest_now(DIGEST_PURPOSE, _message(prefix, secret))
    # MacProtectedRow.save: the row MAC is made again, over the fields just verified and the new digest.
    locked.save(update_fields=["secret_digest", "secret_digest_key_id"])
    return True
