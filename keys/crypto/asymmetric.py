"""RSA OAEP encryption (RSAES_OAEP_SHA_1/SHA_256) and ECDH key agreement for asymmetric KMS keys.

RSA ciphertext is plain standard OAEP output with no metadata (as in AWS): anyone holding the DER public key
from GetPublicKey can encrypt with ``cryptography``'s ``OAEP(MGF1(H), H, label=None)`` and Decrypt here will
accept it. The MGF1 hash equals the OAEP hash (SHA-1 or SHA-256), as in KMS.

Public-key operations (Encrypt) take the public key DER, so the service can use the public key it stores
beside the sealed material without unsealing the private key.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .errors import CryptoValidationError, InvalidCiphertext, KeyMaterialError, length_error
from .material import PublicKey, load_private_key, load_public_key, load_stored_public_key
from .rules import check_encryption_algorithm, check_key_agreement_algorithm
from .specs import (
    PLAINTEXT_MIN_BYTES,
    PUBLIC_KEY_MAX_BYTES,
    RSA_KEY_BITS,
    RSA_OAEP_MAX_PLAINTEXT_BYTES,
    EncryptionAlgorithm,
    KeyAgreementAlgorithm,
    KeySpec,
)

_OAEP_HASHES: Final[Mapping[EncryptionAlgorithm, type[hashes.HashAlgorithm]]] = MappingProxyType(
    {EncryptionAlgorithm.RSAES_OAEP_SHA_1: hashes.SHA1, EncryptionAlgorithm.RSAES_OAEP_SHA_256: hashes.SHA256}
)


def _oaep(algorithm: EncryptionAlgorithm) -> padding.OAEP:
    hash_algorithm = _OAEP_HASHES[algorithm]()
    return padding.OAEP(mgf=padding.MGF1(algorithm=hash_algorithm), algorithm=hash_algorithm, label=None)


def check_asymmetric_plaintext(
    plaintext: bytes, *, key_spec: KeySpec, encryption_algorithm: EncryptionAlgorithm
) -> None:
    """Refuse what `encrypt_asymmetric` would refuse (the algorithm for the spec, the plaintext's size), without
    the public key."""
    check_encryption_algorithm(key_spec, encryption_algorithm)
    if len(plaintext) < PLAINTEXT_MIN_BYTES:
        raise length_error("plaintext", minimum=PLAINTEXT_MIN_BYTES)
    limit = RSA_OAEP_MAX_PLAINTEXT_BYTES[(key_spec, encryption_algorithm)]
    if len(plaintext) > limit:
        raise CryptoValidationError(
            f"Algorithm {encryption_algorithm} and key spec {key_spec} cannot encrypt data larger than "
            f"{limit} bytes."
        )


def encrypt_asymmetric(
    plaintext: bytes,
    *,
    key_spec: KeySpec,
    public_key_der: bytes,
    encryption_algorithm: EncryptionAlgorithm,
) -> bytes:
    """RSA OAEP-encrypt under an RSA ENCRYPT_DECRYPT key's public key (DER SubjectPublicKeyInfo).

    Over-long plaintext is ``ValidationException`` with AWS's message, e.g. ``Algorithm RSAES_OAEP_SHA_256 and
    key spec RSA_2048 cannot encrypt data larger than 190 bytes.``; a wrong algorithm for the spec is
    ``InvalidKeyUsageException``.
    """
    check_asymmetric_plaintext(plaintext, key_spec=key_spec, encryption_algorithm=encryption_algorithm)
    public_key = load_stored_public_key(key_spec, public_key_der)
    if not isinstance(
        public_key, rsa.RSAPublicKey
    ):  # pragma: no cover - load_stored_public_key checked the spec
        raise KeyMaterialError()
    return public_key.encrypt(plaintext, _oaep(encryption_algorithm))


def check_asymmetric_ciphertext(
    ciphertext: bytes, *, key_spec: KeySpec, encryption_algorithm: EncryptionAlgorithm
) -> None:
    """Refuse what `decrypt_asymmetric` would refuse before it needs the private key (the algorithm for the spec,
    a ciphertext that is not the modulus' length): a caller checks this before it unseals the key's material."""
    check_encryption_algorithm(key_spec, encryption_algorithm)
    if len(ciphertext) != RSA_KEY_BITS[key_spec] // 8:
        raise InvalidCiphertext()


def decrypt_asymmetric(
    ciphertext: bytes,
    *,
    key_spec: KeySpec,
    material: bytes,
    encryption_algorithm: EncryptionAlgorithm,
) -> bytes:
    """RSA OAEP-decrypt with an RSA key's private material; ``InvalidCiphertext`` (empty message) on failure.

    The caller must name the same algorithm used to encrypt (AWS requires it too); any other algorithm, a
    ciphertext of the wrong length or one made for another key is ``InvalidCiphertext``.
    """
    check_asymmetric_ciphertext(ciphertext, key_spec=key_spec, encryption_algorithm=encryption_algorithm)
    private_key = load_private_key(key_spec, material)
    if not isinstance(private_key, rsa.RSAPrivateKey):  # pragma: no cover - load_private_key checked the spec
        raise KeyMaterialError()
    try:
        return private_key.decrypt(ciphertext, _oaep(encryption_algorithm))
    except ValueError:
        raise InvalidCiphertext() from None


def _peer_public_key(
    public_key: bytes, key_spec: KeySpec, key_agreement_algorithm: KeyAgreementAlgorithm
) -> PublicKey:
    check_key_agreement_algorithm(key_spec, key_agreement_algorithm)
    if len(public_key) > PUBLIC_KEY_MAX_BYTES:
        raise length_error("publicKey", maximum=PUBLIC_KEY_MAX_BYTES)
    try:
        return load_public_key(key_spec, public_key)
    except ValueError:
        raise CryptoValidationError(
            f"PublicKey must be a DER-encoded X.509 SubjectPublicKeyInfo on the curve of key spec {key_spec}."
        ) from None


def check_key_agreement_input(
    public_key: bytes,
    *,
    key_spec: KeySpec,
    key_agreement_algorithm: KeyAgreementAlgorithm = KeyAgreementAlgorithm.ECDH,
) -> None:
    """Refuse what `derive_shared_secret` would refuse before it needs the private key (the algorithm for the
    spec, a peer public key that is too long or not on the key's curve): a caller checks this before it unseals
    the key's material."""
    _peer_public_key(public_key, key_spec, key_agreement_algorithm)


def derive_shared_secret(
    public_key: bytes,
    *,
    key_spec: KeySpec,
    material: bytes,
    key_agreement_algorithm: KeyAgreementAlgorithm = KeyAgreementAlgorithm.ECDH,
) -> bytes:
    """DeriveSharedSecret: raw ECDH shared secret (the x-coordinate, SP 800-56A "Z") with a peer's public key.

    ``public_key`` is the other party's DER SubjectPublicKeyInfo on the same NIST curve as the KMS key;
    anything else is ``ValidationException``. No KDF is applied, as in KMS: the caller derives its keys from
    the secret.
    """
    peer = _peer_public_key(public_key, key_spec, key_agreement_algorithm)
    private_key = load_private_key(key_spec, material)
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
        peer, ec.EllipticCurvePublicKey
    ):
        raise KeyMaterialError()  # pragma: no cover - both loaders checked the spec
    try:
        return private_key.exchange(ec.ECDH(), peer)
    except ValueError:  # pragma: no cover - OpenSSL rejected the point after parsing accepted it
        raise CryptoValidationError(
            f"PublicKey must be a DER-encoded X.509 SubjectPublicKeyInfo on the curve of key spec {key_spec}."
        ) from None
