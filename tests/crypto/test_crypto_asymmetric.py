"""RSA OAEP Encrypt/Decrypt (with interop against `cryptography` as an outside client) and ECDH."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from keys.crypto import (
    RSA_OAEP_MAX_PLAINTEXT_BYTES,
    CryptoValidationError,
    EncryptionAlgorithm,
    InvalidCiphertext,
    InvalidKeyUsage,
    KeyAgreementAlgorithm,
    KeyMaterialError,
    KeySpec,
    UnsupportedOperation,
    decrypt_asymmetric,
    derive_shared_secret,
    encrypt_asymmetric,
)

Material = Callable[..., bytes]
ClientKey = Callable[[KeySpec], PrivateKeyTypes]
RSA_SPECS = [KeySpec.RSA_2048, KeySpec.RSA_3072, KeySpec.RSA_4096]
OAEP = [EncryptionAlgorithm.RSAES_OAEP_SHA_1, EncryptionAlgorithm.RSAES_OAEP_SHA_256]
CASES = [(spec, algorithm) for spec in RSA_SPECS for algorithm in OAEP]
HASHES = {
    EncryptionAlgorithm.RSAES_OAEP_SHA_1: hashes.SHA1,
    EncryptionAlgorithm.RSAES_OAEP_SHA_256: hashes.SHA256,
}


def client_oaep(algorithm: EncryptionAlgorithm) -> padding.OAEP:
    """What an outside client uses for KMS's RSAES_OAEP_SHA_*: OAEP and MGF1 over the same hash, no label."""
    digest = HASHES[algorithm]()
    return padding.OAEP(mgf=padding.MGF1(algorithm=digest), algorithm=digest, label=None)


def encrypt(spec: KeySpec, algorithm: EncryptionAlgorithm, plaintext: bytes, public_der: Material) -> bytes:
    return encrypt_asymmetric(
        plaintext, key_spec=spec, public_key_der=public_der(spec), encryption_algorithm=algorithm
    )


def decrypt(spec: KeySpec, algorithm: EncryptionAlgorithm, ciphertext: bytes, material: Material) -> bytes:
    return decrypt_asymmetric(
        ciphertext, key_spec=spec, material=material(spec), encryption_algorithm=algorithm
    )


@pytest.mark.parametrize(("spec", "algorithm"), CASES)
def test_round_trip_up_to_the_limit(
    spec: KeySpec, algorithm: EncryptionAlgorithm, material: Material, public_der: Material
) -> None:
    limit = RSA_OAEP_MAX_PLAINTEXT_BYTES[(spec, algorithm)]
    for plaintext in (b"\x00", b"secret", b"\xa5" * limit):
        ciphertext = encrypt(spec, algorithm, plaintext, public_der)
        assert len(ciphertext) == int(spec.removeprefix("RSA_")) // 8
        assert decrypt(spec, algorithm, ciphertext, material) == plaintext


@pytest.mark.parametrize(("spec", "algorithm"), CASES)
def test_one_byte_over_the_limit_is_awss_validation_error(
    spec: KeySpec, algorithm: EncryptionAlgorithm, public_der: Material
) -> None:
    limit = RSA_OAEP_MAX_PLAINTEXT_BYTES[(spec, algorithm)]
    with pytest.raises(CryptoValidationError) as caught:
        encrypt(spec, algorithm, b"\x00" * (limit + 1), public_der)
    assert caught.value.message == (
        f"Algorithm {algorithm} and key spec {spec} cannot encrypt data larger than {limit} bytes."
    )


def test_awss_recorded_message_for_rsa_2048_oaep_256(public_der: Material) -> None:
    algorithm = EncryptionAlgorithm.RSAES_OAEP_SHA_256
    encrypt(KeySpec.RSA_2048, algorithm, b"\x00" * 190, public_der)
    with pytest.raises(CryptoValidationError) as caught:
        encrypt(KeySpec.RSA_2048, algorithm, b"\x00" * 191, public_der)
    assert caught.value.code == "ValidationException"
    assert str(caught.value) == (
        "Algorithm RSAES_OAEP_SHA_256 and key spec RSA_2048 cannot encrypt data larger than 190 bytes."
    )


def test_empty_plaintext_is_refused(public_der: Material) -> None:
    with pytest.raises(CryptoValidationError, match="greater than or equal to 1"):
        encrypt(KeySpec.RSA_2048, EncryptionAlgorithm.RSAES_OAEP_SHA_256, b"", public_der)


@pytest.mark.parametrize(("spec", "algorithm"), CASES)
def test_interop_ciphertext_from_an_outside_client_decrypts_here(
    spec: KeySpec, algorithm: EncryptionAlgorithm, material: Material, public_der: Material
) -> None:
    # A client that only has GetPublicKey's DER encrypts offline; Decrypt must accept it.
    public = serialization.load_der_public_key(public_der(spec))
    assert isinstance(public, rsa.RSAPublicKey)
    plaintext = b"encrypted outside the service"
    ciphertext = public.encrypt(plaintext, client_oaep(algorithm))
    assert decrypt(spec, algorithm, ciphertext, material) == plaintext


@pytest.mark.parametrize(("spec", "algorithm"), CASES)
def test_interop_ciphertext_made_here_is_standard_oaep(
    spec: KeySpec, algorithm: EncryptionAlgorithm, client_private_key: ClientKey, public_der: Material
) -> None:
    private = client_private_key(spec)
    assert isinstance(private, rsa.RSAPrivateKey)
    ciphertext = encrypt(spec, algorithm, b"made inside", public_der)
    assert private.decrypt(ciphertext, client_oaep(algorithm)) == b"made inside"


@pytest.mark.parametrize("spec", RSA_SPECS)
def test_decrypt_with_the_other_oaep_hash_fails(
    spec: KeySpec, material: Material, public_der: Material
) -> None:
    ciphertext = encrypt(spec, EncryptionAlgorithm.RSAES_OAEP_SHA_256, b"data", public_der)
    with pytest.raises(InvalidCiphertext) as caught:
        decrypt(spec, EncryptionAlgorithm.RSAES_OAEP_SHA_1, ciphertext, material)
    assert caught.value.message == ""


def test_tampered_truncated_and_foreign_ciphertexts_fail(material: Material, public_der: Material) -> None:
    spec, algorithm = KeySpec.RSA_2048, EncryptionAlgorithm.RSAES_OAEP_SHA_256
    ciphertext = encrypt(spec, algorithm, b"data", public_der)
    other_key = encrypt_asymmetric(
        b"data", key_spec=spec, public_key_der=public_der(spec, 1), encryption_algorithm=algorithm
    )
    broken = [
        bytes([ciphertext[0] ^ 1]) + ciphertext[1:],
        ciphertext[:-1] + bytes([ciphertext[-1] ^ 0x80]),
        ciphertext[:-1],
        ciphertext + b"\x00",
        b"",
        b"\x00" * 256,
        b"\xff" * 256,
        other_key,
    ]
    for bad in broken:
        with pytest.raises(InvalidCiphertext):
            decrypt(spec, algorithm, bad, material)


@pytest.mark.parametrize(
    ("spec", "algorithm"),
    [
        (KeySpec.RSA_2048, EncryptionAlgorithm.SYMMETRIC_DEFAULT),
        (KeySpec.RSA_4096, EncryptionAlgorithm.SM2PKE),
        (KeySpec.ECC_NIST_P256, EncryptionAlgorithm.RSAES_OAEP_SHA_256),
        (KeySpec.SYMMETRIC_DEFAULT, EncryptionAlgorithm.RSAES_OAEP_SHA_1),
    ],
)
def test_algorithm_must_suit_the_spec(spec: KeySpec, algorithm: EncryptionAlgorithm) -> None:
    message = f"^Algorithm {algorithm} is incompatible with key spec {spec}.$"
    with pytest.raises(InvalidKeyUsage, match=message):
        encrypt_asymmetric(b"x", key_spec=spec, public_key_der=b"", encryption_algorithm=algorithm)
    with pytest.raises(InvalidKeyUsage, match=message):
        decrypt_asymmetric(b"x", key_spec=spec, material=b"", encryption_algorithm=algorithm)


def test_stored_public_key_of_another_spec_is_a_server_fault(public_der: Material) -> None:
    with pytest.raises(KeyMaterialError):
        encrypt_asymmetric(
            b"x",
            key_spec=KeySpec.RSA_3072,
            public_key_der=public_der(KeySpec.RSA_2048),
            encryption_algorithm=EncryptionAlgorithm.RSAES_OAEP_SHA_256,
        )


# --- ECDH (DeriveSharedSecret) -----------------------------------------------------------------------------

CURVES = {
    KeySpec.ECC_NIST_P256: ec.SECP256R1,
    KeySpec.ECC_NIST_P384: ec.SECP384R1,
    KeySpec.ECC_NIST_P521: ec.SECP521R1,
}


def spki(public: ec.EllipticCurvePublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize(("spec", "curve"), CURVES.items())
def test_ecdh_matches_the_peers_view(
    spec: KeySpec, curve: type[ec.EllipticCurve], material: Material, public_der: Material
) -> None:
    peer = ec.generate_private_key(curve())
    coordinate_bytes = (curve().key_size + 7) // 8
    secret = derive_shared_secret(spki(peer.public_key()), key_spec=spec, material=material(spec))
    ours = serialization.load_der_public_key(public_der(spec))
    assert isinstance(ours, ec.EllipticCurvePublicKey)
    assert secret == peer.exchange(ec.ECDH(), ours)
    assert len(secret) == coordinate_bytes


@pytest.mark.parametrize(
    "peer_public",
    [
        b"",
        b"not a key",
        spki(ec.generate_private_key(ec.SECP384R1()).public_key()),  # another curve
        spki(ec.generate_private_key(ec.SECP256K1()).public_key()),
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
    ],
    ids=["empty", "garbage", "P-384", "secp256k1", "Ed25519"],
)
def test_ecdh_refuses_a_peer_key_not_on_the_curve(peer_public: bytes, material: Material) -> None:
    with pytest.raises(CryptoValidationError, match=r"^PublicKey must be a DER-encoded X\.509"):
        derive_shared_secret(
            peer_public, key_spec=KeySpec.ECC_NIST_P256, material=material(KeySpec.ECC_NIST_P256)
        )


def test_ecdh_public_key_size_limit(material: Material) -> None:
    with pytest.raises(CryptoValidationError, match="less than or equal to 8192"):
        derive_shared_secret(
            b"\x30" * 8193, key_spec=KeySpec.ECC_NIST_P256, material=material(KeySpec.ECC_NIST_P256)
        )


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (KeySpec.ECC_SECG_P256K1, InvalidKeyUsage),
        (KeySpec.ECC_NIST_EDWARDS25519, InvalidKeyUsage),
        (KeySpec.RSA_2048, InvalidKeyUsage),
        (KeySpec.SM2, UnsupportedOperation),
    ],
)
def test_ecdh_only_for_nist_curves(spec: KeySpec, error: type[Exception]) -> None:
    with pytest.raises(error):
        derive_shared_secret(
            b"", key_spec=spec, material=b"", key_agreement_algorithm=KeyAgreementAlgorithm.ECDH
        )
