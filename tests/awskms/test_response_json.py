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
