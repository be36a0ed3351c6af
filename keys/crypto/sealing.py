"""Sealing of stored secrets under the service's root keys (pure Python, no Django).

Every secret the service keeps (key material, access-key secrets) is stored as a sealed blob: AES-256-GCM
under a key derived from a root key, with associated data that names the row the secret belongs to. A blob
copied onto another row carries the wrong associated data and does not open.

Root keys rotate (``kmsconsole.core.rootkey``): a blob names the root key it was sealed under, so it opens with
that key while the key is still configured, and a re-seal can tell which blobs to move to the current key.

Blob layouts:

- version 2: ``0x02 || root key id (8 bytes) || nonce (12) || ciphertext || tag (16)``; the 9-byte header is part of
  the associated data, so a blob whose key id was edited does not open even under a key that would fit.
- version 1 (before rotation existed): ``0x01 || nonce || ciphertext || tag``, under whichever root key was the only
  one; it opens under any readable key (tried newest first) and a re-seal moves it to version 2.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ROOT_KEY_BYTES = 32
ROOT_KEY_ID_BYTES = 8
_V1 = b"\x01"
_V2 = b"\x02"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_V2_HEADER_BYTES = 1 + ROOT_KEY_ID_BYTES


class SealingError(Exception):
    """A sealed blob did not open: wrong root key, wrong row (associated data), or tampering."""


def derive_subkey(root_key: bytes, purpose: str) -> bytes:
    """A 256-bit key for one purpose, so no two uses of the root key share a key (HKDF-SHA256)."""
    if len(root_key) != ROOT_KEY_BYTES:
        raise ValueError("the root key must be 32 bytes")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"kmsconsole/{purpose}".encode())
    return hkdf.derive(root_key)


def root_key_id(root_key: bytes) -> bytes:
    """A root key's public name (8 bytes): one-way, so it tells nothing about the key, and stable, so a blob, a
    chain epoch or a key file line can name the key it belongs to."""
    return derive_subkey(root_key, "root-key-id")[:ROOT_KEY_ID_BYTES]


def sealed_under(blob: bytes) -> bytes | None:
    """The id of the root key a version 2 blob names, or None for a version 1 (or malformed) blob."""
    if len(blob) > _V2_HEADER_BYTES and blob[:1] == _V2:
        return bytes(blob[1:_V2_HEADER_BYTES])
    return None


class Sealer:
    """Seals under the current root key and opens under any readable one. Secrets are bound to an identity
    string (the associated data). `root_keys` are the readable root keys, the current one first."""

    def __init__(self, root_keys: Sequence[bytes]) -> None:
        if not root_keys:
            raise ValueError("a sealer needs at least one root key")
        self._keys = [(root_key_id(key), AESGCM(derive_subkey(key, "sealing/v1"))) for key in root_keys]
        self._by_id = dict(self._keys)
        self.current_key_id = self._keys[0][0]

    def seal(self, secret: bytes, *, bound_to: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        header = _V2 + self.current_key_id
        return header + nonce + self._keys[0][1].encrypt(nonce, secret, header + bound_to.encode())

    def open(self, blob: bytes, *, bound_to: str) -> bytes:
        blob = bytes(blob)
        if blob[:1] == _V2 and len(blob) >= _V2_HEADER_BYTES + _NONCE_BYTES + _TAG_BYTES:
            aead = self._by_id.get(blob[1:_V2_HEADER_BYTES])
            if aead is None:
                raise SealingError("sealed blob is under a root key that is not configured")
            return self._decrypt(aead, blob, _V2_HEADER_BYTES, blob[:_V2_HEADER_BYTES] + bound_to.encode())
        if blob[:1] == _V1 and len(blob) >= 1 + _NONCE_BYTES + _TAG_BYTES:
            for _key_id, aead in self._keys:
                try:
                    return self._decrypt(aead, blob, 1, bound_to.encode())
                except SealingError:
                    continue
            raise SealingError("sealed blob does not open for this row")
        raise SealingError("sealed blob is malformed")

    def is_current(self, blob: bytes) -> bool:
        """Whether `blob` is sealed under the current root key (a re-seal leaves it alone)."""
        return sealed_under(bytes(blob)) == self.current_key_id

    @staticmethod
    def _decrypt(aead: AESGCM, blob: bytes, header_bytes: int, associated: bytes) -> bytes:
        nonce = blob[header_bytes : header_bytes + _NONCE_BYTES]
        try:
            return aead.decrypt(nonce, blob[header_bytes + _NONCE_BYTES :], associated)
        except InvalidTag as exc:
            raise SealingError("sealed blob does not open for this row") from exc
