"""Opaque Marker/NextMarker pagination as the KMS List* operations use it.

A marker names the last row returned (its primary key), authenticated so that callers cannot forge positions:
a changed or foreign marker is InvalidMarkerException, never a database error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from typing import TypeVar

from django.db.models import Model, QuerySet

from kmsconsole.core import errors
from kmsconsole.core.rootkey import subkey

_TAG_BYTES = 8
RowT = TypeVar("RowT", bound=Model)


def _tag(scope: str, position: int) -> bytes:
    message = f"{scope}:{position}".encode()
    return hmac.new(subkey("pagination/v1"), message, hashlib.sha256).digest()[:_TAG_BYTES]


def encode_marker(scope: str, position: int) -> str:
    raw = position.to_bytes(8, "big") + _tag(scope, position)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_marker(scope: str, marker: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4))
    except (binascii.Error, ValueError):
        raise errors.InvalidMarkerException("The request contains an invalid marker.") from None
    if len(raw) != 8 + _TAG_BYTES:
        raise errors.InvalidMarkerException("The request contains an invalid marker.")
    position = int.from_bytes(raw[:8], "big")
    if not hmac.compare_digest(raw[8:], _tag(scope, position)):
        raise errors.InvalidMarkerException("The request contains an invalid marker.")
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
