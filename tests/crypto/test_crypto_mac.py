"""GenerateMac/VerifyMac: HMAC-SHA-224/256/384/512, interoperable with the standard library's hmac."""

from __future__ import annotations

import hashlib
import hmac
import itertools

import pytest

from keys.crypto import (
    MAC_BYTES,
    CryptoValidationError,
    InvalidKeyUsage,
    InvalidMac,
    KeyMaterialError,
    KeySpec,
    MacAlgorithm,
    generate_key_material,
    generate_mac,
    verify_mac,
)

SPECS = {
    KeySpec.HMAC_224: (MacAlgorithm.HMAC_SHA_224, hashlib.sha224, 28),
    KeySpec.HMAC_256: (MacAlgorithm.HMAC_SHA_256, hashlib.sha256, 32),
    KeySpec.HMAC_384: (MacAlgorithm.HMAC_SHA_384, hashlib.sha384, 48),
    KeySpec.HMAC_512: (MacAlgorithm.HMAC_SHA_512, hashlib.sha512, 64),
}
KEYS = {spec: generate_key_material(spec) for spec in SPECS}
MESSAGE = b"Hello World"


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("message", [b"\x00", MESSAGE, b"\xff" * 4096])
def test_mac_is_the_standard_hmac_and_verifies(spec: KeySpec, message: bytes) -> None:
    algorithm, hash_function, length = SPECS[spec]
    mac = generate_mac(message, key_spec=spec, material=KEYS[spec], mac_algorithm=algorithm)
    assert len(mac) == length == MAC_BYTES[algorithm]
    assert mac == hmac.new(KEYS[spec], message, hash_function).digest()
    verify_mac(message, mac, key_spec=spec, material=KEYS[spec], mac_algorithm=algorithm)


@pytest.mark.parametrize(
    ("spec", "algorithm"), [(s, a) for s, a in itertools.product(SPECS, MacAlgorithm) if a is not SPECS[s][0]]
)
def test_algorithm_must_be_the_specs(spec: KeySpec, algorithm: MacAlgorithm) -> None:
    message = f"^Algorithm {algorithm} is incompatible with key spec {spec}.$"
    with pytest.raises(InvalidKeyUsage, match=message):
        generate_mac(MESSAGE, key_spec=spec, material=KEYS[spec], mac_algorithm=algorithm)
    with pytest.raises(InvalidKeyUsage, match=message):
        verify_mac(MESSAGE, b"\x00" * 32, key_spec=spec, material=KEYS[spec], mac_algorithm=algorithm)


@pytest.mark.parametrize("spec", [KeySpec.SYMMETRIC_DEFAULT, KeySpec.RSA_2048, KeySpec.ECC_NIST_P256])
def test_non_hmac_keys_cannot_mac(spec: KeySpec) -> None:
    with pytest.raises(InvalidKeyUsage):
        generate_mac(MESSAGE, key_spec=spec, material=b"\x00" * 32, mac_algorithm=MacAlgorithm.HMAC_SHA_256)


@pytest.mark.parametrize("spec", SPECS)
def test_any_other_mac_is_invalid(spec: KeySpec) -> None:
    algorithm = SPECS[spec][0]
    mac = generate_mac(MESSAGE, key_spec=spec, material=KEYS[spec], mac_algorithm=algorithm)
    other_key = generate_key_material(spec)
    attempts = [
        (MESSAGE, bytes([mac[0] ^ 1]) + mac[1:], KEYS[spec]),
        (MESSAGE, mac[:-1] + bytes([mac[-1] ^ 0x80]), KEYS[spec]),
        (MESSAGE, mac[:-1], KEYS[spec]),
        (MESSAGE, mac[:16], KEYS[spec]),
        (MESSAGE, mac + b"\x00", KEYS[spec]),
        (MESSAGE, b"", KEYS[spec]),
        (MESSAGE + b"!", mac, KEYS[spec]),
        (MESSAGE.lower(), mac, KEYS[spec]),
        (MESSAGE, mac, other_key),
    ]
    for message, bad_mac, key in attempts:
        with pytest.raises(InvalidMac) as caught:
            verify_mac(message, bad_mac, key_spec=spec, material=key, mac_algorithm=algorithm)
        assert caught.value.code == "KMSInvalidMacException"
        assert caught.value.message == ""


@pytest.mark.parametrize(
    ("size", "constraint"), [(0, "greater than or equal to 1"), (4097, "less than or equal to 4096")]
)
def test_message_size_limits(size: int, constraint: str) -> None:
    for call in (generate_mac, lambda m, **kw: verify_mac(m, b"\x00" * 32, **kw)):
        with pytest.raises(CryptoValidationError) as caught:
            call(
                b"\x00" * size,
                key_spec=KeySpec.HMAC_256,
                material=KEYS[KeySpec.HMAC_256],
                mac_algorithm=MacAlgorithm.HMAC_SHA_256,
            )
        assert caught.value.message == (
            f"1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have "
            f"length {constraint}"
        )


@pytest.mark.parametrize("spec", SPECS)
def test_material_of_the_wrong_length_is_a_server_fault(spec: KeySpec) -> None:
    algorithm = SPECS[spec][0]
    with pytest.raises(KeyMaterialError):
        generate_mac(MESSAGE, key_spec=spec, material=KEYS[spec] + b"\x00", mac_algorithm=algorithm)
