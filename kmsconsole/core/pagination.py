"""Opaque Marker/NextMarker pagination as the KMS List* operations use it, and sealed positions.

A marker names the last row returned (its primary key), authenticated so that callers cannot forge positions:
a changed or foreign marker is InvalidMarkerException, never a database error.

A sealed position (`seal_position` / `open_position`) is a page link's cursor for lists whose order or narrowing
must not be read from the link (the console's and the REST API's key lists): only a direction and the primary key
of the row the next page continues from, encrypted and authenticated (AES-256-GCM under a root-key subkey) with
its scope as associated data, so it tells its holder nothing and opens only for the list (caller, account, query
and filters) it was made for.

No cursor is recorded on an audit event (`RECORDED_CURSOR` stands in for it): readers of the trail are other
principals, and a cursor is a position in a list as its maker saw it. The KMS operations' markers stay in their
events' request parameters: each of their pages shows every row it passes (no row is hidden from one caller and
shown to another), so a marker is a position that any principal allowed the operation reaches from its own pages,
and replaying it shows that principal nothing its own pages would not.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Sequence
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.db.models import Model, QuerySet

from kmsconsole.core import errors
from kmsconsole.core.rootkey import readable_macs, refresh_root_keys, root_keys, subkey

_TAG_BYTES = 8
# What an audit event records for a page link's cursor: that the request continued a list, never where.
RECORDED_CURSOR = "(cursor)"
RowT = TypeVar("RowT", bound=Model)


_MARKER_PURPOSE = "pagination/v1"


def _message(scope: str, position: int) -> bytes:
    return f"{scope}:{position}".encode()


def _tag(scope: str, position: int) -> bytes:
    return hmac.new(subkey(_MARKER_PURPOSE), _message(scope, position), hashlib.sha256).digest()[:_TAG_BYTES]


def _tag_matches(scope: str, position: int, tag: bytes) -> bool:
    """Whether `tag` is the marker's tag under a readable root key; every candidate compared in constant time.
    On a miss, once more if the key file was rewritten since this process read it (`refresh_root_keys`: a
    marker another process made under a new key)."""
    return _tag_under_a_readable_key(scope, position, tag) or (
        refresh_root_keys() and _tag_under_a_readable_key(scope, position, tag)
    )


def _tag_under_a_readable_key(scope: str, position: int, tag: bytes) -> bool:
    found = False
    for mac in readable_macs(_MARKER_PURPOSE, _message(scope, position)):
        found |= hmac.compare_digest(bytes.fromhex(mac)[:_TAG_BYTES], tag)
    return found


def encode_marker(scope: str, position: int) -> str:
    raw = position.to_bytes(8, "big") + _tag(scope, position)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# What a List operation answers for a marker it did not issue (AWS's message).
INVALID_MARKER = "The request contains an invalid marker."


def decode_marker(scope: str, marker: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4))
    except (binascii.Error, ValueError):
        raise errors.InvalidMarkerException(INVALID_MARKER) from None
    if len(raw) != 8 + _TAG_BYTES:
        raise errors.InvalidMarkerException(INVALID_MARKER)
    position = int.from_bytes(raw[:8], "big")
    if not _tag_matches(scope, position, raw[8:]):
        raise errors.InvalidMarkerException(INVALID_MARKER)
    return position


def page(
    queryset: QuerySet[RowT], *, scope: str, limit: int, marker: str | None
) -> tuple[Sequence[RowT], str | None]:
    """One page of `queryset` ordered by primary key, and the marker of the next page (None when it is the last).

    `scope` names the listing (e.g. "ListKeys:<account>") so a marker from one listing is refused by another.
    """
    rows = queryset.order_by("pk")
    if marker:
        rows = rows.filter(pk__gt=decode_marker(scope, marker))
    batch = list(rows[: limit + 1])
    if len(batch) > limit:
        batch = batch[:limit]
        return batch, encode_marker(scope, int(batch[-1].pk))
    return batch, None


def list_limit(limit: int | None, *, default: int, maximum: int) -> int:
    """A List* operation's Limit: `default` when absent, else 1..`maximum` (AWS documents tighter ranges than the
    model's shared 1-1000 type for some operations)."""
    if limit is None:
        return default
    errors.check_value_range("limit", limit, minimum=1, maximum=maximum)
    return limit


_SEALED_VERSION = b"\x01"
_SEALED_NONCE_BYTES = 12
_DIRECTIONS = ("after", "before")


_POSITION_PURPOSE = "pagination/sealed-position/v1"


def _position_cipher() -> AESGCM:
    return AESGCM(subkey(_POSITION_PURPOSE))


def _open_sealed(nonce: bytes, body: bytes, scope: str) -> bytes | None:
    """The plaintext of a sealed position under a readable root key, or None. Tried under every readable key
    whichever opens it, as `_tag_matches` compares every candidate, so timing says nothing about which key a
    cursor is under; on a miss, once more if the key file was rewritten (`refresh_root_keys`)."""
    return _open_under_a_readable_key(nonce, body, scope) or (
        _open_under_a_readable_key(nonce, body, scope) if refresh_root_keys() else None
    )


def _open_under_a_readable_key(nonce: bytes, body: bytes, scope: str) -> bytes | None:
    found: bytes | None = None
    for key in root_keys().readable:
        try:
            plain = AESGCM(key.subkey(_POSITION_PURPOSE)).decrypt(nonce, body, scope.encode())
        except InvalidTag:
            continue
        found = plain if found is None else found
    return found


def seal_position(scope: str, direction: str, position: int) -> str:
    """A page link's cursor: `direction` ("after" or "before") the row with primary key `position`, sealed to
    `scope` (what the list is: its account, query and filters)."""
    nonce = os.urandom(_SEALED_NONCE_BYTES)
    plain = bytes([_DIRECTIONS.index(direction)]) + position.to_bytes(8, "big")
    sealed = _SEALED_VERSION + nonce + _position_cipher().encrypt(nonce, plain, scope.encode())
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def open_position(scope: str, cursor: str) -> tuple[str, int]:
    """(direction, primary key) of a cursor `seal_position` made for `scope`; InvalidMarkerException for anything
    else (changed, truncated, made for another list, caller, account or query)."""
    invalid = errors.InvalidMarkerException(
        "That page link is not valid for this list (it was changed, or made for another caller, search, filter, "
        "order or account). Start again from the first page."
    )
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise invalid from None
    if len(raw) != 1 + _SEALED_NONCE_BYTES + 9 + 16 or raw[:1] != _SEALED_VERSION:
        raise invalid
    nonce, body = raw[1 : 1 + _SEALED_NONCE_BYTES], raw[1 + _SEALED_NONCE_BYTES :]
    plain = _open_sealed(nonce, body, scope)
    if plain is None:
        raise invalid
    if plain[0] >= len(_DIRECTIONS):
        raise invalid
    return _DIRECTIONS[plain[0]], int.from_bytes(plain[1:], "big")
