"""Key material for every spec: generation, serialized forms, loading, public keys, key material ids."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from keys.crypto import (
    KEY_MATERIAL_ID_BYTES,
    SUPPORTED_KEY_SPECS,
    CryptoValidationError,
    KeyMaterialError,
    KeySpec,
    UnsupportedOperation,
    generate_key_material,
    key_material_id_hex,
    new_key_material_id,
    parse_key_material_id,
    public_key_der,
    validate_key_material,
)
from keys.crypto.material import load_private_key

RAW_SPECS = {
    KeySpec.SYMMETRIC_DEFAULT: 32,
    KeySpec.HMAC_224: 28,
    KeySpec.HMAC_256: 32,
    KeySpec.HMAC_384: 48,
    KeySpec.HMAC_512: 64,
}
# spec -> (private key class, check on the loaded key)
ASYMMETRIC_SPECS: dict[KeySpec, tuple[type, Callable[[object], bool]]] = {
    KeySpec.RSA_2048: (rsa.RSAPrivateKey, lambda k: k.key_size == 2048),  # type: ignore[attr-defined]
    KeySpec.RSA_3072: (rsa.RSAPrivateKey, lambda k: k.key_size == 3072),  # type: ignore[attr-defined]
    KeySpec.RSA_4096: (rsa.RSAPrivateKey, lambda k: k.key_size == 4096),  # type: ignore[attr-defined]
    KeySpec.ECC_NIST_P256: (ec.EllipticCurvePrivateKey, lambda k: k.curve.name == "secp256r1"),  # type: ignore[attr-defined]
    KeySpec.ECC_NIST_P384: (ec.EllipticCurvePrivateKey, lambda k: k.curve.name == "secp384r1"),  # type: ignore[attr-defined]
    KeySpec.ECC_NIST_P521: (ec.EllipticCurvePrivateKey, lambda k: k.curve.name == "secp521r1"),  # type: ignore[attr-defined]
    KeySpec.ECC_SECG_P256K1: (ec.EllipticCurvePrivateKey, lambda k: k.curve.name == "secp256k1"),  # type: ignore[attr-defined]
    KeySpec.ECC_NIST_EDWARDS25519: (ed25519.Ed25519PrivateKey, lambda k: True),
    # ML-DSA and ML-KEM: stored as the seed (32 and 64 bytes), the key is derived from it when loaded.
    KeySpec.ML_DSA_44: (mldsa.MLDSA44PrivateKey, lambda k: len(k.private_bytes_raw()) == 32),  # type: ignore[attr-defined]
    KeySpec.ML_DSA_65: (mldsa.MLDSA65PrivateKey, lambda k: len(k.private_bytes_raw()) == 32),  # type: ignore[attr-defined]
    KeySpec.ML_DSA_87: (mldsa.MLDSA87PrivateKey, lambda k: len(k.private_bytes_raw()) == 32),  # type: ignore[attr-defined]
    KeySpec.ML_KEM_768: (mlkem.MLKEM768PrivateKey, lambda k: len(k.private_bytes_raw()) == 64),  # type: ignore[attr-defined]
    KeySpec.ML_KEM_1024: (mlkem.MLKEM1024PrivateKey, lambda k: len(k.private_bytes_raw()) == 64),  # type: ignore[attr-defined]
}
#: Stored PKCS#8 sizes of the seed forms (RFC 9881 / RFC 9935 "seed" choice), and SPKI sizes AWS returns.
SEED_PKCS8_BYTES = {
    KeySpec.ML_DSA_44: 54,
    KeySpec.ML_DSA_65: 54,
    KeySpec.ML_DSA_87: 54,
    KeySpec.ML_KEM_768: 86,
    KeySpec.ML_KEM_1024: 86,
}
UNSUPPORTED = sorted(set(KeySpec) - SUPPORTED_KEY_SPECS)
ClientKey = Callable[[KeySpec], PrivateKeyTypes]


def test_tables_cover_every_supported_spec() -> None:
    assert set(RAW_SPECS) | set(ASYMMETRIC_SPECS) == SUPPORTED_KEY_SPECS


@pytest.mark.parametrize(("spec", "length"), RAW_SPECS.items())
def test_raw_material(spec: KeySpec, length: int) -> None:
    first, second = generate_key_material(spec), generate_key_material(spec)
    assert len(first) == len(second) == length
    assert first != second
    validate_key_material(spec, first)


@pytest.mark.parametrize("spec", ASYMMETRIC_SPECS)
def test_asymmetric_material_is_pkcs8_der(
    spec: KeySpec, material: Callable[..., bytes], client_private_key: ClientKey
) -> None:
    der = material(spec)
    key = client_private_key(spec)
    key_class, check = ASYMMETRIC_SPECS[spec]
    assert isinstance(key, key_class)
    assert check(key)
    # PKCS#8 re-serialization is canonical: what we store is exactly PrivateKeyInfo DER.
    assert (
        key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        == der
    )
    validate_key_material(spec, der)


@pytest.mark.parametrize("spec", ASYMMETRIC_SPECS)
def test_public_key_is_der_spki_of_the_private_key(
    spec: KeySpec,
    material: Callable[..., bytes],
    public_der: Callable[..., bytes],
    client_private_key: ClientKey,
) -> None:
    der = public_der(spec)
    public = serialization.load_der_public_key(der)
    private = client_private_key(spec)
    assert public == private.public_key()
    assert public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == public_key_der(spec, material(spec))
    assert public_der(spec) != public_der(spec, 1)  # another key of the same spec


@pytest.mark.parametrize("spec", RAW_SPECS)
def test_symmetric_and_hmac_keys_have_no_public_key(spec: KeySpec) -> None:
    with pytest.raises(UnsupportedOperation):
        public_key_der(spec, generate_key_material(spec))


@pytest.mark.parametrize(("spec", "length"), SEED_PKCS8_BYTES.items())
def test_post_quantum_material_is_the_seed_form(
    spec: KeySpec, length: int, material: Callable[..., bytes], client_private_key: ClientKey
) -> None:
    der = material(spec)
    assert len(der) == length
    seed = client_private_key(spec).private_bytes_raw()  # type: ignore[union-attr]
    # PrivateKeyInfo whose privateKey OCTET STRING holds the [0] IMPLICIT seed: the seed ends the encoding.
    assert der.endswith(bytes([0x80, len(seed)]) + seed)


@pytest.mark.parametrize("spec", UNSUPPORTED)
def test_unsupported_specs(spec: KeySpec) -> None:
    with pytest.raises(UnsupportedOperation, match=f"^KeySpec {spec} is not supported[.:]"):
        generate_key_material(spec)
    with pytest.raises(UnsupportedOperation):
        public_key_der(spec, b"\x00" * 32)
    with pytest.raises(UnsupportedOperation):
        validate_key_material(spec, b"\x00" * 32)


@pytest.mark.parametrize(
    ("spec", "other"),
    [
        (KeySpec.ECC_NIST_P384, KeySpec.ECC_NIST_P256),
        (KeySpec.ECC_NIST_P256, KeySpec.ECC_SECG_P256K1),
        (KeySpec.RSA_3072, KeySpec.RSA_2048),
        (KeySpec.RSA_2048, KeySpec.ECC_NIST_EDWARDS25519),
        (KeySpec.ECC_NIST_EDWARDS25519, KeySpec.ECC_NIST_P256),
        (KeySpec.ML_DSA_44, KeySpec.ML_DSA_65),
        (KeySpec.ML_DSA_87, KeySpec.ML_KEM_1024),
        (KeySpec.ML_KEM_768, KeySpec.ML_KEM_1024),
        (KeySpec.ML_KEM_1024, KeySpec.ML_DSA_44),
        (KeySpec.RSA_2048, KeySpec.ML_KEM_768),
    ],
)
def test_material_of_another_spec_is_rejected(
    spec: KeySpec, other: KeySpec, material: Callable[..., bytes]
) -> None:
    with pytest.raises(KeyMaterialError) as caught:
        public_key_der(spec, material(other))
    assert caught.value.code == "KMSInternalException"
    with pytest.raises(KeyMaterialError):
        validate_key_material(spec, material(other))


@pytest.mark.parametrize("spec", ASYMMETRIC_SPECS)
def test_corrupt_material_is_rejected(spec: KeySpec, material: Callable[..., bytes]) -> None:
    der = material(spec)
    for broken in (b"", b"\x30\x03\x02\x01\x00", der[:-1], der[: len(der) // 2]):
        with pytest.raises(KeyMaterialError):
            load_private_key(spec, broken)


@pytest.mark.parametrize(("spec", "length"), RAW_SPECS.items())
def test_raw_material_of_the_wrong_length_is_rejected(spec: KeySpec, length: int) -> None:
    for wrong in (b"", b"\x00" * (length - 1), b"\x00" * (length + 1)):
        with pytest.raises(KeyMaterialError):
            validate_key_material(spec, wrong)


def test_full_check_rejects_an_inconsistent_rsa_key(client_private_key: ClientKey) -> None:
    key = client_private_key(KeySpec.RSA_2048)
    assert isinstance(key, rsa.RSAPrivateKey)
    numbers = key.private_numbers()
    broken = rsa.RSAPrivateNumbers(
        p=numbers.p,
        q=numbers.q,
        d=numbers.d,
        dmp1=numbers.dmp1 ^ 2,  # a CRT exponent that does not match d: the RSA-CRT fault-attack shape
        dmq1=numbers.dmq1,
        iqmp=numbers.iqmp,
        public_numbers=numbers.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)
    der = broken.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyMaterialError):
        validate_key_material(KeySpec.RSA_2048, der)


# --- key material ids --------------------------------------------------------------------------------------


def test_new_key_material_ids() -> None:
    ids = {new_key_material_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == KEY_MATERIAL_ID_BYTES == 32 for i in ids)


def test_key_material_id_hex_round_trip() -> None:
    material_id = new_key_material_id()
    text = key_material_id_hex(material_id)
    assert len(text) == 64 and text == text.lower()
    assert parse_key_material_id(text) == material_id
    assert parse_key_material_id(text.upper()) == material_id


@pytest.mark.parametrize(
    "bad",
    ["", "ab" * 31, "ab" * 33, "zz" * 32, "ab" * 31 + " a", " " + "a" * 63, "0x" + "ab" * 31],
)
def test_bad_key_material_id_hex(bad: str) -> None:
    with pytest.raises(CryptoValidationError, match="KeyMaterialId must be 64 hexadecimal characters"):
        parse_key_material_id(bad)


def test_key_material_id_hex_needs_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        key_material_id_hex(b"\x00" * 31)
