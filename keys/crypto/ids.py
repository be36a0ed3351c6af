"""Key material ids: 32 random bytes in the service and the ciphertext blob, 64 lowercase hex on the wire."""

from __future__ import annotations

import secrets
import string

from .errors import CryptoValidationError
from .specs import KEY_MATERIAL_ID_BYTES

_HEX_DIGITS = frozenset(string.hexdigits)


def new_key_material_id() -> bytes:
    """A fresh KeyMaterialId (32 random bytes); one per material version (creation and each rotation)."""
    return secrets.token_bytes(KEY_MATERIAL_ID_BYTES)


def key_material_id_hex(key_material_id: bytes) -> str:
    """The wire form (``KeyMaterialId``, ``CurrentKeyMaterialId``): 64 lowercase hex characters."""
    if len(key_material_id) != KEY_MATERIAL_ID_BYTES:
        raise ValueError(f"a key material id is {KEY_MATERIAL_ID_BYTES} bytes")
    return key_material_id.hex()


def parse_key_material_id(value: str) -> bytes:
    """Parse the 64-hex wire form back to bytes; ``ValidationException`` if it is not 64 hex characters."""
    # bytes.fromhex alone would accept whitespace, hence the explicit character check.
    if len(value) != 2 * KEY_MATERIAL_ID_BYTES or not set(value) <= _HEX_DIGITS:
        raise CryptoValidationError(
            f"KeyMaterialId must be {2 * KEY_MATERIAL_ID_BYTES} hexadecimal characters."
        )
    return bytes.fromhex(value)
