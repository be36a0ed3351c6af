"""Plaintext data keys, data key pairs, random bytes (GenerateDataKey*, GenerateDataKeyPair*, GenerateRandom).

These functions only make the secrets. The service encrypts them under the KMS key with
:func:`keys.crypto.encrypt_symmetric` (data key / private key of the pair, with the caller's encryption
context) and returns or drops the plaintext according to the ``WithoutPlaintext`` variant.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from .errors import CryptoValidationError, UnsupportedOperation, value_range_error
from .material import generate_private_key, private_key_to_der, public_key_to_der
from .rules import unsupported_key_spec_message
from .specs import (
    DATA_KEY_PAIR_KEY_SPECS,
    DATA_KEY_SPEC_BYTES,
    NUMBER_OF_BYTES_MAX,
    NUMBER_OF_BYTES_MIN,
    SUPPORTED_DATA_KEY_PAIR_SPECS,
    DataKeyPairSpec,
    DataKeySpec,
)

KEY_SPEC_OR_NUMBER_OF_BYTES_MESSAGE = "Please specify either number of bytes or key spec."
NUMBER_OF_BYTES_REQUIRED_MESSAGE = "NumberOfBytes is required."


def _check_number_of_bytes(number_of_bytes: int) -> None:
    if number_of_bytes < NUMBER_OF_BYTES_MIN:
        raise value_range_error("numberOfBytes", number_of_bytes, minimum=NUMBER_OF_BYTES_MIN)
    if number_of_bytes > NUMBER_OF_BYTES_MAX:
        raise value_range_error("numberOfBytes", number_of_bytes, maximum=NUMBER_OF_BYTES_MAX)


def data_key_length(*, key_spec: DataKeySpec | None = None, number_of_bytes: int | None = None) -> int:
    """The data key length GenerateDataKey's parameters ask for: one of KeySpec or NumberOfBytes (1..1024).

    Both or neither is ``ValidationException: Please specify either number of bytes or key spec.``
    """
    if key_spec is not None and number_of_bytes is None:
        return DATA_KEY_SPEC_BYTES[key_spec]
    if key_spec is None and number_of_bytes is not None:
        _check_number_of_bytes(number_of_bytes)
        return number_of_bytes
    raise CryptoValidationError(KEY_SPEC_OR_NUMBER_OF_BYTES_MESSAGE)


def generate_data_key(*, key_spec: DataKeySpec | None = None, number_of_bytes: int | None = None) -> bytes:
    """A random plaintext data key: AES_128 -> 16 bytes, AES_256 -> 32 bytes, or ``number_of_bytes`` bytes."""
    return secrets.token_bytes(data_key_length(key_spec=key_spec, number_of_bytes=number_of_bytes))


def generate_random(number_of_bytes: int | None) -> bytes:
    """GenerateRandom: 1..1024 random bytes; ``None`` is ValidationException "NumberOfBytes is required."."""
    if number_of_bytes is None:
        raise CryptoValidationError(NUMBER_OF_BYTES_REQUIRED_MESSAGE)
    _check_number_of_bytes(number_of_bytes)
    return secrets.token_bytes(number_of_bytes)


@dataclass(frozen=True, slots=True)
class DataKeyPair:
    """A new key pair. ``private_key`` is secret and kept out of ``repr``."""

    key_pair_spec: DataKeyPairSpec
    #: DER X.509 SubjectPublicKeyInfo (RFC 5280), as GenerateDataKeyPair returns ``PublicKey``.
    public_key: bytes
    #: DER PKCS#8 PrivateKeyInfo (RFC 5958), as GenerateDataKeyPair returns ``PrivateKeyPlaintext``; for
    #: ML_KEM_768/1024 its private key is the 64-byte seed form (86 bytes in all, whatever the spec), as AWS's.
    private_key: bytes = field(repr=False)


def check_data_key_pair_spec(key_pair_spec: DataKeyPairSpec) -> None:
    """Refuse a key pair spec `generate_data_key_pair` cannot make (SM2, ML_KEM_512:
    ``UnsupportedOperationException``), without making a pair."""
    if key_pair_spec not in SUPPORTED_DATA_KEY_PAIR_SPECS:
        raise UnsupportedOperation(unsupported_key_spec_message("KeyPairSpec", key_pair_spec))


def generate_data_key_pair(key_pair_spec: DataKeyPairSpec) -> DataKeyPair:
    """A new key pair of ``key_pair_spec``; SM2 and ML_KEM_512 are ``UnsupportedOperationException``."""
    check_data_key_pair_spec(key_pair_spec)
    private_key = generate_private_key(DATA_KEY_PAIR_KEY_SPECS[key_pair_spec])
    return DataKeyPair(
        key_pair_spec=key_pair_spec,
        public_key=public_key_to_der(private_key.public_key()),
        private_key=private_key_to_der(private_key),
    )
