"""Ed25519ph (RFC 8032 section 5.1, FIPS 186-5 section 7.8 HashEdDSA) for ED25519_PH_SHA_512, with libsodium.

``cryptography`` has pure Ed25519 only (no "dom2" prefix, no prehash), so this one algorithm uses libsodium's
Ed25519ph through PyNaCl's bindings: ``crypto_sign_ed25519ph_init``/``update`` hash the message into PH(M) =
SHA-512(M), and ``crypto_sign_ed25519ph_final_create``/``final_verify`` sign or check it under
``dom2(phflag=1, context="")``. libsodium is C throughout (no pure-Python fallback), with constant-time scalar
arithmetic on the secret, and its verification is strict: cofactorless ([S]B = R + [k]A, like OpenSSL's), S
below L, R and A not of small order, A canonical. PyNaCl's wheels carry libsodium, built in. This module is the
only one that imports ``nacl`` (ruff's banned-api rule, TID251, in pyproject.toml).

The key is the same Ed25519 key a pure ED25519_SHA_512 signature uses, taken from ``cryptography``'s object: its
32-byte seed gives libsodium's 64-byte secret key (seed || public key, ``crypto_sign_seed_keypair``). Both are
``bytes`` locals of ``ed25519ph_sign``, never held by an object whose ``repr`` would print them, and never
returned. Nothing here is written by hand but the choice of message.

The message is what AWS signs. For ED25519_PH_SHA_512, KMS takes MessageType DIGEST only, a 64-byte SHA-512
digest the caller computed, and then, as the Sign and Verify API reference says, "still performs the SHA-512
prehash described in Step 1 of Section 7.8.1 in FIPS 186-5. This means the input is hashed twice: once by you
and once by KMS." So the 64 bytes received are HashEdDSA's message M, fed to ``crypto_sign_ed25519ph_update``
as any message would be, and the signature is ``Ed25519ph(key, M = digest)``: ``PH(M) = SHA-512(digest)``. Any
Ed25519ph verifier accepts it given the digest as the message; given the original message it does not, on AWS
as here.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ed25519
from nacl import bindings
from nacl.exceptions import BadSignatureError

from .errors import InvalidSignature

#: Every Ed25519 signature is 64 bytes; libsodium raises TypeError, not BadSignatureError, on another length.
SIGNATURE_BYTES = bindings.crypto_sign_BYTES


def _prehash_state(message: bytes) -> bindings.crypto_sign_ed25519ph_state:
    """libsodium's Ed25519ph state with ``message`` hashed in: PH(M) = SHA-512(message) (no secret in it)."""
    state = bindings.crypto_sign_ed25519ph_state()
    bindings.crypto_sign_ed25519ph_update(state, message)
    return state


def ed25519ph_sign(message: bytes, *, private_key: ed25519.Ed25519PrivateKey) -> bytes:
    """The 64-byte Ed25519ph signature of ``message`` (HashEdDSA's M: PH(M) = SHA-512(message) is computed here)."""
    _public, secret = bindings.crypto_sign_seed_keypair(private_key.private_bytes_raw())
    signature: bytes = bindings.crypto_sign_ed25519ph_final_create(_prehash_state(message), secret)
    return signature


def ed25519ph_verify(message: bytes, signature: bytes, *, public_key: ed25519.Ed25519PublicKey) -> None:
    """Return if ``signature`` is the Ed25519ph signature of ``message`` under ``public_key``; raise
    ``InvalidSignature`` (KMSInvalidSignatureException, empty) otherwise, a signature of the wrong length too."""
    if len(signature) != SIGNATURE_BYTES:
        raise InvalidSignature()
    try:
        bindings.crypto_sign_ed25519ph_final_verify(
            _prehash_state(message), signature, public_key.public_bytes_raw()
        )
    except BadSignatureError:
        raise InvalidSignature() from None
