"""Grant tokens: self-contained, authenticated proofs that a grant was made (kms-spec §8.5).

CreateGrant returns one; a request that carries it in `GrantTokens` is authorized by that grant before the grant
has propagated. A token is base64url (no padding) of

    version (1 byte) | nonce (16) | grant id (32, the 64 hex digits as bytes) | issuing account (12 ASCII digits)
    | key ARN (UTF-8) | HMAC-SHA256 (32)

where the MAC, under a subkey of the root key, covers everything before it. The nonce makes every CreateGrant's
token different, as on AWS (all tokens of a grant are interchangeable). Tokens are not secret in AWS's model, but
we keep them out of the audit trail and logs as AWS does. `read_token` only proves a token was issued here for
that grant and key; whether the grant still exists is the caller's question (a retired or revoked grant's token
must not work again: `grants.selectors.token_grant_ids`).

Across a root-key rotation: a token is made under the current root key and read under any readable one, so a
token issued before a rotation works until the previous key is retired; after that it is InvalidGrantToken, like
any token this service did not issue. Nothing keeps it, so nothing counts it: a grant token is only needed until
its grant has propagated (seconds), after which the grant itself allows what the token did.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from kmsconsole.core import errors
from kmsconsole.core.rootkey import mac_matches, subkey

TOKEN_VERSION = 1
MAC_PURPOSE = "grant-token/v1"
_NONCE_BYTES = 16
_GRANT_ID_BYTES = 32
_ACCOUNT_CHARS = 12
_MAC_BYTES = 32
_FIXED = 1 + _NONCE_BYTES + _GRANT_ID_BYTES + _ACCOUNT_CHARS
# The model caps GrantTokenType at 8192 characters; a key ARN is far shorter.
MAX_TOKEN_CHARS = 8192
INVALID_TOKEN_MESSAGE = "The grant token is not valid."  # noqa: S105 - a message, not a secret


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says: which grant, on which key, issued in which account."""

    grant_id: str
    key_arn: str
    issuing_account: str


def _mac(body: bytes) -> bytes:
    return hmac.new(subkey(MAC_PURPOSE), body, hashlib.sha256).digest()


def issue_token(*, grant_id: str, key_arn: str, issuing_account: str) -> str:
    """A fresh token for the grant (a new nonce every time)."""
    grant_bytes = bytes.fromhex(grant_id)
    account = issuing_account.encode("ascii")
    if len(grant_bytes) != _GRANT_ID_BYTES or len(account) != _ACCOUNT_CHARS:
        raise ValueError("a grant id is 64 hex digits and an account 12 digits")
    body = (
        bytes([TOKEN_VERSION]) + secrets.token_bytes(_NONCE_BYTES) + grant_bytes + account + key_arn.encode()
    )
    return base64.urlsafe_b64encode(body + _mac(body)).decode().rstrip("=")


def read_token(token: str) -> TokenClaims:
    """The claims of a token this service issued; InvalidGrantTokenException for anything else."""
    invalid = errors.InvalidGrantTokenException(INVALID_TOKEN_MESSAGE)
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise invalid from None
    if len(raw) <= _FIXED + _MAC_BYTES or raw[0] != TOKEN_VERSION:
        raise invalid
    body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if not mac_matches(MAC_PURPOSE, body, mac.hex()):  # under any readable root key, constant time
        raise invalid
    offset = 1 + _NONCE_BYTES
    grant_id = body[offset : offset + _GRANT_ID_BYTES].hex()
    offset += _GRANT_ID_BYTES
    try:
        account = body[offset : offset + _ACCOUNT_CHARS].decode("ascii")
        key_arn = body[offset + _ACCOUNT_CHARS :].decode()
    except UnicodeDecodeError:
        raise invalid from None
    return TokenClaims(grant_id=grant_id, key_arn=key_arn, issuing_account=account)
