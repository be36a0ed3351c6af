"""A bounded fuzz run over the AWS endpoint (issue 10, "Bad input"): arbitrary targets, bodies, headers,
encodings and sizes up to the limit and beyond, sent signed by a principal allowed everything (so the input
reaches the handlers, not only the signature check) and unsigned.

Whatever arrives, the answer is an AWS error or a result: never a 5xx, never a stack trace, never the caller's
secret; and afterwards nothing is half-written: every key still has its material and the audit chain verifies.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from keys.models import Key, KeyMaterial
from kmsconsole.awskms.model import service_model
from tests.conftest import Persona

pytestmark = pytest.mark.django_db

OPERATIONS = sorted(service_model().operation_names)
LIMIT = settings.KMS_MAX_REQUEST_BYTES
FUZZ = hypothesis_settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same inputs on every run: a failure here is reproducible, not flaky
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=64),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


KEY_MEMBERS = {"KeyId", "TargetKeyId", "SourceKeyId", "DestinationKeyId"}


def shaped(shape: Any, key_ids: list[str], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of the member's own type (so the input passes the model and reaches the handler), with a share
    of wrongly typed ones."""
    kind = shape.type_name
    if kind == "string":
        enum = list(getattr(shape, "enum", []) or [])
        options = [st.text(max_size=80), st.sampled_from(key_ids)]
        if enum:
            options.insert(0, st.sampled_from(enum))
        good = st.one_of(*options)
    elif kind == "blob":
        good = st.binary(max_size=300).map(lambda raw: base64.b64encode(raw).decode())
    elif kind in ("integer", "long"):
        good = st.integers(min_value=-5, max_value=2**31)
    elif kind == "boolean":
        good = st.booleans()
    elif kind == "list" and depth < 2:
        good = st.lists(shaped(shape.member, key_ids, depth + 1), max_size=4)
    elif kind == "map" and depth < 2:
        good = st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=4)
    elif kind == "structure" and depth < 2:
        good = st.fixed_dictionaries(
            {}, optional={n: shaped(m, key_ids, depth + 1) for n, m in shape.members.items()}
        )
    else:
        good = json_values
    return st.one_of(good, good, good, json_values)


@st.composite
def bodies(draw: st.DrawFn, operation: str, key_ids: list[str]) -> bytes:
    kind = draw(st.sampled_from(["shaped", "shaped", "shaped", "json", "bytes", "huge", "edge"]))
    if kind == "shaped" and operation in OPERATIONS:
        shape = service_model().operation_model(operation).input_shape
        members = dict(shape.members) if shape is not None else {}
        value: dict[str, Any] = {}
        for name, member in members.items():
            if name in KEY_MEMBERS:
                value[name] = draw(st.sampled_from(key_ids))
            elif name in shape.required_members or draw(st.booleans()):
                value[name] = draw(shaped(member, key_ids))
        return json.dumps(value).encode()
    if kind in ("json", "shaped"):
        return json.dumps(draw(json_values)).encode()
    if kind == "huge":
        # Around the size limit: just under, at, and over it.
        size = LIMIT + draw(st.integers(min_value=-64, max_value=64))
        return b'{"Plaintext": "' + b"A" * max(0, size - 17) + b'"}'
    if kind == "edge":
        return draw(
            st.sampled_from(
                [
                    b"",
                    b"{",
                    b"null",
                    b"[]",
                    b'{"KeyId": "\\u0000"}',
                    b'{"a": NaN}',
                    b"\xff\xfe",
                    b'"x"' * 10,
                    # A lone surrogate, and numbers PostgreSQL's jsonb gives back in another form.
                    b'{"KeyId": "\\ud800"}',
                    b'{"NumberOfBytes": 1e300, "Limit": -0.0, "GrantTokens": [2.50, 1E2]}',
                ]
            )
        )
    return draw(st.binary(max_size=512))


# Mostly real operations, so bodies reach the handlers; some targets that name nothing.
_junk_operations = st.one_of(st.text(max_size=40), st.sampled_from(["", "encrypt", "Encrypt ", "../Encrypt"]))
operations = st.integers(min_value=0, max_value=9).flatmap(
    lambda pick: st.sampled_from(OPERATIONS) if pick < 8 else _junk_operations
)
prefixes = st.sampled_from(["TrentService."] * 9 + ["Other.", ""])
extra_headers = st.dictionaries(
    st.sampled_from(["Content-Encoding", "Content-Type", "X-Kms-Explain", "X-Kms-Via-Service", "X-Amz-Date"]),
    st.sampled_from(["gzip", "identity", "application/json", "text/plain", "1", "", "\u00e9", "x" * 300]),
    max_size=3,
)


def send(client: Client, persona: Persona | None, target: str, body: bytes, headers: dict[str, str]) -> Any:
    request = AWSRequest(
        method="POST",
        url="http://testserver/",
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target, **headers},
    )
    if persona is not None:
        credentials = Credentials(persona.access_key_id, persona.secret_access_key)
        SigV4Auth(credentials, "kms", settings.KMS_REGION).add_auth(request)
    meta = {"HTTP_HOST": "testserver"}
    for name, value in request.headers.items():
        key = name.upper().replace("-", "_")
        meta[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    return client.generic("POST", "/", data=body, **meta)


def check_answer(response: Any, persona: Persona) -> None:
    text = response.content.decode("utf-8", "replace")
    assert response.status_code < 500, text
    assert "Traceback" not in text and 'File "' not in text
    assert persona.secret_access_key not in text
    # Operations such as DisableKey answer 200 with an empty body, as AWS does.
    document = json.loads(text) if text else {}
    if response.status_code >= 400:
        assert document.get("__type") and isinstance(document.get("message", document.get("Message")), str)


@pytest.fixture
def key_ids(admin: Persona, client: Client) -> list[str]:
    response = send(client, admin, "TrentService.CreateKey", json.dumps({"Description": "fuzz"}).encode(), {})
    created = json.loads(response.content)
    assert response.status_code == 200, created
    key_id = created["KeyMetadata"]["KeyId"]
    send(
        client,
        admin,
        "TrentService.CreateAlias",
        json.dumps({"AliasName": "alias/fuzz", "TargetKeyId": key_id}).encode(),
        {},
    )
    return [key_id, created["KeyMetadata"]["Arn"], "alias/fuzz", "alias/aws/none", "1234abcd" * 4]


def test_signed_fuzz_never_fails_the_server(admin: Persona, key_ids: list[str]) -> None:
    client = Client()

    @FUZZ
    @given(operation=operations, prefix=prefixes, data=st.data(), headers=extra_headers)
    def run(operation: str, prefix: str, data: st.DataObject, headers: dict[str, str]) -> None:
        payload = data.draw(bodies(operation, key_ids))
        check_answer(send(client, admin, prefix + operation, payload, headers), admin)

    run()
    # Nothing half-written: every key created by the fuzz has current material (or is waiting for import),
    # and the audit trail of all those requests is an unbroken chain.
    orphans = Key.objects.exclude(origin="EXTERNAL").exclude(
        pk__in=KeyMaterial.objects.filter(is_current=True).values("key_id")
    )
    assert not orphans.exists()
    call_command("audit", "verify")


def test_unsigned_fuzz_is_refused_in_aws_words(admin: Persona, settings: Any) -> None:
    # The fuzz sprays unsigned requests from one address on purpose: without this, the address limit
    # (tests/security/test_rate_limits.py) would answer most of them with ThrottlingException before any parsing.
    settings.KMS_AUTH_FAILURE_LIMIT = 0
    client = Client()

    @FUZZ
    @given(operation=operations, prefix=prefixes, data=st.data(), headers=extra_headers)
    def run(operation: str, prefix: str, data: st.DataObject, headers: dict[str, str]) -> None:
        response = send(client, None, prefix + operation, data.draw(bodies(operation, ["x"])), headers)
        check_answer(response, admin)
        assert response.status_code >= 400

    run()


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000,
        b'{"a": ' * 20_000 + b"1" + b"}" * 20_000,
        json.dumps({"Tags": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}).encode(),
    ],
    ids=["200k-brackets", "20k-objects", "33-levels"],
)
def test_deeply_nested_bodies_are_a_serialization_error(admin: Persona, body: bytes) -> None:
    response = send(Client(), admin, "TrentService.TagResource", body, {})
    assert response.status_code == 400, response.content
    assert json.loads(response.content)["__type"] == "SerializationException"
