"""ED25519_PH_SHA_512 (Ed25519ph, RFC 8032 section 5.1) in the crypto core (libsodium, through PyNaCl): RFC 8032's
test vector byte for byte, byte-exact agreement with an independent implementation (pycryptodome, tests only) in
AWS's sense of a DIGEST (hashed again), domain separation from pure Ed25519, and the signatures a strict verifier
refuses (a small-order component in R, a non-canonical S, a wrong length). The refused message types and their
texts are in MESSAGE_ERRORS in test_crypto_mldsa.py; digest lengths and tampering in the tables of
test_crypto_signing.py, which cover this algorithm with the others."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature as CryptographyInvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from keys.crypto import InvalidSignature, KeySpec, MessageType, SigningAlgorithm, sign, verify
from keys.crypto.ed25519ph import ed25519ph_sign, ed25519ph_verify
from tests.crypto import pycryptodome_ed25519ph
from tests.crypto.conftest import MaterialFactory

SPEC = KeySpec.ECC_NIST_EDWARDS25519
ED25519, ED25519PH = SigningAlgorithm.ED25519_SHA_512, SigningAlgorithm.ED25519_PH_SHA_512
DIGEST, RAW = MessageType.DIGEST, MessageType.RAW
MESSAGES = [b"", b"abc", b"The quick brown fox jumps over the lazy dog", bytes(range(256)) * 40]

# RFC 8032 section 7.3, "TEST abc" (Ed25519ph): the only Ed25519ph vector the RFC gives.
RFC8032_SECRET = bytes.fromhex("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42")
RFC8032_PUBLIC = bytes.fromhex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
RFC8032_MESSAGE = bytes.fromhex("616263")
RFC8032_SIGNATURE = bytes.fromhex(
    "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
    "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
)


def private_key(material: MaterialFactory, slot: int = 0) -> ed25519.Ed25519PrivateKey:
    key = serialization.load_der_private_key(material(SPEC, slot), password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key


def sha512(message: bytes) -> bytes:
    return hashlib.sha512(message).digest()


def kms_sign(message: bytes, material: MaterialFactory, alg: SigningAlgorithm = ED25519PH) -> bytes:
    """Sign as KMS is asked: Ed25519ph is sent the message's SHA-512 digest, pure Ed25519 the message."""
    kind = DIGEST if alg is ED25519PH else RAW
    sent = sha512(message) if alg is ED25519PH else message
    return sign(sent, key_spec=SPEC, material=material(SPEC), signing_algorithm=alg, message_type=kind)


def ph_verify(digest: bytes, signature: bytes, public_der: MaterialFactory) -> None:
    """Verify as KMS is asked: ED25519_PH_SHA_512 with the 64-byte digest (MessageType DIGEST)."""
    verify(
        digest,
        signature,
        key_spec=SPEC,
        public_key_der=public_der(SPEC),
        signing_algorithm=ED25519PH,
        message_type=DIGEST,
    )


def test_rfc8032_test_vector_byte_for_byte() -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)
    assert key.public_key().public_bytes_raw() == RFC8032_PUBLIC
    assert ed25519ph_sign(RFC8032_MESSAGE, private_key=key) == RFC8032_SIGNATURE
    ed25519ph_verify(RFC8032_MESSAGE, RFC8032_SIGNATURE, public_key=key.public_key())
    # The vector is Ed25519ph's, not pure Ed25519's: the same key and message sign differently without dom2.
    assert key.sign(RFC8032_MESSAGE) != RFC8032_SIGNATURE
    with pytest.raises(InvalidSignature):
        ed25519ph_verify(RFC8032_MESSAGE + b"d", RFC8032_SIGNATURE, public_key=key.public_key())


def test_pycryptodome_agrees_on_the_rfc8032_vector() -> None:
    """The independent implementation the other tests trust gives the RFC's bytes too."""
    assert pycryptodome_ed25519ph.sign(RFC8032_SECRET, RFC8032_MESSAGE) == RFC8032_SIGNATURE
    pycryptodome_ed25519ph.verify(RFC8032_PUBLIC, RFC8032_MESSAGE, RFC8032_SIGNATURE)


@pytest.mark.parametrize("message", MESSAGES, ids=["empty", "abc", "fox", "10KiB"])
def test_sign_with_a_digest_is_ed25519ph_over_that_digest_byte_for_byte(
    message: bytes, material: MaterialFactory, public_der: MaterialFactory
) -> None:
    """AWS: with MessageType DIGEST, KMS "still performs the SHA-512 prehash": the 64 bytes sent are HashEdDSA's
    message, so the signature equals pycryptodome's Ed25519ph of the digest (Ed25519 is deterministic)."""
    digest = sha512(message)
    signature = kms_sign(message, material)
    seed = private_key(material).private_bytes_raw()
    assert signature == pycryptodome_ed25519ph.sign(seed, digest)
    public = private_key(material).public_key().public_bytes_raw()
    pycryptodome_ed25519ph.verify(public, digest, signature)
    ph_verify(digest, signature, public_der)


@pytest.mark.parametrize("message", MESSAGES[1:3], ids=["abc", "fox"])
def test_the_digest_is_hashed_again_as_aws_documents(message: bytes, material: MaterialFactory) -> None:
    """Not a single-hash Ed25519ph of the original message: that signature is another one, and a verifier given
    the original message (PH computed once) rejects what KMS signs, on AWS as here."""
    signature = kms_sign(message, material)
    seed = private_key(material).private_bytes_raw()
    public = private_key(material).public_key().public_bytes_raw()
    assert signature != pycryptodome_ed25519ph.sign(seed, message)
    with pytest.raises(ValueError):
        pycryptodome_ed25519ph.verify(public, message, signature)


def test_signatures_made_by_pycryptodome_verify_here(
    material: MaterialFactory, public_der: MaterialFactory
) -> None:
    seed = private_key(material).private_bytes_raw()
    for message in MESSAGES:
        digest = sha512(message)
        signature = pycryptodome_ed25519ph.sign(seed, digest)
        ph_verify(digest, signature, public_der)
        with pytest.raises(InvalidSignature):  # and only for that digest
            ph_verify(sha512(message + b"!"), signature, public_der)


def test_pure_and_prehashed_signatures_are_not_interchangeable(
    material: MaterialFactory, public_der: MaterialFactory
) -> None:
    """dom2 separates the two: the same key signs the same 64 bytes differently in each scheme, and neither
    signature verifies in the other (here, with `cryptography`'s pure verifier, and with pycryptodome's ph one)."""
    digest = sha512(b"one message, two schemes")
    pure = sign(digest, key_spec=SPEC, material=material(SPEC), signing_algorithm=ED25519, message_type=RAW)
    prehashed = sign(
        digest, key_spec=SPEC, material=material(SPEC), signing_algorithm=ED25519PH, message_type=DIGEST
    )
    assert pure != prehashed
    common = {"key_spec": SPEC, "public_key_der": public_der(SPEC)}
    with pytest.raises(InvalidSignature):
        verify(digest, pure, signing_algorithm=ED25519PH, message_type=DIGEST, **common)
    with pytest.raises(InvalidSignature):
        verify(digest, prehashed, signing_algorithm=ED25519, message_type=RAW, **common)
    public = private_key(material).public_key()
    with pytest.raises(CryptographyInvalidSignature):
        public.verify(prehashed, digest)
    with pytest.raises(ValueError):
        pycryptodome_ed25519ph.verify(public.public_bytes_raw(), digest, pure)
    # And both verify in their own scheme.
    verify(digest, pure, signing_algorithm=ED25519, message_type=RAW, **common)
    verify(digest, prehashed, signing_algorithm=ED25519PH, message_type=DIGEST, **common)


def test_a_signature_under_another_key_fails(material: MaterialFactory, public_der: MaterialFactory) -> None:
    digest = sha512(b"signed by another key")
    other = ed25519ph_sign(digest, private_key=private_key(material, 1))
    with pytest.raises(InvalidSignature) as caught:
        ph_verify(digest, other, public_der)
    assert (caught.value.code, caught.value.message) == ("KMSInvalidSignatureException", "")


def test_a_small_order_component_in_r_is_rejected(
    material: MaterialFactory, public_der: MaterialFactory
) -> None:
    """Verification is cofactorless, as libsodium's and OpenSSL's (and AWS's): a signature whose R has a point of
    order 8 added satisfies the cofactored equation pycryptodome checks, but not [S]B = R + [k]A, so it is refused.
    (With pycryptodome in production it was accepted.)"""
    seed = private_key(material).private_bytes_raw()
    public = private_key(material).public_key()
    digest = sha512(b"one signature, two verifiers")
    tweaked = pycryptodome_ed25519ph.cofactor_tweaked_sign(seed, digest)
    pycryptodome_ed25519ph.verify(public.public_bytes_raw(), digest, tweaked)  # valid, cofactored
    assert tweaked != kms_sign(b"one signature, two verifiers", material)
    with pytest.raises(InvalidSignature):
        ed25519ph_verify(digest, tweaked, public_key=public)
    with pytest.raises(InvalidSignature):
        ph_verify(digest, tweaked, public_der)


def test_a_non_canonical_s_is_rejected(material: MaterialFactory, public_der: MaterialFactory) -> None:
    """S must be below L (RFC 8032 section 5.1.7): the same signature with S + L (same residue) is refused."""
    digest = sha512(b"malleable?")
    signature = kms_sign(b"malleable?", material)
    ph_verify(digest, signature, public_der)
    s = int.from_bytes(signature[32:], "little")
    assert s < pycryptodome_ed25519ph.L
    malleated = signature[:32] + (s + pycryptodome_ed25519ph.L).to_bytes(32, "little")
    with pytest.raises(InvalidSignature):
        ph_verify(digest, malleated, public_der)


@pytest.mark.parametrize("length", [0, 32, 63, 65, 128])
def test_a_signature_of_the_wrong_length_is_invalid(
    length: int, material: MaterialFactory, public_der: MaterialFactory
) -> None:
    digest = sha512(b"abc")
    signature = (kms_sign(b"abc", material) * 2)[:length]
    with pytest.raises(InvalidSignature) as caught:
        ph_verify(digest, signature, public_der)
    assert (caught.value.code, caught.value.message) == ("KMSInvalidSignatureException", "")


IMPORTERS = [
    # (library, the one module that may import it)
    ("nacl", "keys/crypto/ed25519ph.py"),  # production: libsodium
    ("Crypto", "tests/crypto/pycryptodome_ed25519ph.py"),  # tests: the independent implementation
]


@pytest.mark.parametrize(("library", "importer"), IMPORTERS)
def test_each_ed25519ph_library_is_imported_by_one_module(library: str, importer: str) -> None:
    """libsodium stays behind keys/crypto/ed25519ph.py, pycryptodome behind the tests' reference module. Ruff's
    banned-api rule (TID251, pyproject.toml) enforces it at lint time; this catches a per-file ignore that lets
    one library into the other's module."""
    root = Path(__file__).resolve().parents[2]
    pattern = re.compile(rf"^\s*(from|import)\s+{library}(\.|\s|$)", re.MULTILINE)
    sources = [
        p for top in ("keys", "kmsconsole", "policies", "grants", "tests") for p in (root / top).rglob("*.py")
    ]
    assert len(sources) > 100
    assert sorted(str(p.relative_to(root)) for p in sources if pattern.search(p.read_text())) == [importer]
