"""Sign/Verify for every supported (spec, algorithm, message type), with offline verification by `cryptography`
(pycryptodome for Ed25519ph, which `cryptography` lacks) using the exported DER public key, exactly as a client of
GetPublicKey would do it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from keys.crypto import (
    DIGEST_BYTES,
    MESSAGE_MAX_BYTES,
    CryptoValidationError,
    InvalidKeyUsage,
    InvalidSignature,
    KeySpec,
    KeyUsage,
    MessageType,
    SigningAlgorithm,
    key_algorithms,
    sign,
    verify,
)
from tests.crypto import pycryptodome_ed25519ph

Material = Callable[..., bytes]
SIGNING_SPECS = [
    KeySpec.RSA_2048,
    KeySpec.RSA_3072,
    KeySpec.RSA_4096,
    KeySpec.ECC_NIST_P256,
    KeySpec.ECC_NIST_P384,
    KeySpec.ECC_NIST_P521,
    KeySpec.ECC_SECG_P256K1,
    KeySpec.ECC_NIST_EDWARDS25519,
]
PAIRS = [
    (spec, alg)
    for spec in SIGNING_SPECS
    for alg in key_algorithms(spec, KeyUsage.SIGN_VERIFY).signing_algorithms
]
ED25519, ED25519PH = SigningAlgorithm.ED25519_SHA_512, SigningAlgorithm.ED25519_PH_SHA_512
#: The Ed25519 algorithms take one message type each: pure Ed25519 the message, Ed25519ph its SHA-512 digest.
ONLY_MESSAGE_TYPE = {ED25519: MessageType.RAW, ED25519PH: MessageType.DIGEST}


def message_types(alg: SigningAlgorithm) -> list[MessageType]:
    only = ONLY_MESSAGE_TYPE.get(alg)
    return [only] if only else [MessageType.RAW, MessageType.DIGEST]


CASES = [(spec, alg, message_type) for spec, alg in PAIRS for message_type in message_types(alg)]
HASHLIB = {32: hashlib.sha256, 48: hashlib.sha384, 64: hashlib.sha512}
CLIENT_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
MESSAGE = b"The quick brown fox jumps over the lazy dog"


def test_every_supported_pair_is_covered() -> None:
    assert len(PAIRS) == 3 * 6 + 4 + 2  # RSA x 6 algorithms, 4 ECDSA specs, Ed25519 (pure and ph)
    assert len(CASES) == 2 * len(PAIRS) - 2


def as_sent(alg: SigningAlgorithm, message_type: MessageType, message: bytes = MESSAGE) -> bytes:
    """What the caller sends: the message (RAW) or its digest (DIGEST)."""
    if message_type is MessageType.RAW:
        return message
    return HASHLIB[DIGEST_BYTES[alg]](message).digest()


def client_verify(
    public_der: bytes, alg: SigningAlgorithm, signature: bytes, message: bytes = MESSAGE
) -> None:
    """Offline verification, as documented by AWS for each algorithm, with nothing from keys.crypto."""
    public = serialization.load_der_public_key(public_der)
    if alg is ED25519:
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(signature, message)
        return
    if alg is ED25519PH:
        # AWS hashes the caller's digest again: the signature is Ed25519ph with the digest as HashEdDSA's message.
        assert isinstance(public, ed25519.Ed25519PublicKey)
        pycryptodome_ed25519ph.verify(public.public_bytes_raw(), hashlib.sha512(message).digest(), signature)
        return
    digest = CLIENT_HASHES[alg[-3:]]()
    if alg.startswith("RSASSA_PSS"):
        assert isinstance(public, rsa.RSAPublicKey)
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.DIGEST_LENGTH)
        public.verify(signature, message, pss, digest)
    elif alg.startswith("RSASSA_PKCS1"):
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, message, padding.PKCS1v15(), digest)
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, message, ec.ECDSA(digest))
        decode_dss_signature(signature)  # DER Ecdsa-Sig-Value, as KMS returns


def do_sign(spec: KeySpec, alg: SigningAlgorithm, message_type: MessageType, material: Material) -> bytes:
    return sign(
        as_sent(alg, message_type),
        key_spec=spec,
        material=material(spec),
        signing_algorithm=alg,
        message_type=message_type,
    )


def do_verify(
    spec: KeySpec,
    alg: SigningAlgorithm,
    message_type: MessageType,
    signature: bytes,
    public_der: Material,
    message: bytes | None = None,
) -> None:
    verify(
        as_sent(alg, message_type) if message is None else message,
        signature,
        key_spec=spec,
        public_key_der=public_der(spec),
        signing_algorithm=alg,
        message_type=message_type,
    )


@pytest.mark.parametrize(("spec", "alg", "message_type"), CASES)
def test_sign_verify_round_trip(
    spec: KeySpec, alg: SigningAlgorithm, message_type: MessageType, material: Material, public_der: Material
) -> None:
    signature = do_sign(spec, alg, message_type, material)
    do_verify(spec, alg, message_type, signature, public_der)


@pytest.mark.parametrize(("spec", "alg", "message_type"), CASES)
def test_interop_signature_verifies_offline_with_the_exported_public_key(
    spec: KeySpec, alg: SigningAlgorithm, message_type: MessageType, material: Material, public_der: Material
) -> None:
    # Whether the caller sent the message or its digest, the signature is over the message (for Ed25519ph: over
    # the digest, which is what AWS signs).
    client_verify(public_der(spec), alg, do_sign(spec, alg, message_type, material))


@pytest.mark.parametrize(("spec", "alg"), PAIRS)
def test_interop_signature_made_offline_verifies_here(
    spec: KeySpec,
    alg: SigningAlgorithm,
    client_private_key: Callable[[KeySpec], PrivateKeyTypes],
    public_der: Material,
) -> None:
    private = client_private_key(spec)
    if alg is ED25519PH:
        assert isinstance(private, ed25519.Ed25519PrivateKey)
        signature = pycryptodome_ed25519ph.sign(private.private_bytes_raw(), hashlib.sha512(MESSAGE).digest())
    elif isinstance(private, ed25519.Ed25519PrivateKey):
        signature = private.sign(MESSAGE)
    else:
        digest = CLIENT_HASHES[alg[-3:]]()
        if isinstance(private, rsa.RSAPrivateKey):
            scheme: padding.AsymmetricPadding = (
                padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.DIGEST_LENGTH)
                if alg.startswith("RSASSA_PSS")
                else padding.PKCS1v15()
            )
            signature = private.sign(MESSAGE, scheme, digest)
        else:
            assert isinstance(private, ec.EllipticCurvePrivateKey)
            signature = private.sign(MESSAGE, ec.ECDSA(digest))
    for message_type in message_types(alg):
        do_verify(spec, alg, message_type, signature, public_der)


@pytest.mark.parametrize("spec", [KeySpec.RSA_2048, KeySpec.RSA_4096])
@pytest.mark.parametrize(
    "alg",
    [
        SigningAlgorithm.RSASSA_PKCS1_V1_5_SHA_256,
        SigningAlgorithm.RSASSA_PKCS1_V1_5_SHA_384,
        SigningAlgorithm.RSASSA_PKCS1_V1_5_SHA_512,
    ],
)
def test_pkcs1_raw_and_digest_give_the_same_signature(
    spec: KeySpec, alg: SigningAlgorithm, material: Material
) -> None:
    # PKCS#1 v1.5 is deterministic: hashing here (RAW) and by the caller (DIGEST) must sign the same bytes.
    assert do_sign(spec, alg, MessageType.RAW, material) == do_sign(spec, alg, MessageType.DIGEST, material)


@pytest.mark.parametrize("alg", [ED25519, ED25519PH])
def test_ed25519_signature_is_64_raw_bytes_and_deterministic(
    alg: SigningAlgorithm, material: Material
) -> None:
    spec, message_type = KeySpec.ECC_NIST_EDWARDS25519, ONLY_MESSAGE_TYPE[alg]
    first = do_sign(spec, alg, message_type, material)
    assert len(first) == 64
    assert first == do_sign(spec, alg, message_type, material)


# --- failures ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "alg", "message_type"), CASES)
def test_tampered_signature_or_message_is_invalid(
    spec: KeySpec, alg: SigningAlgorithm, message_type: MessageType, material: Material, public_der: Material
) -> None:
    signature = do_sign(spec, alg, message_type, material)
    other = as_sent(alg, message_type, MESSAGE + b".")
    attempts: list[tuple[bytes, bytes | None, Material]] = [
        (bytes([signature[0] ^ 0x01]) + signature[1:], None, public_der),
        (signature[:-1] + bytes([signature[-1] ^ 0x80]), None, public_der),
        (signature[:-1], None, public_der),
        (signature + b"\x00", None, public_der),
        (b"\x00", None, public_der),
        (b"", None, public_der),
        (signature, other, public_der),
        (signature, None, lambda s: public_der(s, 1)),  # another key of the same spec
    ]
    for bad_signature, message, public in attempts:
        with pytest.raises(InvalidSignature) as caught:
            do_verify(spec, alg, message_type, bad_signature, public, message)
        assert caught.value.code == "KMSInvalidSignatureException"
        assert caught.value.message == ""


def test_signature_over_the_size_limit(public_der: Material) -> None:
    with pytest.raises(CryptoValidationError, match="less than or equal to 6144"):
        do_verify(
            KeySpec.ECC_NIST_P256, SigningAlgorithm.ECDSA_SHA_256, MessageType.RAW, b"\x00" * 6145, public_der
        )


DIGEST_ALGORITHMS = sorted({alg for _, alg in PAIRS if alg is not ED25519})


@pytest.mark.parametrize("alg", DIGEST_ALGORITHMS)
def test_digest_length_must_match_the_algorithm(alg: SigningAlgorithm, material: Material) -> None:
    spec = next(spec for spec, a in PAIRS if a is alg)
    length = DIGEST_BYTES[alg]
    for wrong in (0, 1, length - 1, length + 1, 2 * length):
        with pytest.raises(CryptoValidationError) as caught:
            sign(
                b"\x00" * wrong,
                key_spec=spec,
                material=material(spec),
                signing_algorithm=alg,
                message_type=MessageType.DIGEST,
            )
        if wrong:
            assert caught.value.message == f"Digest is invalid length for algorithm {alg}."
    sign(
        b"\x00" * length,
        key_spec=spec,
        material=material(spec),
        signing_algorithm=alg,
        message_type=MessageType.DIGEST,
    )


def test_awss_recorded_digest_message(public_der: Material) -> None:
    with pytest.raises(CryptoValidationError) as caught:
        verify(
            b"\x00" * 31,
            b"sig",
            key_spec=KeySpec.ECC_NIST_P256,
            public_key_der=public_der(KeySpec.ECC_NIST_P256),
            signing_algorithm=SigningAlgorithm.ECDSA_SHA_256,
            message_type=MessageType.DIGEST,
        )
    assert caught.value.code == "ValidationException"
    assert str(caught.value) == "Digest is invalid length for algorithm ECDSA_SHA_256."


@pytest.mark.parametrize(
    ("spec", "alg"),
    [
        (KeySpec.ECC_NIST_P384, SigningAlgorithm.ECDSA_SHA_384),
        (KeySpec.RSA_2048, SigningAlgorithm.RSASSA_PSS_SHA_512),
        (KeySpec.ECC_NIST_EDWARDS25519, SigningAlgorithm.ED25519_SHA_512),
    ],
)
def test_raw_message_size_limits(
    spec: KeySpec, alg: SigningAlgorithm, material: Material, public_der: Material
) -> None:
    largest = b"\x5a" * MESSAGE_MAX_BYTES
    signature = sign(largest, key_spec=spec, material=material(spec), signing_algorithm=alg)
    verify(largest, signature, key_spec=spec, public_key_der=public_der(spec), signing_algorithm=alg)
    for size, constraint in ((4097, "less than or equal to 4096"), (0, "greater than or equal to 1")):
        with pytest.raises(CryptoValidationError) as caught:
            sign(b"\x5a" * size, key_spec=spec, material=material(spec), signing_algorithm=alg)
        assert caught.value.message == (
            f"1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have length "
            f"{constraint}"
        )


def test_ed25519_needs_raw(material: Material) -> None:
    spec = KeySpec.ECC_NIST_EDWARDS25519
    with pytest.raises(
        CryptoValidationError, match=r"^Message type DIGEST is incompatible with algorithm ED25519_SHA_512\.$"
    ):
        sign(
            b"\x00" * 64,
            key_spec=spec,
            material=material(spec),
            signing_algorithm=SigningAlgorithm.ED25519_SHA_512,
            message_type=MessageType.DIGEST,
        )


def test_external_mu_is_for_ml_dsa_only(material: Material) -> None:
    with pytest.raises(CryptoValidationError, match="EXTERNAL_MU"):
        sign(
            b"\x00" * 64,
            key_spec=KeySpec.ECC_NIST_P256,
            material=material(KeySpec.ECC_NIST_P256),
            signing_algorithm=SigningAlgorithm.ECDSA_SHA_256,
            message_type=MessageType.EXTERNAL_MU,
        )


@pytest.mark.parametrize(
    ("spec", "alg"),
    [
        (KeySpec.ECC_NIST_P256, SigningAlgorithm.ECDSA_SHA_384),
        (KeySpec.ECC_NIST_P521, SigningAlgorithm.ECDSA_SHA_256),
        (KeySpec.ECC_SECG_P256K1, SigningAlgorithm.RSASSA_PSS_SHA_256),
        (KeySpec.RSA_2048, SigningAlgorithm.ECDSA_SHA_256),
        (KeySpec.RSA_3072, SigningAlgorithm.ED25519_SHA_512),
        (KeySpec.ECC_NIST_EDWARDS25519, SigningAlgorithm.ECDSA_SHA_512),
        (KeySpec.HMAC_256, SigningAlgorithm.RSASSA_PSS_SHA_256),
        (KeySpec.SYMMETRIC_DEFAULT, SigningAlgorithm.ECDSA_SHA_256),
    ],
)
def test_algorithm_must_suit_the_spec(spec: KeySpec, alg: SigningAlgorithm) -> None:
    message = f"^Algorithm {alg} is incompatible with key spec {spec}.$"
    with pytest.raises(InvalidKeyUsage, match=message):
        sign(b"m", key_spec=spec, material=b"", signing_algorithm=alg)
    with pytest.raises(InvalidKeyUsage, match=message):
        verify(b"m", b"s", key_spec=spec, public_key_der=b"", signing_algorithm=alg)
