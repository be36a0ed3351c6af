"""SYMMETRIC_DEFAULT encryption: the self-describing ciphertext blob, AES-256-GCM, encryption context as AAD.

Blob layout (version 1), all fields fixed-size except the ciphertext::

    offset  size  field
         0     1  version            0x01
         1    16  key id             the KMS key's UUID, 16 raw bytes
        17    32  key material id    the material version (KeyMaterialId is its 64-hex form)
        49    16  nonce              random; per-message key derivation salt
        65    12  iv                 random; AES-GCM IV
        77     n  ciphertext         n = len(plaintext), 1..4096
      77+n    16  tag                AES-GCM tag

    header = bytes 0..76 (77 bytes); overhead = 77 + 16 = 93 bytes; a 4096-byte plaintext -> 4189-byte blob.

Per-message key: ``K = HKDF-SHA256(ikm=material, salt=nonce, info=LABEL || key id || key material id)``, 32
bytes, as KMS derives ``K = KDF(HBK, N)`` (kms-spec §10). Then ``AES-256-GCM(K, iv, plaintext, AAD)`` with
``AAD = header || canonical(encryption context)``.

Why: with one AES-GCM key and random 96-bit IVs, NIST SP 800-38D caps a key at 2^32 messages (IV collision
risk). Here each message has its own key from a 128-bit random nonce, so a repeated (key, IV) pair needs a
128-bit nonce collision *and* a 96-bit IV collision; the nonce alone gives a birthday bound of about 2^64
messages per material, and each derived key seals one message of at most 4 KiB, far inside GCM's per-key data
limits. The key id and material id in ``info`` tie each derived key to the key and material version the header
names (domain separation, should two slots ever hold the same material). Everything in the header is
authenticated (AAD).

Canonical encryption context: ``u32(count) || for each pair sorted by key: u32(len k) || k || u32(len v) ||
v`` (big-endian lengths; strings UTF-8, with lone surrogates passed through so every Python ``str`` encodes).
Length prefixes make it unambiguous whatever separators keys and values contain; sorting makes it
order-independent; no case folding, so it is case-sensitive; ``None`` and ``{}`` are the same (empty) context.

Decryption fails with :class:`~keys.crypto.errors.InvalidCiphertext` (empty message, as AWS) on any tampering,
truncation, extension, wrong encryption context, wrong key or wrong material -- never with a more specific
error.
"""

from __future__ import annotations

import secrets
import struct
import uuid
from collections.abc import Mapping
from typing import Final, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import CryptoValidationError, InvalidCiphertext, KeyMaterialError, length_error
from .material import raw_key_material
from .rules import check_encryption_algorithm
from .specs import (
    KEY_MATERIAL_ID_BYTES,
    PLAINTEXT_MAX_BYTES,
    PLAINTEXT_MIN_BYTES,
    EncryptionAlgorithm,
    KeySpec,
)

EncryptionContext = Mapping[str, str]

BLOB_VERSION: Final = 1
KEY_ID_BYTES: Final = 16
NONCE_BYTES: Final = 16
IV_BYTES: Final = 12
TAG_BYTES: Final = 16
HEADER_BYTES: Final = 1 + KEY_ID_BYTES + KEY_MATERIAL_ID_BYTES + NONCE_BYTES + IV_BYTES
#: Bytes a blob adds to its plaintext (93).
CIPHERTEXT_OVERHEAD_BYTES: Final = HEADER_BYTES + TAG_BYTES
MIN_BLOB_BYTES: Final = CIPHERTEXT_OVERHEAD_BYTES + PLAINTEXT_MIN_BYTES
MAX_BLOB_BYTES: Final = CIPHERTEXT_OVERHEAD_BYTES + PLAINTEXT_MAX_BYTES

_KEY_ID_AT: Final = 1
_MATERIAL_ID_AT: Final = _KEY_ID_AT + KEY_ID_BYTES
_NONCE_AT: Final = _MATERIAL_ID_AT + KEY_MATERIAL_ID_BYTES
_IV_AT: Final = _NONCE_AT + NONCE_BYTES
_KDF_LABEL: Final = b"kmsconsole/SYMMETRIC_DEFAULT/blob-v1/aes-256-gcm"
_U32 = struct.Struct(">I")


class CiphertextHeader(NamedTuple):
    """What the service needs to find the key and material version before decrypting."""

    key_id: uuid.UUID
    key_material_id: bytes


def parse_ciphertext_header(blob: bytes) -> CiphertextHeader:
    """Read ``(key_id, key_material_id)`` from a blob; ``InvalidCiphertext`` if it cannot be one of ours.

    This does not authenticate anything: the header is only trusted once :func:`decrypt_symmetric` succeeds.
    """
    if not MIN_BLOB_BYTES <= len(blob) <= MAX_BLOB_BYTES or blob[0] != BLOB_VERSION:
        raise InvalidCiphertext()
    return CiphertextHeader(
        key_id=uuid.UUID(bytes=bytes(blob[_KEY_ID_AT:_MATERIAL_ID_AT])),
        key_material_id=bytes(blob[_MATERIAL_ID_AT:_NONCE_AT]),
    )


def _encode(text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    return _U32.pack(len(data)) + data


def canonical_encryption_context(encryption_context: EncryptionContext | None) -> bytes:
    """The deterministic, unambiguous byte encoding of an encryption context (see the module docstring)."""
    if encryption_context is None:
        return _U32.pack(0)
    if not isinstance(encryption_context, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in encryption_context.items()
    ):
        raise CryptoValidationError("EncryptionContext must map strings to strings.")
    pairs = sorted((_encode(k), _encode(v)) for k, v in encryption_context.items())
    return _U32.pack(len(pairs)) + b"".join(k + v for k, v in pairs)


def _message_cipher(material: bytes, nonce: bytes, key_id: uuid.UUID, key_material_id: bytes) -> AESGCM:
    kdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=nonce,
        info=_KDF_LABEL + key_id.bytes + key_material_id,
    )
    return AESGCM(kdf.derive(raw_key_material(KeySpec.SYMMETRIC_DEFAULT, material)))


def _check_ids(key_id: uuid.UUID, key_material_id: bytes) -> None:
    if not isinstance(key_id, uuid.UUID) or len(key_material_id) != KEY_MATERIAL_ID_BYTES:
        raise KeyMaterialError("The key id must be a UUID and the key material id 32 bytes.")


def check_symmetric_plaintext(
    plaintext: bytes, *, encryption_algorithm: EncryptionAlgorithm = EncryptionAlgorithm.SYMMETRIC_DEFAULT
) -> None:
    """Refuse what `encrypt_symmetric` would refuse before it needs the material (the algorithm, the plaintext's
    size): a caller checks this before it unseals the key's material."""
    check_encryption_algorithm(KeySpec.SYMMETRIC_DEFAULT, encryption_algorithm)
    if len(plaintext) < PLAINTEXT_MIN_BYTES:
        raise length_error("plaintext", minimum=PLAINTEXT_MIN_BYTES)
    if len(plaintext) > PLAINTEXT_MAX_BYTES:
        raise length_error("plaintext", maximum=PLAINTEXT_MAX_BYTES)


def encrypt_symmetric(
    plaintext: bytes,
    *,
    key_id: uuid.UUID,
    key_material_id: bytes,
    material: bytes,
    encryption_context: EncryptionContext | None = None,
    encryption_algorithm: EncryptionAlgorithm = EncryptionAlgorithm.SYMMETRIC_DEFAULT,
) -> bytes:
    """Encrypt (1..4096 bytes) under a SYMMETRIC_DEFAULT key's material version; returns the blob.

    Raises ``ValidationException`` (plaintext size, AWS's Coral message; malformed context) and
    ``InvalidKeyUsageException`` (an algorithm other than SYMMETRIC_DEFAULT).
    """
    check_symmetric_plaintext(plaintext, encryption_algorithm=encryption_algorithm)
    _check_ids(key_id, key_material_id)
    context = canonical_encryption_context(encryption_context)
    nonce = secrets.token_bytes(NONCE_BYTES)
    iv = secrets.token_bytes(IV_BYTES)
    header = bytes([BLOB_VERSION]) + key_id.bytes + key_material_id + nonce + iv
    sealed = _message_cipher(material, nonce, key_id, key_material_id).encrypt(
        iv, plaintext, header + context
    )
    return header + sealed


def decrypt_symmetric(
    blob: bytes,
    *,
    key_id: uuid.UUID,
    key_material_id: bytes,
    material: bytes,
    encryption_context: EncryptionContext | None = None,
    encryption_algorithm: EncryptionAlgorithm = EncryptionAlgorithm.SYMMETRIC_DEFAULT,
) -> bytes:
    """Decrypt a blob with the material version its header names; returns the plaintext.

    ``key_id``/``key_material_id`` are the service's own (from the rows it looked up via
    :func:`parse_ciphertext_header`); if the blob names others, that is ``InvalidCiphertext`` like every other
    mismatch. Comparing a caller's *requested* KeyId with the header (``IncorrectKeyException``) is the
    service's job and comes first.
    """
    check_encryption_algorithm(KeySpec.SYMMETRIC_DEFAULT, encryption_algorithm)
    _check_ids(key_id, key_material_id)
    header = parse_ciphertext_header(blob)
    if header.key_id != key_id or header.key_material_id != key_material_id:
        raise InvalidCiphertext()
    context = canonical_encryption_context(encryption_context)
    nonce = bytes(blob[_NONCE_AT:_IV_AT])
    iv = bytes(blob[_IV_AT:HEADER_BYTES])
    cipher = _message_cipher(material, nonce, key_id, key_material_id)
    try:
        return cipher.decrypt(iv, bytes(blob[HEADER_BYTES:]), bytes(blob[:HEADER_BYTES]) + context)
    except InvalidTag:
        raise InvalidCiphertext() from None
