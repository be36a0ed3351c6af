"""The KMS endpoint's response JSON: the same bytes `json.dumps` writes, with blob members spliced in unescaped."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest

from kmsconsole.awskms import model
from kmsconsole.awskms.views import response_json


def compact(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"KeyId": "arn:aws:kms:eu-west-1:111122223333:key/1", "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"},
        {"Truncated": False, "Keys": [{"KeyId": "k", "KeyArn": "a"}], "NextMarker": None, "Count": 3},
        {"Description": 'quotes " and \\ backslashes, \n newlines, \u00e9 and \ud83d\udd11 and </script>'},
        {"Tags": [{"TagKey": "\u0000", "TagValue": "\u2028"}], "CreationDate": 1.7e9},
    ],
)
def test_it_is_what_json_dumps_writes(body: dict[str, Any]) -> None:
    assert response_json(body) == compact(body)


def test_blob_members_are_spliced_in_as_they_are_and_read_back_the_same() -> None:
    blob = os.urandom(4096 + 100)
    body = model.serialize_output(
        "Encrypt", {"CiphertextBlob": blob, "KeyId": "arn:aws:kms:eu-west-1:111122223333:key/1"}
    )
    assert type(body["CiphertextBlob"]) is model.Base64Text
    encoded = response_json(body)
    assert encoded == compact(body)  # base64 has nothing to escape: byte for byte the same
    assert base64.b64decode(json.loads(encoded)["CiphertextBlob"]) == blob


@pytest.mark.parametrize(
    "raw",
    [b"", b'"', b'", "Plaintext": "', bytes(range(256)), os.urandom(4096)],
    ids=lambda raw: str(len(raw)),
)
def test_a_base64_text_is_its_bytes_encoded(raw: bytes) -> None:
    text = model.Base64Text(raw)
    assert type(text) is model.Base64Text
    assert text == base64.b64encode(raw).decode()
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    assert base64.b64decode(json.loads(response_json({"Blob": text}))["Blob"]) == raw


@pytest.mark.parametrize("text", ['", "KeyId": "alias/other', "aGVsbG8=", ""])
def test_text_cannot_be_passed_off_as_a_base64_text(text: str) -> None:
    """response_json splices a Base64Text in unescaped: one made from text carrying a quote would end the JSON
    string and write members of its own. It is made only from bytes, by encoding them; even text that is already
    base64 is refused (the type says the encoder made it)."""
    with pytest.raises(TypeError):
        model.Base64Text(text)  # type: ignore[arg-type]


def test_a_base64_text_copies_and_pickles_as_itself() -> None:
    import copy
    import pickle

    text = model.Base64Text(b'any "bytes"')
    for again in (copy.copy(text), copy.deepcopy(text), pickle.loads(pickle.dumps(text))):  # noqa: S301 - our own
        assert type(again) is model.Base64Text and again == text
