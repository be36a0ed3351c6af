"""GenerateMac and VerifyMac: HMAC (RFC 2104) with SHA-224/256/384/512 under an HMAC key's raw material.

The MAC is the full HMAC output (28/32/48/64 bytes). VerifyMac recomputes it and compares in constant time
(``cryptography``'s ``HMAC.verify``); a mismatch of any kind, including a MAC of another length, is
``KMSInvalidMacException`` with an empty message, as AWS sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from cryptography.exceptions import InvalidSignature as _BadMac
from cryptography.hazmat.primitives import hashes, hmac

from .errors import InvalidMac, length_error
from .material import raw_key_material
from .rules import check_mac_algorithm
from .specs import MESSAGE_MAX_BYTES, MESSAGE_MIN_BYTES, KeySpec, MacAlgorithm

_HASHES: Final[Mapping[MacAlgorithm, type[hashes.HashAlgorithm]]] = MappingProxyType(
    {
        MacAlgorithm.HMAC_SHA_224: hashes.SHA224,
        MacAlgorithm.HMAC_SHA_256: hashes.SHA256,
        MacAlgorithm.HMAC_SHA_384: hashes.SHA384,
        MacAlgorithm.HMAC_SHA_512: hashes.SHA512,
    }
)


def check_mac_input(message: bytes, *, key_spec: KeySpec, mac_algorithm: MacAlgorithm) -> None:
    """Refuse what `generate_mac` and `verify_mac` would refuse before they need the material (the algorithm for
    the spec, the message's size): a caller checks this before it unseals the key's material."""
    check_mac_algorithm(key_spec, mac_algorithm)
    if len(message) < MESSAGE_MIN_BYTES:
        raise length_error("message", minimum=MESSAGE_MIN_BYTES)
    if len(message) > MESSAGE_MAX_BYTES:
        raise length_error("message", maximum=MESSAGE_MAX_BYTES)


def _hmac(message: bytes, key_spec: KeySpec, material: bytes, mac_algorithm: MacAlgorithm) -> hmac.HMAC:
    check_mac_input(message, key_spec=key_spec, mac_algorithm=mac_algorithm)
    state = hmac.HMAC(raw_key_material(key_spec, material), _HASHES[mac_algorithm]())
    state.update(message)
    return state


def generate_mac(message: bytes, *, key_spec: KeySpec, material: bytes, mac_algorithm: MacAlgorithm) -> bytes:
    """The HMAC of ``message`` (1..4096 bytes); InvalidKeyUsageException if the algorithm is not the spec's"""
    return _hmac(message, key_spec, material, mac_algorithm).finalize()


def verify_mac(
    message: bytes, mac: bytes, *, key_spec: KeySpec, material: bytes, mac_algorithm: MacAlgorithm
) -> None:
    """Return if ``mac`` is the HMAC of ``message``; raise ``KMSInvalidMacException`` otherwise."""
    state = _hmac(message, key_spec, material, mac_algorithm)
    try:
        state.verify(mac)
    except _BadMac:
        raise InvalidMac() from None
