"""ML-KEM (FIPS 203) Encapsulate/Decapsulate: ML_KEM_768 and ML_KEM_1024 with algorithm ML_KEM, each direction
checked against `cryptography`'s own ML-KEM keys (the exported DER public key, the PKCS#8 private key), the
lengths AWS documents, implicit rejection, and ML_KEM_512's refusal."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem

from keys.crypto import (
    ML_KEM_CIPHERTEXT_BYTES,
    ML_KEM_SHARED_SECRET_BYTES,
    EncapsulationAlgorithm,
    InvalidCiphertext,
    InvalidKeyUsage,
    KeyMaterialError,
    KeySpec,
    KeyUsage,
    UnsupportedOperation,
    decapsulate,
    encapsulate,
    key_algorithms,
)

Material = Callable[..., bytes]
ML_KEM = EncapsulationAlgorithm.ML_KEM
# spec -> (ciphertext bytes, DER SPKI bytes): FIPS 203 Table 3 (the Encapsulate output documentation gives the
# ciphertext lengths: 768, 1088, 1568), plus the 22-byte SPKI header.
SIZES = {KeySpec.ML_KEM_768: (1088, 1184 + 22), KeySpec.ML_KEM_1024: (1568, 1568 + 22)}
SPECS = list(SIZES)
ClientPublic = mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey
ClientPrivate = mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey


def client_public(der: bytes) -> ClientPublic:
    key = serialization.load_der_public_key(der)
    assert isinstance(key, ClientPublic)
    return key


def client_private(der: bytes) -> ClientPrivate:
    key = serialization.load_der_private_key(der, password=None)
    assert isinstance(key, ClientPrivate)
    return key


def test_the_documented_ciphertext_lengths() -> None:
    assert dict(ML_KEM_CIPHERTEXT_BYTES) == {
        KeySpec.ML_KEM_512: 768,
        KeySpec.ML_KEM_768: 1088,
        KeySpec.ML_KEM_1024: 1568,
    }


@pytest.mark.parametrize("spec", SPECS)
def test_ml_kem_keys_list_their_one_algorithm(spec: KeySpec, public_der: Material) -> None:
    algorithms = key_algorithms(spec, KeyUsage.ENCAPSULATE_DECAPSULATE)
    assert algorithms.members() == {"EncapsulationAlgorithms": ["ML_KEM"]}
    assert len(public_der(spec)) == SIZES[spec][1]


@pytest.mark.parametrize("spec", SPECS)
def test_encapsulate_here_decapsulate_outside(
    spec: KeySpec, material: Material, public_der: Material
) -> None:
    made = encapsulate(key_spec=spec, public_key_der=public_der(spec), encapsulation_algorithm=ML_KEM)
    assert len(made.ciphertext) == SIZES[spec][0]
    assert len(made.shared_secret) == ML_KEM_SHARED_SECRET_BYTES
    assert client_private(material(spec)).decapsulate(made.ciphertext) == made.shared_secret
    assert decapsulate(made.ciphertext, key_spec=spec, material=material(spec)) == made.shared_secret
    again = encapsulate(key_spec=spec, public_key_der=public_der(spec))
    assert (again.ciphertext, again.shared_secret) != (made.ciphertext, made.shared_secret)


@pytest.mark.parametrize("spec", SPECS)
def test_encapsulate_outside_decapsulate_here(
    spec: KeySpec, material: Material, public_der: Material
) -> None:
    shared_secret, ciphertext = client_public(public_der(spec)).encapsulate()
    assert decapsulate(
        ciphertext, key_spec=spec, material=material(spec), encapsulation_algorithm=ML_KEM
    ) == (shared_secret)


@pytest.mark.parametrize("spec", SPECS)
def test_implicit_rejection(spec: KeySpec, material: Material, public_der: Material) -> None:
    """A ciphertext of the right length that was altered or made for another key gives 32 pseudo-random bytes
    (not an error), the same ones each time: AWS documents exactly this."""
    made = encapsulate(key_spec=spec, public_key_der=public_der(spec))
    altered = made.ciphertext[:-1] + bytes([made.ciphertext[-1] ^ 1])
    foreign = encapsulate(key_spec=spec, public_key_der=public_der(spec, 1))
    for ciphertext, not_this in ((altered, made.shared_secret), (foreign.ciphertext, foreign.shared_secret)):
        first = decapsulate(ciphertext, key_spec=spec, material=material(spec))
        assert len(first) == ML_KEM_SHARED_SECRET_BYTES and first != not_this
        assert decapsulate(ciphertext, key_spec=spec, material=material(spec)) == first


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("length", ["empty", "one short", "one long", "other spec", "ML_KEM_512"])
def test_a_ciphertext_of_the_wrong_length_is_invalid(spec: KeySpec, length: str, material: Material) -> None:
    size = SIZES[spec][0]
    other = SIZES[KeySpec.ML_KEM_1024 if spec is KeySpec.ML_KEM_768 else KeySpec.ML_KEM_768][0]
    lengths = {
        "empty": 0,
        "one short": size - 1,
        "one long": size + 1,
        "other spec": other,
        "ML_KEM_512": 768,
    }
    with pytest.raises(InvalidCiphertext) as caught:
        decapsulate(b"\x07" * lengths[length], key_spec=spec, material=material(spec))
    assert (caught.value.code, caught.value.message) == ("InvalidCiphertextException", "")


@pytest.mark.parametrize(
    "spec", [KeySpec.ECC_NIST_P256, KeySpec.RSA_2048, KeySpec.ML_DSA_44, KeySpec.SYMMETRIC_DEFAULT]
)
def test_other_specs_cannot_encapsulate(spec: KeySpec, material: Material) -> None:
    with pytest.raises(InvalidKeyUsage) as caught:
        encapsulate(key_spec=spec, public_key_der=b"\x30\x00")
    assert caught.value.message == f"Algorithm ML_KEM is incompatible with key spec {spec}."
    with pytest.raises(InvalidKeyUsage):
        decapsulate(b"\x00" * 1088, key_spec=spec, material=material(spec))


def test_ml_kem_512_is_not_supported() -> None:
    expected = (
        "KeySpec ML_KEM_512 is not supported: this KMS implements ML_KEM_768 and ML_KEM_1024 only (its "
        "cryptography library has no ML-KEM-512)."
    )
    with pytest.raises(UnsupportedOperation) as caught:
        encapsulate(key_spec=KeySpec.ML_KEM_512, public_key_der=b"\x30\x00")
    assert caught.value.message == expected
    with pytest.raises(UnsupportedOperation):
        decapsulate(b"\x00" * 768, key_spec=KeySpec.ML_KEM_512, material=b"\x00" * 86)


def test_stored_key_of_another_spec_is_a_server_fault(material: Material, public_der: Material) -> None:
    with pytest.raises(KeyMaterialError):
        encapsulate(key_spec=KeySpec.ML_KEM_768, public_key_der=public_der(KeySpec.ML_KEM_1024))
    with pytest.raises(KeyMaterialError):
        decapsulate(b"\x00" * 1088, key_spec=KeySpec.ML_KEM_768, material=material(KeySpec.ML_KEM_1024))


def test_the_shared_secret_stays_out_of_repr(public_der: Material) -> None:
    made = encapsulate(key_spec=KeySpec.ML_KEM_768, public_key_der=public_der(KeySpec.ML_KEM_768))
    text = repr(made)
    assert "shared_secret" not in text
    for encoded in (repr(made.shared_secret), made.shared_secret.hex()):
        assert encoded not in text
