"""Error codes, AWS's messages, and the rule that no secret reaches a message, a repr or a chained exception."""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Callable

import pytest

from keys.crypto import (
    CryptoError,
    CryptoValidationError,
    DataKeyPairSpec,
    EncryptionAlgorithm,
    IncorrectKey,
    InvalidCiphertext,
    InvalidKeyUsage,
    InvalidMac,
    InvalidSignature,
    KeyMaterialError,
    KeySpec,
    MacAlgorithm,
    SigningAlgorithm,
    UnsupportedOperation,
    decrypt_asymmetric,
    decrypt_symmetric,
    encrypt_asymmetric,
    encrypt_symmetric,
    generate_data_key_pair,
    generate_key_material,
    public_key_der,
    sign,
    verify,
    verify_mac,
)
from keys.crypto.errors import length_error, value_range_error


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (InvalidCiphertext, "InvalidCiphertextException", ""),
        (
            IncorrectKey,
            "IncorrectKeyException",
            "The key ID in the request does not identify a CMK that can perform this operation.",
        ),
        (CryptoValidationError, "ValidationException", ""),
        (InvalidKeyUsage, "InvalidKeyUsageException", ""),
        (InvalidSignature, "KMSInvalidSignatureException", ""),
        (InvalidMac, "KMSInvalidMacException", ""),
        (UnsupportedOperation, "UnsupportedOperationException", ""),
        (KeyMaterialError, "KMSInternalException", "The key material is not usable for this key."),
    ],
)
def test_codes_and_default_messages(error: type[CryptoError], code: str, message: str) -> None:
    instance = error()
    assert isinstance(instance, CryptoError)
    assert isinstance(instance, Exception)
    assert instance.code == code
    assert instance.message == message
    assert str(instance) == message
    assert repr(instance) == f"{error.__name__}(code={code!r}, message={message!r})"


def test_explicit_message() -> None:
    error = CryptoValidationError("Digest is invalid length for algorithm ECDSA_SHA_256.")
    assert error.message == str(error) == "Digest is invalid length for algorithm ECDSA_SHA_256."


def test_coral_messages() -> None:
    assert length_error("plaintext", maximum=4096).message == (
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096"
    )
    assert length_error("message", minimum=1).message == (
        "1 validation error detected: Value at 'message' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1"
    )
    assert value_range_error("numberOfBytes", 1025, maximum=1024).message == (
        "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy constraint: "
        "Member must have value less than or equal to 1024"
    )
    assert value_range_error("numberOfBytes", 0, minimum=1).message == (
        "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    )
    with pytest.raises(ValueError, match="minimum or a maximum"):
        length_error("plaintext")
    with pytest.raises(ValueError, match="minimum or a maximum"):
        value_range_error("numberOfBytes", 3)


# --- no secrets in errors ----------------------------------------------------------------------------------

SECRET = b"TOP-SECRET-PLAINTEXT-0123456789-\xfe\xed"
HMAC_MATERIAL = bytes(range(32))


def _forms(secret: bytes) -> list[str]:
    return [repr(secret), secret.hex(), secret.decode("latin-1"), secret[:16].hex()]


def _failures(material: Callable[..., bytes], public_der: Callable[..., bytes]) -> list[Callable[[], object]]:
    sym = generate_key_material(KeySpec.SYMMETRIC_DEFAULT)
    kid, mid = uuid.uuid4(), bytes(32)
    blob = encrypt_symmetric(SECRET, key_id=kid, key_material_id=mid, material=sym)
    return [
        lambda: decrypt_symmetric(
            blob, key_id=kid, key_material_id=mid, material=sym, encryption_context={"k": "v"}
        ),
        lambda: decrypt_symmetric(blob, key_id=kid, key_material_id=mid, material=SECRET[:32]),
        lambda: encrypt_symmetric(SECRET * 200, key_id=kid, key_material_id=mid, material=sym),
        lambda: encrypt_symmetric(SECRET, key_id=kid, key_material_id=mid, material=SECRET),
        lambda: encrypt_asymmetric(
            SECRET * 10,
            key_spec=KeySpec.RSA_2048,
            public_key_der=public_der(KeySpec.RSA_2048),
            encryption_algorithm=EncryptionAlgorithm.RSAES_OAEP_SHA_256,
        ),
        lambda: decrypt_asymmetric(
            SECRET * 8,
            key_spec=KeySpec.RSA_2048,
            material=material(KeySpec.RSA_2048),
            encryption_algorithm=EncryptionAlgorithm.RSAES_OAEP_SHA_256,
        ),
        lambda: sign(
            SECRET,
            key_spec=KeySpec.ECC_NIST_P256,
            material=SECRET,
            signing_algorithm=SigningAlgorithm.ECDSA_SHA_256,
        ),
        lambda: verify(
            SECRET,
            SECRET,
            key_spec=KeySpec.ECC_NIST_P256,
            public_key_der=public_der(KeySpec.ECC_NIST_P256),
            signing_algorithm=SigningAlgorithm.ECDSA_SHA_256,
        ),
        lambda: verify_mac(
            SECRET,
            SECRET,
            key_spec=KeySpec.HMAC_256,
            material=HMAC_MATERIAL,
            mac_algorithm=MacAlgorithm.HMAC_SHA_256,
        ),
        lambda: public_key_der(KeySpec.RSA_2048, SECRET),
    ]


def test_no_secret_in_any_error(material: Callable[..., bytes], public_der: Callable[..., bytes]) -> None:
    failures = _failures(material, public_der)
    for failure in failures:
        with pytest.raises(CryptoError) as caught:
            failure()
        error = caught.value
        # `raise ... from None`: nothing from `cryptography` is chained or shown in a traceback.
        assert error.__cause__ is None
        assert error.__suppress_context__ or error.__context__ is None
        shown = "".join(traceback.format_exception(error)) + repr(error) + error.message
        for form in _forms(SECRET) + _forms(HMAC_MATERIAL):
            assert form not in shown, (error.code, error.message)


def test_data_key_pair_repr_hides_the_private_key() -> None:
    pair = generate_data_key_pair(DataKeyPairSpec.ECC_NIST_P256)
    shown = repr(pair)
    assert "private_key" not in shown
    assert pair.private_key.hex() not in shown and repr(pair.private_key) not in shown
    assert "ECC_NIST_P256" in shown
