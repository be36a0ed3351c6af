"""The WSGI entry (`kmsconsole.wsgi.application`): AWS SDK requests take the short middleware chain, everything
else the full one; a warm cryptographic request reads the database once (its generations) before its audit
event."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from kmsconsole.awskms.wsgi import KMS_MIDDLEWARE, is_kms_request
from kmsconsole.bench import loadgen
from kmsconsole.wsgi import application
from tests.conftest import Persona, encrypt_only_over_tls_policy

pytestmark = pytest.mark.django_db(transaction=True)


def call(environ: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    response = application(environ, start_response)
    try:
        body = b"".join(response)
    finally:
        response.close()  # type: ignore[attr-defined]
    return answer["status"], answer["headers"], body


def environ(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "CONTENT_LENGTH": str(len(body)),
    }  # fmt: skip
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        env[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    return env


@pytest.fixture
def signed(admin: Persona) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    target = loadgen.Target(
        "http://127.0.0.1", admin.access_key_id, admin.secret_access_key, settings.KMS_REGION
    )

    def make(operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload).encode()
        host, headers = loadgen.sign(target, operation, body)
        return environ("POST", "/", body, {**headers, "Host": host})

    return make


def test_sdk_requests_skip_the_console_middleware(signed: Callable[..., dict[str, Any]]) -> None:
    status, headers, body = call(signed("CreateKey", {}))
    assert status == "200 OK", body
    key_arn = json.loads(body)["KeyMetadata"]["Arn"]
    status, headers, body = call(signed("Encrypt", {"KeyId": key_arn, "Plaintext": "c2VjcmV0"}))
    assert status == "200 OK" and json.loads(body)["KeyId"] == key_arn
    assert headers["x-amzn-RequestId"] and headers["X-Content-Type-Options"] == "nosniff"  # kept middleware
    assert "Content-Security-Policy" not in headers and "Vary" not in headers  # the console's, skipped
    assert KMS_MIDDLEWARE == (
        "kmsconsole.core.middleware.ForwardedProtoMiddleware",
        "django.middleware.security.SecurityMiddleware",
        "kmsconsole.core.middleware.RequestIdMiddleware",
    )


def test_forwarded_https_is_believed_on_the_fast_path_only_from_a_named_proxy(
    signed: Callable[..., dict[str, Any]], settings: Any
) -> None:
    status, _, body = call(signed("CreateKey", {"Policy": encrypt_only_over_tls_policy()}))
    assert status == "200 OK", body
    key_arn = json.loads(body)["KeyMetadata"]["Arn"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # KMS_TRUSTED_PROXY=true
    settings.KMS_TRUSTED_PROXY_ADDRESSES = "192.0.2.0/24"

    def encrypt(peer: str) -> str:
        request = signed("Encrypt", {"KeyId": key_arn, "Plaintext": "c2VjcmV0"})
        status, _, body = call({**request, "REMOTE_ADDR": peer, "HTTP_X_FORWARDED_PROTO": "https"})
        return "200" if status.startswith("200") else str(json.loads(body)["__type"])

    assert encrypt("127.0.0.1") == "AccessDeniedException"  # a client claiming https
    assert encrypt("192.0.2.9") == "200"  # the proxy


def test_errors_are_answered_the_same_way(signed: Callable[..., dict[str, Any]]) -> None:
    status, headers, body = call(signed("Encrypt", {"KeyId": "alias/none", "Plaintext": "c2VjcmV0"}))
    assert status.startswith("400") and json.loads(body)["__type"] == "NotFoundException"
    assert headers["x-amzn-ErrorType"] == "NotFoundException"


def test_everything_else_takes_the_full_stack() -> None:
    status, headers, _ = call(environ("GET", "/healthz"))
    assert status == "200 OK" and "Content-Security-Policy" in headers
    assert not is_kms_request(environ("GET", "/", headers={"X-Amz-Target": "TrentService.Encrypt"}))
    assert not is_kms_request(
        environ("POST", "/api/v1/keys", headers={"X-Amz-Target": "TrentService.Encrypt"})
    )
    assert not is_kms_request(environ("POST", "/"))
    assert is_kms_request(environ("POST", "/kms/", headers={"X-Amz-Target": "TrentService.Encrypt"}))


def test_a_warm_encrypt_reads_only_its_generations_before_its_audit_event(
    signed: Callable[..., dict[str, Any]],
) -> None:
    _, _, body = call(signed("CreateKey", {}))
    key_arn = json.loads(body)["KeyMetadata"]["Arn"]
    for _ in range(2):  # warm the caches
        assert call(signed("Encrypt", {"KeyId": key_arn, "Plaintext": "c2VjcmV0"}))[0] == "200 OK"
    with CaptureQueriesContext(connection) as queries:
        assert call(signed("Encrypt", {"KeyId": key_arn, "Plaintext": "c2VjcmV0"}))[0] == "200 OK"
    statements = [q["sql"] for q in queries.captured_queries]
    control = ("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT", "ROLLBACK")
    reads = [sql for sql in statements if "audit_" not in sql and not sql.startswith(control)]
    if connection.vendor == "postgresql":
        assert statements == []  # both statements went straight to libpq (kmsconsole.core.prepared)
    else:
        assert len(reads) == 1 and "generations_generation" in reads[0], statements


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"HTTP_X_AMZ_SECURITY_TOKEN": "token", "HTTP_CONTENT_TYPE": "text/plain"},  # a prefixed duplicate
        {"HTTP_X_KMS_EXPLAIN": " 1 ", "HTTP_ACCEPT_ENCODING": "identity", "SERVER_SOFTWARE": "not a header"},
    ],
)
def test_the_endpoints_headers_are_what_django_reads(extra: dict[str, str]) -> None:
    """SigV4 signs the headers by lower-case name: the endpoint reads them from the environ itself, and must find
    exactly the names and values Django's `request.headers` holds (the canonical request depends on both)."""
    from django.core.handlers.wsgi import WSGIRequest

    from kmsconsole.awskms.views import lowercase_headers

    env = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "CONTENT_TYPE": "application/x-amz-json-1.1",
        "CONTENT_LENGTH": "2",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_X_AMZ_DATE": "20261129T120000Z",
        "HTTP_X_AMZ_TARGET": "TrentService.Encrypt",
        "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AKIA/20261129/us-east-1/kms/aws4_request",
        "wsgi.input": io.BytesIO(b"{}"),
        **extra,
    }
    django_headers = {name.lower(): value for name, value in WSGIRequest(env).headers.items()}
    assert lowercase_headers(env) == django_headers
    assert "server-software" not in lowercase_headers(env)


def test_an_exception_the_view_lets_out_is_answered_as_an_aws_server_fault(
    signed: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """As through Django's handler: handler500 answers the KMS endpoint in AWS's JSON (kmsconsole.core.errorpages),
    and the middleware still adds the request id and the security headers."""
    from kmsconsole.api.exceptions import INTERNAL_MESSAGE
    from kmsconsole.awskms import views

    def broken(request: Any) -> Any:
        raise RuntimeError("the view broke near a secret")

    monkeypatch.setattr(views, "kms_endpoint", broken)
    with caplog.at_level("ERROR", logger="django.request"):
        status, headers, body = call(signed("ListKeys", {}))
    assert status == "500 Internal Server Error"
    assert json.loads(body) == {"__type": "KMSInternalException", "message": INTERNAL_MESSAGE}
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    assert headers["x-amzn-ErrorType"] == "KMSInternalException"
    assert (
        headers["x-amzn-RequestId"] and headers["X-Content-Type-Options"] == "nosniff"
    )  # middleware still ran
    errors = [record for record in caplog.records if record.name == "django.request"]
    assert (
        len(errors) == 1 and errors[0].exc_info and "secret" not in body.decode()
    )  # logged once, with the trace


def test_request_signals_are_sent_when_anyone_but_django_listens(
    signed: Callable[..., dict[str, Any]],
) -> None:
    from django.core import signals

    heard: list[str] = []

    def started(sender: Any, **kwargs: Any) -> None:
        heard.append("started")

    def finished(sender: Any, **kwargs: Any) -> None:
        heard.append("finished")

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        assert call(signed("ListKeys", {}))[0] == "200 OK"
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    assert heard == ["started", "finished"]
    assert call(signed("ListKeys", {}))[0] == "200 OK" and heard == ["started", "finished"]


def test_a_receiver_that_cannot_be_hashed_is_heard_too(signed: Callable[..., dict[str, Any]]) -> None:
    """Django keys receivers by identity; so does the check for receivers other than Django's own."""
    import dataclasses

    from django.core import signals

    @dataclasses.dataclass  # eq without frozen: __hash__ is None
    class Listener:
        heard: int = 0

        def __call__(self, sender: Any, **kwargs: Any) -> None:
            self.heard += 1

    listener = Listener()
    signals.request_finished.connect(listener, weak=False)
    try:
        assert call(signed("ListKeys", {}))[0] == "200 OK"
    finally:
        signals.request_finished.disconnect(listener)
    assert listener.heard == 1


def test_a_connection_past_its_age_is_closed_when_the_response_is(
    signed: Callable[..., dict[str, Any]],
) -> None:
    """What Django's request_finished receiver does, done directly on this path: CONN_MAX_AGE holds."""
    import time

    from kmsconsole.wsgi import application

    answered: list[str] = []
    response = application(signed("ListKeys", {}), lambda status, headers: answered.append(status))
    assert b"".join(response) and answered == ["200 OK"]
    assert connection.connection is not None  # the request's connection, still open
    connection.close_at = time.monotonic() - 1  # its CONN_MAX_AGE has run out
    response.close()  # type: ignore[attr-defined]
    assert connection.connection is None


def test_a_receiver_django_disconnected_is_not_called(signed: Callable[..., dict[str, Any]]) -> None:
    """Django's test client disconnects close_old_connections around its requests; what the signals would not do,
    the short path does not do either."""
    import time

    from django.core import signals
    from django.db import close_old_connections

    from kmsconsole.wsgi import application

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        response = application(signed("ListKeys", {}), lambda status, headers: None)
        assert b"".join(response)
        connection.close_at = time.monotonic() - 1  # past its CONN_MAX_AGE, as in the test above
        response.close()  # type: ignore[attr-defined]
        assert connection.connection is not None  # left open: nobody asked for it to be closed
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
