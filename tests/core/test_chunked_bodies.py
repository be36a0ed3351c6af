"""Bodies sent with `Transfer-Encoding: chunked` and no Content-Length (kmsconsole.core.chunkedbody): granian gives
them de-chunked with no CONTENT_LENGTH, which Django read as an empty body. They reach every interface whole, up to
the largest body any interface accepts; a larger one is refused in each interface's own format, after reading at
most one byte past that limit."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from keys.models import Key
from kmsconsole.bench import loadgen
from kmsconsole.core.bodyreads import CountedInput
from kmsconsole.core.chunkedbody import (
    is_chunked,
    largest_accepted_body,
    with_chunked_bodies_read,
)
from kmsconsole.wsgi import application_without_access_log
from policies.models import Account
from tests.api.conftest import token_for
from tests.conftest import Persona
from tests.webserver import serving

# Through Django's request handler, as a web server calls it (its request signals close database connections).
through_the_application = pytest.mark.django_db(transaction=True)

PIECE = 64 * 1024


class CountingStream:
    """A de-chunked `wsgi.input` as a server hands it over: at most `piece` bytes a read (a WSGI stream may return
    less than asked), every byte handed out counted."""

    def __init__(self, body: bytes, piece: int = PIECE) -> None:
        self._body = io.BytesIO(body)
        self._piece = piece
        self.bytes_read = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._body.read(self._piece if size is None or size < 0 else min(size, self._piece))
        self.bytes_read += len(data)
        return data

    def readline(self, size: int = -1, /) -> bytes:
        data = self._body.readline(self._piece if size is None or size < 0 else min(size, self._piece))
        self.bytes_read += len(data)
        return data


def wsgi_environ(
    path: str, stream: CountingStream, headers: dict[str, str], content_length: int | None = None
) -> dict[str, Any]:
    """A POST as granian passes it: chunked (no CONTENT_LENGTH, HTTP_TRANSFER_ENCODING) unless `content_length`."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": stream, "wsgi.errors": sys.stderr,
    }  # fmt: skip
    if content_length is None:
        env["HTTP_TRANSFER_ENCODING"] = "chunked"
    else:
        env["CONTENT_LENGTH"] = str(content_length)
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        env[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
    return env


def call(environ: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"] = int(status.split()[0])

    response = application_without_access_log(environ, start_response)
    try:
        body = b"".join(response)
    finally:
        response.close()  # type: ignore[attr-defined]
    return answer["status"], json.loads(body)


def kms_headers(persona: Persona, operation: str, body: bytes, host: str = "127.0.0.1") -> dict[str, str]:
    target = loadgen.Target(
        f"http://{host}", persona.access_key_id, persona.secret_access_key, settings.KMS_REGION
    )
    signed_host, headers = loadgen.sign(target, operation, body)
    headers.pop("Content-Length", None)
    return {**headers, "Host": signed_host}


def rest_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def oversized(prefix: bytes) -> bytes:
    """A JSON body a megabyte and a half past the largest any interface accepts."""
    largest = max(settings.KMS_MAX_REQUEST_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    return prefix + b"x" * (largest + 1_500_000) + b'"}'


@through_the_application
def test_a_signed_kms_request_arrives_whole(admin: Persona) -> None:
    # The signature covers the body: an empty body would be InvalidSignatureException.
    body = json.dumps({"Description": "sent chunked", "Tags": [{"TagKey": "a", "TagValue": "b"}]}).encode()
    stream = CountingStream(body, piece=7)
    status, answer = call(wsgi_environ("/", stream, kms_headers(admin, "CreateKey", body)))
    assert status == 200, answer
    assert answer["KeyMetadata"]["Description"] == "sent chunked"
    assert stream.bytes_read == len(body)
    # A member the operation lacks is named: the body was seen, not taken for `{}`.
    body = json.dumps({"KeyId": answer["KeyMetadata"]["KeyId"], "Plaintext": ""}).encode()
    status, answer = call(wsgi_environ("/", CountingStream(body), kms_headers(admin, "Encrypt", body)))
    assert (status, answer["__type"]) == (400, "ValidationException")
    assert "plaintext" in answer["message"]


@through_the_application
def test_a_rest_post_arrives_whole(admin: Persona, account: Account) -> None:
    body = json.dumps({"description": "sent chunked"}).encode()
    stream = CountingStream(body, piece=5)
    status, answer = call(wsgi_environ("/api/v1/keys", stream, rest_headers(token_for(account, "admin"))))
    assert status == 201, answer
    assert answer["description"] == "sent chunked"
    assert Key.objects.get().description == "sent chunked"


@through_the_application
@pytest.mark.parametrize("size", ["past-kms-limit", "past-every-limit"])
def test_an_oversized_kms_body_is_a_validation_exception(admin: Persona, size: str) -> None:
    prefix = b'{"NumberOfBytes": 8, "Padding": "'
    body = prefix + b"x" * (300 * 1024) + b'"}' if size == "past-kms-limit" else oversized(prefix)
    stream = CountingStream(body)
    status, answer = call(wsgi_environ("/", stream, kms_headers(admin, "GenerateRandom", body)))
    assert (status, answer["__type"]) == (400, "ValidationException")
    assert f"larger than the {settings.KMS_MAX_REQUEST_BYTES} bytes" in answer["message"]
    # Read no further than the KMS endpoint's own limit: the REST API's larger one is not the endpoint's.
    assert stream.bytes_read == min(len(body), settings.KMS_MAX_REQUEST_BYTES + 1)


@through_the_application
def test_an_oversized_rest_body_is_refused_in_the_apis_format(admin: Persona, account: Account) -> None:
    stream = CountingStream(oversized(b'{"description": "'))
    status, answer = call(wsgi_environ("/api/v1/keys", stream, rest_headers(token_for(account, "admin"))))
    assert status == 400, answer
    assert answer["error"]["code"] == "SerializationException"
    assert f"larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes" in answer["error"]["message"]
    assert stream.bytes_read == settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1
    assert not Key.objects.exists()


@through_the_application
def test_a_request_with_a_content_length_passes_untouched(admin: Persona, account: Account) -> None:
    seen: dict[str, Any] = {}
    body = json.dumps({"description": "with a length"}).encode()
    stream = CountingStream(body, piece=len(body))
    environ = wsgi_environ("/api/v1/keys", stream, rest_headers(token_for(account, "admin")), len(body))

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"] = status
        seen["input"] = environ["wsgi.input"]

    b"".join(application_without_access_log(environ, start_response))
    # Read where it came in (counted for its address, kmsconsole.core.bodyreads), not copied first.
    assert seen["status"] == "201 Created" and isinstance(seen["input"], CountedInput)
    assert stream.bytes_read == len(body)
    assert environ["CONTENT_LENGTH"] == str(len(body))
    assert Key.objects.get().description == "with a length"


@through_the_application
def test_a_content_length_beside_a_chunked_coding_is_ignored(admin: Persona, account: Account) -> None:
    """The transfer coding frames the body (RFC 9112, 6.3): a shorter Content-Length must not cut it."""
    body = json.dumps({"description": "framed by the chunks"}).encode()
    stream = CountingStream(body, piece=4)
    environ = wsgi_environ("/api/v1/keys", stream, rest_headers(token_for(account, "admin")), 5)
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    status, answer = call(environ)
    assert status == 201, answer
    assert Key.objects.get().description == "framed by the chunks"


@pytest.mark.parametrize(
    ("extra", "chunked"),
    [
        ({"HTTP_TRANSFER_ENCODING": "chunked"}, True),
        ({"HTTP_TRANSFER_ENCODING": "Chunked"}, True),
        ({"HTTP_TRANSFER_ENCODING": "gzip, chunked"}, True),
        ({"HTTP_TRANSFER_ENCODING": "chunked", "CONTENT_LENGTH": ""}, True),
        ({"HTTP_TRANSFER_ENCODING": "chunked", "CONTENT_LENGTH": "12"}, True),
        ({"HTTP_TRANSFER_ENCODING": "gzip"}, False),
        ({"HTTP_TRANSFER_ENCODING": "chunked, gzip"}, False),
        ({}, False),
        ({"CONTENT_LENGTH": "0"}, False),
    ],
)
def test_which_requests_are_read_first(extra: dict[str, str], chunked: bool) -> None:
    assert is_chunked(extra) is chunked


def test_each_interface_reads_up_to_its_own_limit(settings: Any) -> None:
    kms = {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "HTTP_X_AMZ_TARGET": "TrentService.Encrypt"}
    rest = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/keys"}
    settings.KMS_MAX_REQUEST_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000, 5000
    assert (largest_accepted_body(kms), largest_accepted_body(rest)) == (1000, 5000)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None  # Django unbounded: still bounded by the KMS endpoint's
    assert largest_accepted_body(rest) == 1000


class FailingStream:
    def read(self, size: int = -1, /) -> bytes:
        raise OSError("connection reset")


def test_an_unreadable_body_is_a_400_not_a_server_error() -> None:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"] = status

    def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise AssertionError("not reached")

    environ = {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": FailingStream()}
    body = b"".join(with_chunked_bodies_read(application)(environ, start_response))
    assert (answer["status"], body) == ("400 Bad Request", b"The request body could not be read.\n")


# Through the real web server (granian, as `manage.py serve` runs it).


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[int]:
    with serving(tmp_path / "web.log", threads=2) as port:
        yield port


def post_chunked(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    def pieces() -> Iterable[bytes]:
        for start in range(0, len(body), PIECE):
            yield body[start : start + PIECE]

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        # A body refused before it was all sent has its answer waiting.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.request("POST", path, body=pieces(), headers=headers, encode_chunked=True)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@through_the_application
def test_chunked_bodies_through_the_web_server(web_server: int, admin: Persona, account: Account) -> None:
    body = json.dumps({"Description": "over the wire"}).encode()
    status, answer = post_chunked(
        web_server, "/", body, kms_headers(admin, "CreateKey", body, f"127.0.0.1:{web_server}")
    )
    assert (status, answer["KeyMetadata"]["Description"]) == (200, "over the wire"), answer
    token = token_for(account, "admin")
    body = json.dumps({"description": "rest over the wire"}).encode()
    status, answer = post_chunked(web_server, "/api/v1/keys", body, rest_headers(token))
    assert (status, answer["description"]) == (201, "rest over the wire"), answer
    status, answer = post_chunked(
        web_server, "/api/v1/keys", oversized(b'{"description": "'), rest_headers(token)
    )
    assert (status, answer["error"]["code"]) == (400, "SerializationException"), answer
    assert Key.objects.count() == 2
