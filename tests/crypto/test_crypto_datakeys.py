"""GenerateDataKey*, GenerateDataKeyPair* and GenerateRandom: sizes, AWS's messages, usable key pairs."""

from __future__ import annotations

import functools
import uuid

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mlkem, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from keys.crypto import (
    SUPPORTED_DATA_KEY_PAIR_SPECS,
    CryptoValidationError,
    DataKeyPair,
    DataKeyPairSpec,
    DataKeySpec,
    KeySpec,
    UnsupportedOperation,
    data_key_length,
    decrypt_symmetric,
    encrypt_symmetric,
    generate_data_key,
    generate_data_key_pair,
    generate_key_material,
    generate_random,
    new_key_material_id,
)

EITHER = "Please specify either number of bytes or key spec."


def coral(value: int, constraint: str) -> str:
    return (
        f"1 validation error detected: Value '{value}' at 'numberOfBytes' failed to satisfy constraint: "
        f"Member must have value {constraint}"
    )


@pytest.mark.parametrize(
    ("key_spec", "number_of_bytes", "length"),
    [
        (DataKeySpec.AES_128, None, 16),
        (DataKeySpec.AES_256, None, 32),
        (None, 1, 1),
        (None, 64, 64),
        (None, 1024, 1024),
    ],
)
def test_data_key_lengths(key_spec: DataKeySpec | None, number_of_bytes: int | None, length: int) -> None:
    assert data_key_length(key_spec=key_spec, number_of_bytes=number_of_bytes) == length
    first = generate_data_key(key_spec=key_spec, number_of_bytes=number_of_bytes)
    second = generate_data_key(key_spec=key_spec, number_of_bytes=number_of_bytes)
    assert len(first) == len(second) == length
    if length >= 16:
        assert first != second


@pytest.mark.parametrize(
    ("key_spec", "number_of_bytes", "message"),
    [
        (None, None, EITHER),
        (DataKeySpec.AES_256, 32, EITHER),
        (DataKeySpec.AES_128, 1, EITHER),
        (None, 0, coral(0, "greater than or equal to 1")),
        (None, -5, coral(-5, "greater than or equal to 1")),
        (None, 1025, coral(1025, "less than or equal to 1024")),
    ],
)
def test_data_key_parameter_errors(
    key_spec: DataKeySpec | None, number_of_bytes: int | None, message: str
) -> None:
    with pytest.raises(CryptoValidationError) as caught:
        generate_data_key(key_spec=key_spec, number_of_bytes=number_of_bytes)
    assert caught.value.code == "ValidationException"
    assert caught.value.message == message


@pytest.mark.parametrize("number_of_bytes", [1, 2, 512, 1024])
def test_generate_random(number_of_bytes: int) -> None:
    assert len(generate_random(number_of_bytes)) == number_of_bytes


@pytest.mark.parametrize(
    ("number_of_bytes", "message"),
    [
        (None, "NumberOfBytes is required."),
        (0, coral(0, "greater than or equal to 1")),
        (1025, coral(1025, "less than or equal to 1024")),
    ],
)
def test_generate_random_errors(number_of_bytes: int | None, message: str) -> None:
    with pytest.raises(CryptoValidationError) as caught:
        generate_random(number_of_bytes)
    assert caught.value.message == message


# --- key pairs ---------------------------------------------------------------------------------------------

PAIR_SPECS = sorted(SUPPORTED_DATA_KEY_PAIR_SPECS)
CHECKS = {
    DataKeyPairSpec.RSA_2048: (rsa.RSAPrivateKey, "2048"),
    DataKeyPairSpec.RSA_3072: (rsa.RSAPrivateKey, "3072"),
    DataKeyPairSpec.RSA_4096: (rsa.RSAPrivateKey, "4096"),
    DataKeyPairSpec.ECC_NIST_P256: (ec.EllipticCurvePrivateKey, "secp256r1"),
    DataKeyPairSpec.ECC_NIST_P384: (ec.EllipticCurvePrivateKey, "secp384r1"),
    DataKeyPairSpec.ECC_NIST_P521: (ec.EllipticCurvePrivateKey, "secp521r1"),
    DataKeyPairSpec.ECC_SECG_P256K1: (ec.EllipticCurvePrivateKey, "secp256k1"),
    DataKeyPairSpec.ECC_NIST_EDWARDS25519: (ed25519.Ed25519PrivateKey, "ed25519"),
    DataKeyPairSpec.ML_KEM_768: (mlkem.MLKEM768PrivateKey, "seed"),
    DataKeyPairSpec.ML_KEM_1024: (mlkem.MLKEM1024PrivateKey, "seed"),
}
#: AWS: "For ML-KEM data key pairs, the DER-encoded PKCS8 PrivateKeyInfo contains the private key in seed
#: format. As a result, the length of the private key is the same for all ML-KEM key pair specs."
ML_KEM_SEED_PKCS8_BYTES = 86


@functools.cache
def pair(spec: DataKeyPairSpec) -> DataKeyPair:
    return generate_data_key_pair(spec)


@functools.cache
def loaded(spec: DataKeyPairSpec) -> tuple[PublicKeyTypes, PrivateKeyTypes]:
    """The pair as a client loads it: `cryptography`'s DER loaders (full RSA check, so once per spec)."""
    generated = pair(spec)
    return (
        serialization.load_der_public_key(generated.public_key),
        serialization.load_der_private_key(generated.private_key, password=None),
    )


def test_every_supported_pair_spec_is_checked() -> None:
    assert set(CHECKS) == SUPPORTED_DATA_KEY_PAIR_SPECS


@pytest.mark.parametrize("spec", PAIR_SPECS)
def test_interop_pair_loads_with_der_loaders_and_matches(spec: DataKeyPairSpec) -> None:
    generated = pair(spec)
    assert generated.key_pair_spec is spec
    public, private = loaded(spec)
    key_class, detail = CHECKS[spec]
    assert isinstance(private, key_class)
    if isinstance(private, rsa.RSAPrivateKey):
        assert str(private.key_size) == detail
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        assert private.curve.name == detail
    elif detail == "seed":
        assert len(generated.private_key) == ML_KEM_SEED_PKCS8_BYTES
        assert generated.private_key.endswith(private.private_bytes_raw())  # type: ignore[union-attr]
    assert private.public_key() == public
    # Exactly the RFC 5280 SPKI / RFC 5958 PKCS#8 DER encodings, not PEM, not traditional OpenSSL.
    assert generated.public_key == public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert generated.private_key == private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize("spec", PAIR_SPECS)
def test_interop_pair_works(spec: DataKeyPairSpec) -> None:
    public, private = loaded(spec)
    message = b"data key pair message"
    if isinstance(private, rsa.RSAPrivateKey):
        assert isinstance(public, rsa.RSAPublicKey)
        oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        assert private.decrypt(public.encrypt(message, oaep), oaep) == message
        public.verify(
            private.sign(message, padding.PKCS1v15(), hashes.SHA256()),
            message,
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(private.sign(message, ec.ECDSA(hashes.SHA256())), message, ec.ECDSA(hashes.SHA256()))
    elif isinstance(private, mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey):
        assert isinstance(public, mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey)
        shared_secret, ciphertext = public.encapsulate()
        assert private.decapsulate(ciphertext) == shared_secret
    else:
        assert isinstance(private, ed25519.Ed25519PrivateKey) and isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(private.sign(message), message)


def test_pairs_are_fresh() -> None:
    assert generate_data_key_pair(DataKeyPairSpec.ECC_NIST_P256) != generate_data_key_pair(
        DataKeyPairSpec.ECC_NIST_P256
    )


@pytest.mark.parametrize("spec", PAIR_SPECS)
def test_private_key_fits_a_symmetric_blob(spec: DataKeyPairSpec) -> None:
    # GenerateDataKeyPair returns PrivateKeyCiphertextBlob: the PKCS#8 DER under the KMS key, with the context.
    key_id, material_id = uuid.uuid4(), new_key_material_id()
    material = generate_key_material(KeySpec.SYMMETRIC_DEFAULT)
    private = pair(spec).private_key
    blob = encrypt_symmetric(
        private, key_id=key_id, key_material_id=material_id, material=material, encryption_context={"a": "b"}
    )
    assert len(blob) <= 6144
    assert (
        decrypt_symmetric(
            blob, key_id=key_id, key_material_id=material_id, material=material, encryption_context={"a": "b"}
        )
        == private
    )


UNSUPPORTED_PAIR_SPECS = [
    (DataKeyPairSpec.SM2, "KeyPairSpec SM2 is not supported."),
    (
        DataKeyPairSpec.ML_KEM_512,
        "KeyPairSpec ML_KEM_512 is not supported: this KMS implements ML_KEM_768 and ML_KEM_1024 only (its "
        "cryptography library has no ML-KEM-512).",
    ),
]


def test_every_unsupported_pair_spec_is_listed() -> None:
    assert {spec for spec, _ in UNSUPPORTED_PAIR_SPECS} == set(
        DataKeyPairSpec
    ) - SUPPORTED_DATA_KEY_PAIR_SPECS


@pytest.mark.parametrize(("spec", "message"), UNSUPPORTED_PAIR_SPECS)
def test_unsupported_pair_specs(spec: DataKeyPairSpec, message: str) -> None:
    with pytest.raises(UnsupportedOperation) as caught:
        generate_data_key_pair(spec)
    assert caught.value.message == message
