"""ML-DSA (FIPS 204) Sign/Verify: ML_DSA_44/65/87 with ML_DSA_SHAKE_256, MessageType RAW (pure ML-DSA, empty
context) and EXTERNAL_MU (the caller's 64-byte mu), each checked by an independent verifier: `cryptography`'s
own ML-DSA public key loaded from the exported DER, and for EXTERNAL_MU a mu computed with MLDSAMuHasher over
that public key and the message."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mldsa

from keys.crypto import (
    MESSAGE_MAX_BYTES,
    ML_DSA_MU_BYTES,
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
from keys.crypto.signing import mu_length_message

Material = Callable[..., bytes]
ML_DSA = SigningAlgorithm.ML_DSA_SHAKE_256
RAW, DIGEST, EXTERNAL_MU = MessageType.RAW, MessageType.DIGEST, MessageType.EXTERNAL_MU
# spec -> (signature bytes, public key bytes in the DER SPKI): FIPS 204 Table 2, plus the 22-byte SPKI header.
SIZES = {
    KeySpec.ML_DSA_44: (2420, 1312 + 22),
    KeySpec.ML_DSA_65: (3309, 1952 + 22),
    KeySpec.ML_DSA_87: (4627, 2592 + 22),
}
SPECS = list(SIZES)
MESSAGE = b"post-quantum firmware image, version 7"
OtherPublic = mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey | mldsa.MLDSA87PublicKey


def client_public_key(public_der: bytes) -> OtherPublic:
    public = serialization.load_der_public_key(public_der)
    assert isinstance(public, OtherPublic)
    return public


def client_mu(public_der: bytes, message: bytes) -> bytes:
    """mu as a client computes it for EXTERNAL_MU (FIPS 204 section 6.2, empty context)."""
    hasher = mldsa.MLDSAMuHasher(client_public_key(public_der))
    hasher.update(message)
    return hasher.finalize()


def test_ml_dsa_keys_list_their_one_algorithm() -> None:
    for spec in SPECS:
        assert key_algorithms(spec, KeyUsage.SIGN_VERIFY).members() == {
            "SigningAlgorithms": ["ML_DSA_SHAKE_256"]
        }


@pytest.mark.parametrize("spec", SPECS)
def test_public_key_is_the_fips_204_spki(spec: KeySpec, public_der: Material) -> None:
    der = public_der(spec)
    assert len(der) == SIZES[spec][1]
    assert len(client_public_key(der).public_bytes_raw()) == SIZES[spec][1] - 22


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("message", [b"m", MESSAGE, b"\xa5" * MESSAGE_MAX_BYTES], ids=["1", "short", "4096"])
def test_raw_signature_is_pure_ml_dsa(
    spec: KeySpec, message: bytes, material: Material, public_der: Material
) -> None:
    signature = sign(message, key_spec=spec, material=material(spec), signing_algorithm=ML_DSA)
    assert len(signature) == SIZES[spec][0]
    public = client_public_key(public_der(spec))
    public.verify(signature, message)  # pure ML-DSA, empty context: what any FIPS 204 verifier checks
    public.verify_mu(signature, client_mu(public_der(spec), message))
    verify(message, signature, key_spec=spec, public_key_der=public_der(spec), signing_algorithm=ML_DSA)


@pytest.mark.parametrize("spec", SPECS)
def test_external_mu_signs_the_callers_mu(spec: KeySpec, material: Material, public_der: Material) -> None:
    large = b"\x01" * (MESSAGE_MAX_BYTES * 4)  # the reason for EXTERNAL_MU: messages past 4096 bytes
    mu = client_mu(public_der(spec), large)
    assert len(mu) == ML_DSA_MU_BYTES
    signature = sign(
        mu, key_spec=spec, material=material(spec), signing_algorithm=ML_DSA, message_type=EXTERNAL_MU
    )
    assert len(signature) == SIZES[spec][0]
    client_public_key(public_der(spec)).verify(signature, large)  # a signature of the message itself
    kms_verify = {"key_spec": spec, "public_key_der": public_der(spec), "signing_algorithm": ML_DSA}
    verify(mu, signature, message_type=EXTERNAL_MU, **kms_verify)
    # "The message type does not need to be the same as the one used for signing": RAW verifies it too.
    raw_signature = sign(MESSAGE, key_spec=spec, material=material(spec), signing_algorithm=ML_DSA)
    verify(client_mu(public_der(spec), MESSAGE), raw_signature, message_type=EXTERNAL_MU, **kms_verify)


@pytest.mark.parametrize("spec", SPECS)
def test_signatures_are_hedged(spec: KeySpec, material: Material) -> None:
    first, second = (
        sign(MESSAGE, key_spec=spec, material=material(spec), signing_algorithm=ML_DSA) for _ in range(2)
    )
    assert first != second


BAD_SIGNATURES: list[tuple[str, Callable[[bytes, bytes], tuple[bytes, bytes, MessageType]]]] = [
    ("other message", lambda sig, mu: (b"another message", sig, RAW)),
    ("flipped bit", lambda sig, mu: (MESSAGE, sig[:100] + bytes([sig[100] ^ 1]) + sig[101:], RAW)),
    ("truncated", lambda sig, mu: (MESSAGE, sig[:-1], RAW)),
    ("extended", lambda sig, mu: (MESSAGE, sig + b"\x00", RAW)),
    ("one byte", lambda sig, mu: (MESSAGE, b"\x00", RAW)),
    ("other mu", lambda sig, mu: (bytes(64), sig, EXTERNAL_MU)),
    ("mu as RAW", lambda sig, mu: (mu, sig, RAW)),
]


@pytest.mark.parametrize(("spec"), SPECS)
@pytest.mark.parametrize(("name", "change"), BAD_SIGNATURES, ids=[name for name, _ in BAD_SIGNATURES])
def test_bad_signatures(
    spec: KeySpec,
    name: str,
    change: Callable[..., tuple[bytes, bytes, MessageType]],
    material: Material,
    public_der: Material,
) -> None:
    signature = sign(MESSAGE, key_spec=spec, material=material(spec), signing_algorithm=ML_DSA)
    message, bad, message_type = change(signature, client_mu(public_der(spec), MESSAGE))
    with pytest.raises(InvalidSignature) as caught:
        verify(
            message,
            bad,
            key_spec=spec,
            public_key_der=public_der(spec),
            signing_algorithm=ML_DSA,
            message_type=message_type,
        )
    assert (caught.value.code, caught.value.message) == ("KMSInvalidSignatureException", "")


def test_another_keys_signature_and_a_context_string_do_not_verify(
    material: Material, public_der: Material
) -> None:
    spec = KeySpec.ML_DSA_65
    other = sign(MESSAGE, key_spec=spec, material=material(spec, 1), signing_algorithm=ML_DSA)
    # Signed by the same private key, but with a context string: KMS signs with the empty context only.
    with_context = serialization.load_der_private_key(material(spec), password=None)
    assert isinstance(with_context, mldsa.MLDSA65PrivateKey)
    for signature in (other, with_context.sign(MESSAGE, context=b"kms")):
        with pytest.raises(InvalidSignature):
            verify(
                MESSAGE, signature, key_spec=spec, public_key_der=public_der(spec), signing_algorithm=ML_DSA
            )


INCOMPATIBLE = "Message type {} is incompatible with key spec {}."
TOO_LONG = (
    "1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have length less "
    "than or equal to 4096"
)
EMPTY = (
    "1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have length greater "
    "than or equal to 1"
)
ECDSA, PSS, ED25519, ED25519PH = (
    SigningAlgorithm.ECDSA_SHA_256,
    SigningAlgorithm.RSASSA_PSS_SHA_256,
    SigningAlgorithm.ED25519_SHA_512,
    SigningAlgorithm.ED25519_PH_SHA_512,
)
# Real KMS's texts for the Ed25519 message types, as an emulator's test records them (floci PR #2930, "measured in
# ap-northeast-1", ed25519RejectsTheCombinationsRealKmsRejects).
NEEDS_DIGEST = "Message type RAW is incompatible with algorithm ED25519_PH_SHA_512."
NEEDS_RAW = "Message type DIGEST is incompatible with algorithm ED25519_SHA_512."
MESSAGE_ERRORS = [
    # AWS's recorded text for DIGEST on an ML-DSA key (real KMS, us-east-1).
    (KeySpec.ML_DSA_44, ML_DSA, DIGEST, b"\x00" * 64, INCOMPATIBLE.format("DIGEST", "ML_DSA_44")),
    (KeySpec.ML_DSA_87, ML_DSA, DIGEST, b"\x00" * 32, INCOMPATIBLE.format("DIGEST", "ML_DSA_87")),
    # mu must be exactly 64 bytes.
    (KeySpec.ML_DSA_44, ML_DSA, EXTERNAL_MU, b"\x00" * 63, mu_length_message(ML_DSA)),
    (KeySpec.ML_DSA_65, ML_DSA, EXTERNAL_MU, b"\x00" * 65, mu_length_message(ML_DSA)),
    (KeySpec.ML_DSA_87, ML_DSA, EXTERNAL_MU, b"\x00" * 32, mu_length_message(ML_DSA)),
    (KeySpec.ML_DSA_87, ML_DSA, EXTERNAL_MU, MESSAGE, mu_length_message(ML_DSA)),
    # RAW's limits are Sign's (1..4096 bytes), as for every other algorithm.
    (KeySpec.ML_DSA_65, ML_DSA, RAW, b"\x00" * (MESSAGE_MAX_BYTES + 1), TOO_LONG),
    (KeySpec.ML_DSA_65, ML_DSA, RAW, b"", EMPTY),
    # EXTERNAL_MU is ML-DSA's alone (worded as AWS's DIGEST refusal).
    (
        KeySpec.ECC_NIST_P256,
        ECDSA,
        EXTERNAL_MU,
        b"\x00" * 64,
        INCOMPATIBLE.format("EXTERNAL_MU", "ECC_NIST_P256"),
    ),
    (KeySpec.RSA_2048, PSS, EXTERNAL_MU, b"\x00" * 64, INCOMPATIBLE.format("EXTERNAL_MU", "RSA_2048")),
    (
        KeySpec.ECC_NIST_EDWARDS25519,
        ED25519,
        EXTERNAL_MU,
        b"\x00" * 64,
        INCOMPATIBLE.format("EXTERNAL_MU", "ECC_NIST_EDWARDS25519"),
    ),
    (
        KeySpec.ECC_NIST_EDWARDS25519,
        ED25519PH,
        EXTERNAL_MU,
        b"\x00" * 64,
        INCOMPATIBLE.format("EXTERNAL_MU", "ECC_NIST_EDWARDS25519"),
    ),
    # Each Ed25519 algorithm takes one message type: Ed25519ph refuses RAW, even of a digest's length.
    (KeySpec.ECC_NIST_EDWARDS25519, ED25519PH, RAW, b"\x00" * 64, NEEDS_DIGEST),
    (KeySpec.ECC_NIST_EDWARDS25519, ED25519PH, RAW, MESSAGE, NEEDS_DIGEST),
    (KeySpec.ECC_NIST_EDWARDS25519, ED25519, DIGEST, b"\x00" * 64, NEEDS_RAW),
    # The message type is refused before the length is looked at (the recorded request sends 7 bytes, b"message").
    (KeySpec.ECC_NIST_EDWARDS25519, ED25519, DIGEST, b"message", NEEDS_RAW),
    (KeySpec.ECC_NIST_EDWARDS25519, ED25519PH, RAW, b"message", NEEDS_DIGEST),
]


@pytest.mark.parametrize(("spec", "algorithm", "message_type", "message", "expected"), MESSAGE_ERRORS)
def test_message_rules(
    spec: KeySpec,
    algorithm: SigningAlgorithm,
    message_type: MessageType,
    message: bytes,
    expected: str,
    material: Material,
    public_der: Material,
) -> None:
    key = {"key_spec": spec, "signing_algorithm": algorithm, "message_type": message_type}
    with pytest.raises(CryptoValidationError) as caught:
        sign(message, material=material(spec), **key)
    assert (caught.value.code, caught.value.message) == ("ValidationException", expected)
    with pytest.raises(CryptoValidationError) as caught:
        verify(message, b"\x00" * 64, public_key_der=public_der(spec), **key)
    assert caught.value.message == expected


@pytest.mark.parametrize(
    ("spec", "algorithm"),
    [
        (KeySpec.ML_DSA_44, SigningAlgorithm.ECDSA_SHA_256),
        (KeySpec.ML_DSA_65, SigningAlgorithm.ED25519_SHA_512),
        (KeySpec.ECC_NIST_P384, ML_DSA),
        (KeySpec.RSA_4096, ML_DSA),
    ],
)
def test_algorithm_must_suit_the_spec(spec: KeySpec, algorithm: SigningAlgorithm, material: Material) -> None:
    with pytest.raises(InvalidKeyUsage) as caught:
        sign(MESSAGE, key_spec=spec, material=material(spec), signing_algorithm=algorithm)
    assert caught.value.message == f"Algorithm {algorithm} is incompatible with key spec {spec}."


def test_errors_never_carry_the_message(material: Material, public_der: Material) -> None:
    spec = KeySpec.ML_DSA_44
    secret = b"confidential message body that must not leak " * 2
    for send in (
        lambda: sign(
            secret, key_spec=spec, material=material(spec), signing_algorithm=ML_DSA, message_type=DIGEST
        ),
        lambda: sign(
            secret, key_spec=spec, material=material(spec), signing_algorithm=ML_DSA, message_type=EXTERNAL_MU
        ),
        lambda: verify(
            secret, secret, key_spec=spec, public_key_der=public_der(spec), signing_algorithm=ML_DSA
        ),
    ):
        with pytest.raises((CryptoValidationError, InvalidSignature)) as caught:
            send()
        assert secret not in str(caught.value).encode() and secret.hex() not in repr(caught.value)
        # Raised from None: no chained exception from `cryptography` carries anything along.
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None or caught.value.__suppress_context__
