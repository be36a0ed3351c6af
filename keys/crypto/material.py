"""Key material: generate it for every supported spec, serialize it, load it back, derive the public key.

Serialized ("material") forms, which is what the service seals under the root key and stores:

- SYMMETRIC_DEFAULT: 32 raw random bytes (the backing key; see ``symmetric`` for per-message keys);
- HMAC_224/256/384/512: 28/32/48/64 raw random bytes;
- RSA, ECC (NIST and secp256k1) and Ed25519: the private key as unencrypted PKCS#8 DER;
- ML_DSA_44/65/87 and ML_KEM_768/1024: also unencrypted PKCS#8 DER, whose private key is the *seed* form of
  RFC 9881 / RFC 9935 (``[0]`` the 32-byte FIPS 204 seed xi, or the 64-byte FIPS 203 seed d || z): 54 and 86
  bytes. It is the only form ``cryptography`` writes (``private_bytes`` never emits the expanded key), it
  reads back with the same loader as every other spec, it is what AWS returns for ML-KEM data key pairs
  ("the DER-encoded PKCS8 PrivateKeyInfo contains the private key in seed format", GenerateDataKeyPair's
  documentation), and it is a few dozen bytes instead of the 2.5-4.9 KB expanded keys, which are recomputed
  from the seed in microseconds. ML_KEM_512 has no material: ``cryptography`` has no ML-KEM-512.

Loading for an operation skips OpenSSL's RSA consistency check (hundreds of milliseconds for RSA 4096): the
material was made here and is authenticated by the root-key seal, so it cannot have been altered. Material
from outside (imported key material) must go through :func:`validate_key_material` once, which runs the full
check.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, rsa

from .errors import KeyMaterialError, UnsupportedOperation
from .rules import require_supported_key_spec
from .specs import (
    ASYMMETRIC_KEY_SPECS,
    EC_KEY_SPECS,
    HMAC_KEY_MATERIAL_BYTES,
    HMAC_KEY_SPECS,
    POST_QUANTUM_KEY_SPECS,
    RSA_KEY_BITS,
    RSA_KEY_SPECS,
    RSA_PUBLIC_EXPONENT,
    SYMMETRIC_KEY_MATERIAL_BYTES,
    KeySpec,
)

MLDSAPrivateKey = mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey
MLDSAPublicKey = mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey | mldsa.MLDSA87PublicKey
MLKEMPrivateKey = mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey
MLKEMPublicKey = mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey
PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | MLDSAPrivateKey
    | MLKEMPrivateKey
)
PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | MLDSAPublicKey | MLKEMPublicKey
)

EC_CURVES: Final[Mapping[KeySpec, type[ec.EllipticCurve]]] = MappingProxyType(
    {
        KeySpec.ECC_NIST_P256: ec.SECP256R1,
        KeySpec.ECC_NIST_P384: ec.SECP384R1,
        KeySpec.ECC_NIST_P521: ec.SECP521R1,
        KeySpec.ECC_SECG_P256K1: ec.SECP256K1,
    }
)

#: The post-quantum specs' key classes (private, public), and how a new private key of each is made.
POST_QUANTUM_KEY_CLASSES: Final[Mapping[KeySpec, tuple[type, type]]] = MappingProxyType(
    {
        KeySpec.ML_DSA_44: (mldsa.MLDSA44PrivateKey, mldsa.MLDSA44PublicKey),
        KeySpec.ML_DSA_65: (mldsa.MLDSA65PrivateKey, mldsa.MLDSA65PublicKey),
        KeySpec.ML_DSA_87: (mldsa.MLDSA87PrivateKey, mldsa.MLDSA87PublicKey),
        KeySpec.ML_KEM_768: (mlkem.MLKEM768PrivateKey, mlkem.MLKEM768PublicKey),
        KeySpec.ML_KEM_1024: (mlkem.MLKEM1024PrivateKey, mlkem.MLKEM1024PublicKey),
    }
)
_POST_QUANTUM_GENERATORS: Final[Mapping[KeySpec, Callable[[], PrivateKey]]] = MappingProxyType(
    {
        KeySpec.ML_DSA_44: mldsa.MLDSA44PrivateKey.generate,
        KeySpec.ML_DSA_65: mldsa.MLDSA65PrivateKey.generate,
        KeySpec.ML_DSA_87: mldsa.MLDSA87PrivateKey.generate,
        KeySpec.ML_KEM_768: mlkem.MLKEM768PrivateKey.generate,
        KeySpec.ML_KEM_1024: mlkem.MLKEM1024PrivateKey.generate,
    }
)


def generate_private_key(key_spec: KeySpec) -> PrivateKey:
    """A new private key object for an asymmetric spec (also used for data key pairs)."""
    require_supported_key_spec(key_spec)
    if key_spec in RSA_KEY_SPECS:
        return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_KEY_BITS[key_spec])
    if key_spec in EC_KEY_SPECS:
        return ec.generate_private_key(EC_CURVES[key_spec]())
    if key_spec is KeySpec.ECC_NIST_EDWARDS25519:
        return ed25519.Ed25519PrivateKey.generate()
    if key_spec in POST_QUANTUM_KEY_SPECS:
        return _POST_QUANTUM_GENERATORS[key_spec]()
    raise UnsupportedOperation(f"KeySpec {key_spec} has no asymmetric key pair.")


def private_key_to_der(private_key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 DER (RFC 5958 PrivateKeyInfo): the stored form and GenerateDataKeyPair's form."""
    return private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_to_der(public_key: PublicKey) -> bytes:
    """DER X.509 SubjectPublicKeyInfo (RFC 5280), the form of GetPublicKey and GenerateDataKeyPair."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate_key_material(key_spec: KeySpec) -> bytes:
    """New serialized key material for any supported spec (see the module docstring for the forms)."""
    require_supported_key_spec(key_spec)
    if key_spec is KeySpec.SYMMETRIC_DEFAULT:
        return secrets.token_bytes(SYMMETRIC_KEY_MATERIAL_BYTES)
    if key_spec in HMAC_KEY_SPECS:
        return secrets.token_bytes(HMAC_KEY_MATERIAL_BYTES[key_spec])
    return private_key_to_der(generate_private_key(key_spec))


def raw_key_material(key_spec: KeySpec, material: bytes) -> bytes:
    """Check that raw (SYMMETRIC_DEFAULT or HMAC) material has its spec's length, and return it."""
    if key_spec is KeySpec.SYMMETRIC_DEFAULT:
        expected = SYMMETRIC_KEY_MATERIAL_BYTES
    elif key_spec in HMAC_KEY_SPECS:
        expected = HMAC_KEY_MATERIAL_BYTES[key_spec]
    else:
        raise KeyMaterialError(f"KeySpec {key_spec} has no raw key material.")
    if len(material) != expected:
        raise KeyMaterialError(f"The key material does not match KeySpec {key_spec}.")
    return material


def _matches_spec(key_spec: KeySpec, key: PrivateKey | PublicKey) -> bool:
    if key_spec in RSA_KEY_SPECS:
        return (
            isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey) and key.key_size == RSA_KEY_BITS[key_spec]
        )
    if key_spec in EC_KEY_SPECS:
        return isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(
            key.curve, EC_CURVES[key_spec]
        )
    if key_spec is KeySpec.ECC_NIST_EDWARDS25519:
        return isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey)
    if key_spec in POST_QUANTUM_KEY_SPECS:
        return isinstance(key, POST_QUANTUM_KEY_CLASSES[key_spec])
    return False


def load_private_key(key_spec: KeySpec, material: bytes, *, full_check: bool = False) -> PrivateKey:
    """Load stored PKCS#8 DER material and check it is a key of ``key_spec`` (else ``KeyMaterialError``).

    ``full_check=True`` also runs OpenSSL's RSA key consistency check (slow; for material from outside).
    """
    if key_spec not in ASYMMETRIC_KEY_SPECS:
        raise KeyMaterialError(f"KeySpec {key_spec} has no private key.")
    try:
        key = serialization.load_der_private_key(
            material, password=None, unsafe_skip_rsa_key_validation=not full_check
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyMaterialError(f"The key material does not match KeySpec {key_spec}.") from None
    if not isinstance(key, PrivateKey) or not _matches_spec(key_spec, key):
        raise KeyMaterialError(f"The key material does not match KeySpec {key_spec}.")
    return key


def validate_key_material(key_spec: KeySpec, material: bytes) -> None:
    """Full check of material that did not come from :func:`generate_key_material` (e.g. imported)."""
    require_supported_key_spec(key_spec)
    if key_spec in ASYMMETRIC_KEY_SPECS:
        load_private_key(key_spec, material, full_check=True)
    else:
        raw_key_material(key_spec, material)


def public_key_der(key_spec: KeySpec, material: bytes) -> bytes:
    """GetPublicKey: the DER SubjectPublicKeyInfo of an asymmetric key's stored material.

    The public key is not secret: the service may store it beside the sealed material and use it for Verify
    and RSA Encrypt without unsealing anything.
    """
    if key_spec not in ASYMMETRIC_KEY_SPECS:
        require_supported_key_spec(key_spec)
        raise UnsupportedOperation(f"KeySpec {key_spec} has no public key.")
    return public_key_to_der(load_private_key(key_spec, material).public_key())


def load_public_key(key_spec: KeySpec, der: bytes) -> PublicKey:
    """Load a DER SubjectPublicKeyInfo and check it is a key of ``key_spec``; ``ValueError`` if it is not.

    Callers turn the ``ValueError`` into the error their operation needs (a stored key: ``KeyMaterialError``;
    a caller-supplied key: ``ValidationException``). The message never includes the key bytes.
    """
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(f"not a DER SubjectPublicKeyInfo of KeySpec {key_spec}") from None
    if not isinstance(key, PublicKey) or not _matches_spec(key_spec, key):
        raise ValueError(f"not a DER SubjectPublicKeyInfo of KeySpec {key_spec}")
    return key


def load_stored_public_key(key_spec: KeySpec, der: bytes) -> PublicKey:
    """Load the service's own stored public key; a mismatch is a server fault (``KeyMaterialError``)."""
    try:
        return load_public_key(key_spec, der)
    except ValueError:
        raise KeyMaterialError(f"The public key does not match KeySpec {key_spec}.") from None
