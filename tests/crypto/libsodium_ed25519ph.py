"""Ed25519ph from libsodium (PyNaCl's bindings): an implementation independent of the one under test
(pycryptodome, in keys/crypto/ed25519ph.py), for checking ED25519_PH_SHA_512 signatures both ways.

``message`` is HashEdDSA's M: libsodium computes PH(M) = SHA-512(M) itself, as a verifier of an AWS KMS
ED25519_PH_SHA_512 signature does with the 64-byte digest it sent (AWS hashes the digest again)."""

from __future__ import annotations

from nacl import bindings


def _state(message: bytes) -> bindings.crypto_sign_ed25519ph_state:
    state = bindings.crypto_sign_ed25519ph_state()
    bindings.crypto_sign_ed25519ph_update(state, message)
    return state


def sign(seed: bytes, message: bytes) -> bytes:
    """The Ed25519ph signature of ``message`` (empty context) under the key with this 32-byte seed."""
    _public, secret = bindings.crypto_sign_seed_keypair(seed)
    return bindings.crypto_sign_ed25519ph_final_create(_state(message), secret)


def verify(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Return if valid; raise ``nacl.exceptions.BadSignatureError`` otherwise."""
    bindings.crypto_sign_ed25519ph_final_verify(_state(message), signature, public_key)
