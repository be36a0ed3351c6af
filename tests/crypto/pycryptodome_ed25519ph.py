"""Ed25519ph from pycryptodome: an implementation independent of the one under test (libsodium, through PyNaCl, in
keys/crypto/ed25519ph.py), for checking ED25519_PH_SHA_512 signatures both ways. The one module that imports
pycryptodome (ruff's banned-api rule, TID251, keeps it out of everything else); tests only, never production.

``message`` is HashEdDSA's M: pycryptodome computes PH(M) = SHA-512(M) from the ``SHA512`` object it is given, as a
verifier of an AWS KMS ED25519_PH_SHA_512 signature does with the 64-byte digest it sent (AWS hashes the digest
again). pycryptodome's verification is *cofactored* (it checks [8][S]B = [8]R + [8][k]A), so it accepts
signatures that libsodium's cofactorless check rejects: ``cofactor_tweaked_sign`` makes one."""

from __future__ import annotations

import hashlib

from Crypto.Hash import SHA512
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

_MODE = "rfc8032"  # with no context argument: an empty context, as AWS's
#: The order of edwards25519's prime-order subgroup (RFC 8032 section 5.1).
L = 2**252 + 27742317777372353535851937790883648493
# RFC 8032 section 5.1: the base point B.
_B = ECC.EccPoint(
    15112221349535400772501151409588531511454012693041857206046113283949847762202,
    46316835694926478169428394003475163141307993866256225615783033603165251855960,
    curve="Ed25519",
)
#: A point of order 8 (one of edwards25519's small-order points, by its standard encoding).
SMALL_ORDER_POINT = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
_DOM2 = b"SigEd25519 no Ed25519 collisions" + b"\x01" + b"\x00"  # phflag 1, empty context


def sign(seed: bytes, message: bytes) -> bytes:
    """The Ed25519ph signature of ``message`` (empty context) under the key with this 32-byte seed."""
    return eddsa.new(eddsa.import_private_key(seed), _MODE).sign(SHA512.new(message))


def verify(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Return if valid (cofactored); raise ``ValueError`` otherwise."""
    eddsa.new(eddsa.import_public_key(public_key), _MODE).verify(SHA512.new(message), signature)


def _encode(point: ECC.EccPoint) -> bytes:
    return ECC.EccKey(curve="Ed25519", point=point).export_key(format="raw")


def cofactor_tweaked_sign(seed: bytes, message: bytes) -> bytes:
    """An Ed25519ph signature of ``message`` whose R has a point of order 8 added, made with the private key:
    R' = R + T, S = r + k'a mod L with k' = SHA-512(dom2 || R' || A || PH(M)). [8][S]B = [8]R' + [8][k']A holds
    (cofactored verifiers accept it); [S]B = R' + [k']A does not (cofactorless ones, libsodium and OpenSSL,
    reject it). RFC 8032 allows either check; AWS's verifiers and libsodium are cofactorless."""
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a = (a & ((1 << 254) - 8)) | (1 << 254)  # RFC 8032 section 5.1.5: clamping
    prefix, public = h[32:], _encode(_B * a)
    ph = hashlib.sha512(message).digest()
    r = int.from_bytes(hashlib.sha512(_DOM2 + prefix + ph).digest(), "little") % L
    small = eddsa.import_public_key(SMALL_ORDER_POINT).pointQ
    assert (small * 8).is_point_at_infinity() and not (small * 4).is_point_at_infinity()
    tweaked_r = _encode(_B * r + small)
    k = int.from_bytes(hashlib.sha512(_DOM2 + tweaked_r + public + ph).digest(), "little") % L
    return tweaked_r + ((r + k * a) % L).to_bytes(32, "little")
