"""Encapsulate and Decapsulate with ML-KEM keys (FIPS 203): ML_KEM_768 and ML_KEM_1024, algorithm ML_KEM.

What KMS returns is plain FIPS 203 output, so either side may be done outside the service:

- Encapsulate uses only the public key (the DER SubjectPublicKeyInfo the service stores beside the sealed
  material, as GetPublicKey returns it): a fresh 32-byte shared secret and its ciphertext (1088 bytes for
  ML_KEM_768, 1568 for ML_KEM_1024). Anyone holding the public key can encapsulate with ``cryptography``'s
  ``MLKEM768PublicKey.encapsulate()`` and Decapsulate here recovers the same secret.
- Decapsulate refuses only a ciphertext whose length does not match the key spec (InvalidCiphertextException,
  empty message, as AWS documents). Any other ciphertext, altered or made for another key, gives a 32-byte
  pseudo-random value: FIPS 203's implicit rejection, which AWS keeps ("confirm the two parties derived the
  same shared secret before using it").

The shared secret is secret: it lives only in the returned value (kept out of ``repr``), never in an error.
ML_KEM_512 is UnsupportedOperationException: ``cryptography`` has no ML-KEM-512.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import InvalidCiphertext, KeyMaterialError
from .material import MLKEMPrivateKey, MLKEMPublicKey, load_private_key, load_stored_public_key
from .rules import check_encapsulation_algorithm
from .specs import ML_KEM_CIPHERTEXT_BYTES, EncapsulationAlgorithm, KeySpec


@dataclass(frozen=True, slots=True)
class Encapsulated:
    """Encapsulate's result. ``shared_secret`` is secret and kept out of ``repr``."""

    #: The encapsulated form (SharedSecretCiphertextBlob): not secret, only the private key opens it.
    ciphertext: bytes
    #: The 32-byte shared secret (SharedSecret).
    shared_secret: bytes = field(repr=False)


def encapsulate(
    *,
    key_spec: KeySpec,
    public_key_der: bytes,
    encapsulation_algorithm: EncapsulationAlgorithm = EncapsulationAlgorithm.ML_KEM,
) -> Encapsulated:
    """Encapsulate: a new shared secret and its ciphertext under an ML-KEM key's public key."""
    check_encapsulation_algorithm(key_spec, encapsulation_algorithm)
    public_key = load_stored_public_key(key_spec, public_key_der)
    if not isinstance(public_key, MLKEMPublicKey):  # pragma: no cover - the check above allows ML-KEM only
        raise KeyMaterialError()
    shared_secret, ciphertext = public_key.encapsulate()
    return Encapsulated(ciphertext=ciphertext, shared_secret=shared_secret)


def check_decapsulation_input(
    ciphertext: bytes,
    *,
    key_spec: KeySpec,
    encapsulation_algorithm: EncapsulationAlgorithm = EncapsulationAlgorithm.ML_KEM,
) -> None:
    """Refuse what `decapsulate` would refuse before it needs the private key: a caller checks this before it
    unseals the key's material, so a request bound to fail never opens it."""
    check_encapsulation_algorithm(key_spec, encapsulation_algorithm)
    if len(ciphertext) != ML_KEM_CIPHERTEXT_BYTES[key_spec]:
        raise InvalidCiphertext()


def decapsulate(
    ciphertext: bytes,
    *,
    key_spec: KeySpec,
    material: bytes,
    encapsulation_algorithm: EncapsulationAlgorithm = EncapsulationAlgorithm.ML_KEM,
) -> bytes:
    """Decapsulate: the shared secret of ``ciphertext`` under an ML-KEM key's private material.

    A ciphertext of the wrong length for the spec is ``InvalidCiphertext`` (empty message); any other gives 32
    bytes (implicit rejection: a wrong ciphertext is not detected here, only by the parties comparing).
    """
    check_decapsulation_input(ciphertext, key_spec=key_spec, encapsulation_algorithm=encapsulation_algorithm)
    private_key = load_private_key(key_spec, material)
    if not isinstance(private_key, MLKEMPrivateKey):  # pragma: no cover - load_private_key checked the spec
        raise KeyMaterialError()
    try:
        return private_key.decapsulate(ciphertext)
    except ValueError:  # pragma: no cover - only the length is checked, and it was
        raise InvalidCiphertext() from None
