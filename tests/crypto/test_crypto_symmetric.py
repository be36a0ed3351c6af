"""SYMMETRIC_DEFAULT: the ciphertext blob, AES-256-GCM, encryption context binding, tamper resistance."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys.crypto import (
    CIPHERTEXT_MAX_BYTES,
    CIPHERTEXT_OVERHEAD_BYTES,
    PLAINTEXT_MAX_BYTES,
    CryptoError,
    CryptoValidationError,
    EncryptionAlgorithm,
    InvalidCiphertext,
    InvalidKeyUsage,
    KeyMaterialError,
    KeySpec,
    canonical_encryption_context,
    decrypt_symmetric,
    encrypt_symmetric,
    generate_key_material,
    new_key_material_id,
    parse_ciphertext_header,
)
from keys.crypto.symmetric import HEADER_BYTES, TAG_BYTES

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def enc(key: Any, plaintext: bytes, context: dict[str, str] | None = None) -> bytes:
    return encrypt_symmetric(
        plaintext,
        key_id=key.key_id,
        key_material_id=key.key_material_id,
        material=key.material,
        encryption_context=context,
    )


def dec(key: Any, blob: bytes, context: dict[str, str] | None = None) -> bytes:
    return decrypt_symmetric(
        blob,
        key_id=key.key_id,
        key_material_id=key.key_material_id,
        material=key.material,
        encryption_context=context,
    )


def flip(blob: bytes, byte: int, mask: int = 0x01) -> bytes:
    changed = bytearray(blob)
    changed[byte] ^= mask
    return bytes(changed)


# --- round trips and layout ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 15, 16, 17, 100, 1024, 4095, 4096])
@pytest.mark.parametrize("context", [None, {}, {"purpose": "test"}, {"a": "1", "b": "2", "Aa": "ß→☃"}])
def test_round_trip(sym_key: Any, size: int, context: dict[str, str] | None) -> None:
    plaintext = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    blob = enc(sym_key, plaintext, context)
    assert dec(sym_key, blob, context) == plaintext


def test_blob_layout_and_overhead(sym_key: Any) -> None:
    assert CIPHERTEXT_OVERHEAD_BYTES == 93 == HEADER_BYTES + TAG_BYTES
    blob = enc(sym_key, b"x" * 10)
    assert len(blob) == 10 + 93
    assert blob[0] == 0x01
    assert blob[1:17] == sym_key.key_id.bytes
    assert blob[17:49] == sym_key.key_material_id
    assert b"x" * 10 not in blob


def test_largest_blob_fits_awss_ciphertext_limit(sym_key: Any) -> None:
    blob = enc(sym_key, b"\x00" * PLAINTEXT_MAX_BYTES)
    assert len(blob) == 4096 + 93 == 4189
    assert len(blob) <= CIPHERTEXT_MAX_BYTES


def test_encryption_is_randomized(sym_key: Any) -> None:
    blobs = {enc(sym_key, b"same plaintext") for _ in range(20)}
    assert len(blobs) == 20
    assert len({b[49:65] for b in blobs}) == 20  # nonces
    assert len({b[65:77] for b in blobs}) == 20  # ivs


def test_parse_ciphertext_header(sym_key: Any) -> None:
    header = parse_ciphertext_header(enc(sym_key, b"data"))
    assert isinstance(header.key_id, uuid.UUID)
    assert header.key_id == sym_key.key_id
    assert header.key_material_id == sym_key.key_material_id
    key_id, key_material_id = header  # also unpacks as the (key_id, key_material_id) pair
    assert (key_id, key_material_id) == (sym_key.key_id, sym_key.key_material_id)


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x01",
        b"\x01" + b"\x00" * 92,  # header + tag with no ciphertext: never produced (plaintext >= 1 byte)
        b"\x02" + b"\x00" * 100,  # unknown version
        b"\x00" + b"\x00" * 100,
        b"\x01" + b"\x00" * (93 + 4096),  # longer than any blob we produce
        b"\x01" * 6144,
    ],
)
def test_parse_ciphertext_header_rejects_foreign_blobs(blob: bytes) -> None:
    with pytest.raises(InvalidCiphertext) as caught:
        parse_ciphertext_header(blob)
    assert caught.value.message == ""


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (0, "Member must have length greater than or equal to 1"),
        (4097, "Member must have length less than or equal to 4096"),
    ],
)
def test_plaintext_size_limits(sym_key: Any, size: int, message: str) -> None:
    with pytest.raises(CryptoValidationError) as caught:
        enc(sym_key, b"\x00" * size)
    assert caught.value.code == "ValidationException"
    assert caught.value.message == (
        f"1 validation error detected: Value at 'plaintext' failed to satisfy constraint: {message}"
    )


@pytest.mark.parametrize(
    "algorithm", [EncryptionAlgorithm.RSAES_OAEP_SHA_1, EncryptionAlgorithm.RSAES_OAEP_SHA_256]
)
def test_rsa_algorithms_are_refused(sym_key: Any, algorithm: EncryptionAlgorithm) -> None:
    message = f"Algorithm {algorithm} is incompatible with key spec SYMMETRIC_DEFAULT."
    with pytest.raises(InvalidKeyUsage, match=f"^{message}$"):
        encrypt_symmetric(
            b"x",
            key_id=sym_key.key_id,
            key_material_id=sym_key.key_material_id,
            material=sym_key.material,
            encryption_algorithm=algorithm,
        )
    with pytest.raises(InvalidKeyUsage, match=f"^{message}$"):
        decrypt_symmetric(
            enc(sym_key, b"x"),
            key_id=sym_key.key_id,
            key_material_id=sym_key.key_material_id,
            material=sym_key.material,
            encryption_algorithm=algorithm,
        )


# --- tampering ---------------------------------------------------------------------------------------------

PLAINTEXT = bytes(range(40))
REGIONS = [
    ("version", 0, 1),
    ("key_id", 1, 17),
    ("key_material_id", 17, 49),
    ("nonce", 49, 65),
    ("iv", 65, 77),
    ("ciphertext", 77, 77 + len(PLAINTEXT)),
    ("tag", 77 + len(PLAINTEXT), 77 + len(PLAINTEXT) + 16),
]


@pytest.mark.parametrize(("region", "start", "end"), REGIONS, ids=[r[0] for r in REGIONS])
@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_every_byte_of_every_region_is_authenticated(
    sym_key: Any, region: str, start: int, end: int, mask: int
) -> None:
    context = {"tenant": "42"}
    blob = enc(sym_key, PLAINTEXT, context)
    assert len(blob) == REGIONS[-1][2]
    for index in range(start, end):
        with pytest.raises(InvalidCiphertext) as caught:
            dec(sym_key, flip(blob, index, mask), context)
        assert type(caught.value) is InvalidCiphertext and caught.value.message == ""


def test_every_truncation_and_extension_fails(sym_key: Any) -> None:
    blob = enc(sym_key, PLAINTEXT)
    for length in range(len(blob)):
        with pytest.raises(InvalidCiphertext):
            dec(sym_key, blob[:length])
    for extra in (b"\x00", b"\x00" * 16, blob[-16:]):
        with pytest.raises(InvalidCiphertext):
            dec(sym_key, blob + extra)
    with pytest.raises(InvalidCiphertext):
        dec(sym_key, blob[:77] + blob[78:])  # one ciphertext byte removed


def test_ciphertext_regions_cannot_be_swapped_between_blobs(sym_key: Any) -> None:
    first, second = enc(sym_key, PLAINTEXT), enc(sym_key, PLAINTEXT)
    for start, end in ((49, 65), (65, 77), (77, len(first) - 16), (len(first) - 16, len(first))):
        spliced = first[:start] + second[start:end] + first[end:]
        with pytest.raises(InvalidCiphertext):
            dec(sym_key, spliced)


# --- wrong key, wrong material, rotation -------------------------------------------------------------------


def _key(
    key_id: uuid.UUID | None = None, material_id: bytes | None = None, material: bytes | None = None
) -> Any:
    class Key:
        pass

    key = Key()
    key.key_id = uuid.uuid4() if key_id is None else key_id  # type: ignore[attr-defined]
    key.key_material_id = (  # type: ignore[attr-defined]
        new_key_material_id() if material_id is None else material_id
    )
    key.material = (  # type: ignore[attr-defined]
        generate_key_material(KeySpec.SYMMETRIC_DEFAULT) if material is None else material
    )
    return key


def test_wrong_material_same_ids_fails(sym_key: Any) -> None:
    blob = enc(sym_key, PLAINTEXT)
    impostor = _key(sym_key.key_id, sym_key.key_material_id)
    with pytest.raises(InvalidCiphertext):
        dec(impostor, blob)


def test_header_naming_other_ids_fails(sym_key: Any) -> None:
    blob = enc(sym_key, PLAINTEXT)
    with pytest.raises(InvalidCiphertext):
        dec(_key(uuid.uuid4(), sym_key.key_material_id, sym_key.material), blob)
    with pytest.raises(InvalidCiphertext):
        dec(_key(sym_key.key_id, new_key_material_id(), sym_key.material), blob)


def test_material_of_the_wrong_length_is_a_server_fault(sym_key: Any) -> None:
    for bad in (b"", sym_key.material[:16], sym_key.material + b"\x00"):
        with pytest.raises(KeyMaterialError):
            enc(_key(sym_key.key_id, sym_key.key_material_id, bad), b"x")
    with pytest.raises(KeyMaterialError):
        encrypt_symmetric(
            b"x", key_id=sym_key.key_id, key_material_id=b"\x00" * 31, material=sym_key.material
        )


def test_old_material_keeps_decrypting_after_rotation() -> None:
    key_id = uuid.uuid4()
    original = _key(key_id)
    rotated = _key(key_id)
    old_blob = enc(original, b"written before rotation", {"v": "1"})
    new_blob = enc(rotated, b"written after rotation", {"v": "2"})
    # The service finds the material version from the header, then decrypts with it.
    versions = {original.key_material_id: original, rotated.key_material_id: rotated}
    for blob, plaintext, context in (
        (old_blob, b"written before rotation", {"v": "1"}),
        (new_blob, b"written after rotation", {"v": "2"}),
    ):
        header = parse_ciphertext_header(blob)
        assert header.key_id == key_id
        assert dec(versions[header.key_material_id], blob, context) == plaintext
    with pytest.raises(InvalidCiphertext):
        dec(rotated, old_blob, {"v": "1"})


# --- encryption context ------------------------------------------------------------------------------------


def test_context_order_does_not_matter(sym_key: Any) -> None:
    forward = {"a": "1", "b": "2", "c": "3", "aws:ebs:id": "vol-1"}
    backward = dict(reversed(list(forward.items())))
    assert list(forward) != list(backward)
    assert dec(sym_key, enc(sym_key, PLAINTEXT, forward), backward) == PLAINTEXT
    assert canonical_encryption_context(forward) == canonical_encryption_context(backward)


def test_none_and_empty_context_are_the_same(sym_key: Any) -> None:
    assert dec(sym_key, enc(sym_key, PLAINTEXT, None), {}) == PLAINTEXT
    assert dec(sym_key, enc(sym_key, PLAINTEXT, {}), None) == PLAINTEXT


CONTEXT = {"Department": "Finance", "project": "x"}
WRONG_CONTEXTS = [
    None,
    {"Department": "Finance"},
    {"Department": "Finance", "project": "x", "extra": ""},
    {"department": "Finance", "project": "x"},  # key case
    {"Department": "finance", "project": "x"},  # value case
    {"Department": "Finance ", "project": "x"},
    {"Department": "Finance", "project": "y"},
    {"Department": "Finance", "Project": "x"},
    {"Department": "project", "Finance": "x"},  # keys and values swapped around
]


@pytest.mark.parametrize("wrong", WRONG_CONTEXTS)
def test_any_other_context_fails(sym_key: Any, wrong: dict[str, str] | None) -> None:
    blob = enc(sym_key, PLAINTEXT, CONTEXT)
    with pytest.raises(InvalidCiphertext) as caught:
        dec(sym_key, blob, wrong)
    assert caught.value.message == ""


def test_context_given_only_on_decrypt_fails(sym_key: Any) -> None:
    with pytest.raises(InvalidCiphertext):
        dec(sym_key, enc(sym_key, PLAINTEXT), {"a": "b"})


# Pairs of contexts that a naive "k=v&k=v" / concatenation / JSON-by-hand encoding would confuse.
AMBIGUOUS = [
    ({"a": "bc"}, {"ab": "c"}),
    ({"a=b": "c"}, {"a": "b=c"}),
    ({"a": "b", "c": "d"}, {"a": "b&c=d"}),
    ({"a": "b", "c": "d"}, {"a": 'b","c":"d'}),
    ({"a": "", "b": "c"}, {"a": "\x00\x00\x00\x01b\x00\x00\x00\x01c"}),
    ({"": ""}, {}),
    ({"k": "\x00"}, {"k": ""}),
    ({"\u00e9": "v"}, {"e\u0301": "v"}),  # NFC vs NFD "é": different strings, different contexts
]


@pytest.mark.parametrize(("first", "second"), AMBIGUOUS)
def test_canonical_context_is_unambiguous(
    sym_key: Any, first: dict[str, str], second: dict[str, str]
) -> None:
    assert canonical_encryption_context(first) != canonical_encryption_context(second)
    with pytest.raises(InvalidCiphertext):
        dec(sym_key, enc(sym_key, PLAINTEXT, first), second)
    with pytest.raises(InvalidCiphertext):
        dec(sym_key, enc(sym_key, PLAINTEXT, second), first)


def test_canonical_context_encoding() -> None:
    assert canonical_encryption_context(None) == b"\x00\x00\x00\x00"
    assert canonical_encryption_context({"b": "2", "a": "1"}) == (
        b"\x00\x00\x00\x02" + b"\x00\x00\x00\x01a\x00\x00\x00\x011" + b"\x00\x00\x00\x01b\x00\x00\x00\x012"
    )


@pytest.mark.parametrize("bad", [{"a": 1}, {1: "a"}, {"a": None}, {"a": b"b"}, ["a", "b"], "a=b"])
def test_context_must_map_strings_to_strings(sym_key: Any, bad: Any) -> None:
    with pytest.raises(CryptoValidationError, match="EncryptionContext must map strings to strings"):
        enc(sym_key, PLAINTEXT, bad)


def test_lone_surrogates_in_context_still_encode(sym_key: Any) -> None:
    context = {"\ud800": "\udfff"}
    assert dec(sym_key, enc(sym_key, PLAINTEXT, context), context) == PLAINTEXT
    with pytest.raises(InvalidCiphertext):
        dec(sym_key, enc(sym_key, PLAINTEXT, context), {"\ud800": "\udffe"})


# --- properties --------------------------------------------------------------------------------------------

contexts = st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=6)
plaintexts = st.binary(min_size=1, max_size=PLAINTEXT_MAX_BYTES)


@PROPERTY
@given(plaintext=plaintexts, context=contexts)
def test_property_round_trip(sym_key: Any, plaintext: bytes, context: dict[str, str]) -> None:
    blob = enc(sym_key, plaintext, context)
    assert len(blob) == len(plaintext) + CIPHERTEXT_OVERHEAD_BYTES <= CIPHERTEXT_MAX_BYTES
    shuffled = dict(sorted(context.items(), reverse=True))
    assert dec(sym_key, blob, shuffled) == plaintext


@PROPERTY
@given(plaintext=st.binary(min_size=1, max_size=300), context=contexts, data=st.data())
def test_property_any_single_bit_flip_is_invalid_ciphertext(
    sym_key: Any, plaintext: bytes, context: dict[str, str], data: st.DataObject
) -> None:
    blob = enc(sym_key, plaintext, context)
    bit = data.draw(st.integers(min_value=0, max_value=len(blob) * 8 - 1), label="bit")
    with pytest.raises(CryptoError) as caught:  # catch any CryptoError...
        dec(sym_key, flip(blob, bit // 8, 1 << (bit % 8)), context)
    assert type(caught.value) is InvalidCiphertext  # ...and insist it is exactly InvalidCiphertext
    assert caught.value.message == ""


@PROPERTY
@given(plaintext=st.binary(min_size=1, max_size=64), first=contexts, second=contexts)
def test_property_context_must_match_exactly(
    sym_key: Any, plaintext: bytes, first: dict[str, str], second: dict[str, str]
) -> None:
    blob = enc(sym_key, plaintext, first)
    if first == second:
        assert dec(sym_key, blob, second) == plaintext
    else:
        with pytest.raises(InvalidCiphertext):
            dec(sym_key, blob, second)


@PROPERTY
@given(first=contexts, second=contexts)
def test_property_canonical_context_is_injective(first: dict[str, str], second: dict[str, str]) -> None:
    same_encoding = canonical_encryption_context(first) == canonical_encryption_context(second)
    assert same_encoding == (first == second)
