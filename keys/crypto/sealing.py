"""Sealing of stored secrets under the service's root key (pure Python, no Django).

Every secret the service keeps (key material, access-key secrets) is stored as a sealed blob: AES-256-GCM
under a key derived from the root key, with associated data that names the row the secret belongs to. A blob
copied onto another row carries the wrong associated data and does not open.

Blob layout: version (1 byte, 0x01) || nonce (12 bytes) || ciphertext || tag (16 bytes).
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ROOT_KEY_BYTES = 32
_VERSION = b"\x01"
_NONCE_BYTES = 12
_TAG_BYTES = 16


class SealingError(Exception):
    """A sealed blob did not open: wrong root key, wrong row (associated data), or tampering."""


def derive_subkey(root_key: bytes, purpose: str) -> bytes:
    """A 256-bit key for one purpose, so no two uses of the root key share a key (HKDF-SHA256)."""
    if len(root_key) != ROOT_KEY_BYTES:
        raise ValueError("the root key must be 32 bytes")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"kmsconsole/{purpose}".encode())
    return hkdf.derive(root_key)


class Sealer:
    """Seals and opens secrets bound to an identity string (the associated data)."""

    def __init__(self, root_key: bytes) -> None:
        self._aead = AESGCM(derive_subkey(root_key, "sealing/v1"))

    def seal(self, secret: bytes, *, bound_to: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, secret, bound_to.encode())

    def open(self, blob: bytes, *, bound_to: str) -> bytes:
        if len(blob) < 1 + _NONCE_BYTES + _TAG_BYTES or blob[:1] != _VERSION:
            raise SealingError("sealed blob is malformed")
        nonce = blob[1 : 1 + _NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[1 + _NONCE_BYTES :], bound_to.encode())
        except InvalidTag as exc:
            raise SealingError("sealed blob does not open for this row") from exc
