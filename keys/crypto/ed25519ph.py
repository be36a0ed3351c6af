"""Ed25519ph (RFC 8032 section 5.1, FIPS 186-5 section 7.8 HashEdDSA) for ED25519_PH_SHA_512, with pycryptodome.

``cryptography`` has pure Ed25519 only (no "dom2" prefix, no prehash), so this one algorithm uses pycryptodome's
``Crypto.Signature.eddsa`` (mode ``rfc8032``), which is Ed25519ph when it is given a ``Crypto.Hash.SHA512`` hash
object instead of bytes: it reads ``PH(M) = hash.digest()`` and signs it under
``dom2(phflag=1, context="")``. The key is the same Ed25519 key a pure ED25519_SHA_512 signature uses (its
32-byte seed and public point, taken from ``cryptography``'s objects); the scalar arithmetic runs in
pycryptodome's constant-time C integers. Nothing here is written by hand but the choice of message.

The message is what AWS signs. For ED25519_PH_SHA_512, KMS takes MessageType DIGEST only, a 64-byte SHA-512
digest the caller computed, and then, as the Sign and Verify API reference says, "still performs the SHA-512
prehash described in Step 1 of Section 7.8.1 in FIPS 186-5. This means the input is hashed twice: once by you
and once by KMS." So the 64 bytes received are HashEdDSA's message M, and the signature is
``Ed25519ph(key, M = digest)``: ``PH(M) = SHA-512(digest)``. Any Ed25519ph verifier accepts it given the digest
as the message (libsodium's ``crypto_sign_ed25519ph_update(state, digest)``); given the original message it does
not, on AWS as here. The hash object below is therefore a real ``SHA512`` over those 64 bytes, not a stand-in
whose ``digest()`` would return them: that would sign ``PH(M) = digest``, a signature AWS never makes.
"""

from __future__ import annotations

from Crypto.Hash import SHA512
from Crypto.Signature import eddsa
from cryptography.hazmat.primitives.asymmetric import ed25519

from .errors import InvalidSignature

#: RFC 8032's mode name in pycryptodome; with no context argument the context is empty, as AWS's.
_MODE = "rfc8032"


def ed25519ph_sign(message: bytes, *, private_key: ed25519.Ed25519PrivateKey) -> bytes:
    """The 64-byte Ed25519ph signature of ``message`` (HashEdDSA's M: PH(M) = SHA-512(message) is computed here)."""
    signer = eddsa.new(eddsa.import_private_key(private_key.private_bytes_raw()), _MODE)
    return signer.sign(SHA512.new(message))


def ed25519ph_verify(message: bytes, signature: bytes, *, public_key: ed25519.Ed25519PublicKey) -> None:
    """Return if ``signature`` is the Ed25519ph signature of ``message`` under ``public_key``; raise
    ``InvalidSignature`` (KMSInvalidSignatureException, empty) otherwise, a signature of the wrong length too."""
    verifier = eddsa.new(eddsa.import_public_key(public_key.public_bytes_raw()), _MODE)
    try:
        verifier.verify(SHA512.new(message), signature)
    except ValueError:
        raise InvalidSignature() from None
