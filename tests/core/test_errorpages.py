"""handler500: an exception nothing else handled (the database gone mid-request) is answered in the interface's
own error shape — AWS JSON on the KMS endpoint, the API's JSON body under /api/, the page in words elsewhere."""

from __future__ import annotations

import io
import json
import sys
import uuid
from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client

from kmsconsole.awskms import views as kms_views

pytestmark = pytest.mark.django_db


def database_gone(*args: Any, **kwargs: Any) -> Any:
    raise OperationalError("server closed the connection unexpectedly")


@pytest.mark.parametrize("path", ["/", "/kms/"])
def test_a_kms_request_gets_a_retryable_aws_error(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    monkeypatch.setattr(kms_views, "authenticate", database_gone)
    response = Client(raise_request_exception=False).post(
        path,
        data=b"{}",
        content_type="application/x-amz-json-1.1",
        headers={"X-Amz-Target": "TrentService.Encrypt", "Authorization": "AWS4-HMAC-SHA256 ..."},
    )
    assert response.status_code == 500
    assert response["Content-Type"] == "application/x-amz-json-1.1"
    assert response["x-amzn-ErrorType"] == "KMSInternalException"
    assert response["x-amzn-RequestId"]
    assert json.loads(response.content) == {
        "__type": "KMSInternalException",
        "message": "An internal error occurred. Retry the request.",
    }


def test_the_rest_api_gets_its_json_body(monkeypatch: pytest.MonkeyPatch) -> None:
    from kmsconsole.api import authentication

    monkeypatch.setattr(authentication.ApiTokenAuthentication, "authenticate", database_gone)
    monkeypatch.setattr("rest_framework.views.APIView.handle_exception", lambda self, exc: database_gone())
    response = Client(raise_request_exception=False).get(
        "/api/v1/keys", headers={"Authorization": "Bearer x"}
    )
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "KMSInternalException"


def test_the_console_keeps_its_page_in_words(monkeypatch: pytest.MonkeyPatch) -> None:
    from kmsconsole.core import views

    monkeypatch.setattr(views, "overview", database_gone)
    response = Client(raise_request_exception=False).get("/")
    assert response.status_code == 500
    assert b"Something went wrong on our side" in response.content


def refused_on_the_kms_short_path(settings: Any) -> tuple[dict[str, str], bytes]:
    """The headers and body of a KMS request whose Host header is not allowed, through the WSGI entry the web
    server runs (the KMS endpoint's short path), with SecurityMiddleware's HTTPS redirect asking for the host."""
    from kmsconsole.awskms.wsgi import KmsEndpointHandler

    settings.SECURE_SSL_REDIRECT = True
    application = KmsEndpointHandler()  # its SecurityMiddleware reads the setting when it is made
    answered: dict[str, Any] = {}
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/", "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b"{}"), "wsgi.errors": sys.stderr, "CONTENT_LENGTH": "2",
        "CONTENT_TYPE": "application/x-amz-json-1.1", "HTTP_HOST": "evil.example",
        "HTTP_X_AMZ_TARGET": "TrentService.ListKeys",
    }  # fmt: skip
    response = application(
        environ, lambda status, headers: answered.update(status=status, headers=dict(headers))
    )
    try:
        content = b"".join(response)
    finally:
        response.close()  # type: ignore[attr-defined]
    assert answered["status"].startswith("400")
    return answered["headers"], content


def refused_through_django(path: str) -> Any:
    """A request to `path` whose Host header is not allowed, through Django's handler (the full middleware)."""
    return Client(raise_request_exception=False, HTTP_HOST="evil.example").get(path)


@pytest.mark.django_db(
    transaction=True
)  # the WSGI entry closes old connections, as Django's request signals do
def test_a_host_header_not_allowed_is_refused_in_each_interfaces_own_shape(settings: Any) -> None:
    """handler400: SecurityMiddleware's HTTPS redirect asks for the host, and a Host not in ALLOWED_HOSTS is a
    SuspiciousOperation before any view: an AWS SDK gets AWS's JSON, the REST API its JSON body, the console words.
    Through the WSGI entry the web server runs (the KMS endpoint's short path) and through Django's handler."""
    from kmsconsole.core.errorpages import REFUSED_MESSAGE

    headers, content = refused_on_the_kms_short_path(settings)
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    assert json.loads(content) == {"__type": "ValidationException", "message": REFUSED_MESSAGE}
    assert headers["x-amzn-ErrorType"] == "ValidationException"

    api = refused_through_django("/api/v1/keys")
    assert api.status_code == 400 and api.json()["error"]["code"] == "ValidationException"
    console = refused_through_django("/console/")
    assert console.status_code == 400 and b"Bad Request" in console.content


@pytest.mark.django_db(transaction=True)
def test_a_host_header_not_allowed_is_answered_with_a_fresh_request_id(settings: Any) -> None:
    """Django refuses the Host header in SecurityMiddleware, before RequestIdMiddleware has given the request an
    id: handler400 gives its answer one, on every interface, as every other answer has (x-amzn-RequestId)."""
    settings.SECURE_SSL_REDIRECT = True
    ids = [
        refused_on_the_kms_short_path(settings)[0]["x-amzn-RequestId"],
        refused_on_the_kms_short_path(settings)[0]["x-amzn-RequestId"],
        refused_through_django("/api/v1/keys")["x-amzn-RequestId"],
        refused_through_django("/console/")["x-amzn-RequestId"],
    ]
    assert all(str(uuid.UUID(request_id)) == request_id for request_id in ids), ids
    assert len(set(ids)) == len(ids), "each answer has its own"


@pytest.fixture
def server_log() -> Any:
    """The lines the server's log handler (settings.LOGGING: its format and its filters) writes, as a list."""
    import logging.config

    from django.conf import settings

    stream = io.StringIO()
    config = settings.LOGGING
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(config["formatters"]["plain"]["format"]))
    for name in config["handlers"]["console"].get("filters", []):
        factory = config["filters"][name]["()"]
        module, _, attribute = factory.rpartition(".")
        handler.addFilter(getattr(__import__(module, fromlist=[attribute]), attribute)())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: stream.getvalue().splitlines()
    finally:
        root.removeHandler(handler)


@pytest.mark.django_db(transaction=True)
def test_a_refused_host_is_logged_with_the_request_id_its_answer_carries(
    settings: Any, server_log: Any
) -> None:
    """handler400's answer has no audit event (by design): the id it carries is in the server log's line for the
    refusal, so an operator can find the id a caller quotes. The line names the id only, never the request."""
    settings.SECURE_SSL_REDIRECT = True
    answered = [
        refused_on_the_kms_short_path(settings)[0]["x-amzn-RequestId"],
        refused_through_django("/api/v1/keys")["x-amzn-RequestId"],
        refused_through_django("/console/")["x-amzn-RequestId"],
    ]
    lines = server_log()
    for request_id in answered:
        (line,) = [line for line in lines if f"[{request_id}]" in line]
        assert "DisallowedHost" in line and "evil.example" in line, line


def test_a_server_error_is_logged_with_the_request_id_its_answer_carries(
    monkeypatch: pytest.MonkeyPatch, server_log: Any
) -> None:
    from kmsconsole.core import views

    monkeypatch.setattr(views, "overview", database_gone)
    response = Client(raise_request_exception=False, HTTP_AUTHORIZATION="Bearer secret-token").get("/")
    assert response.status_code == 500
    request_id = response["x-amzn-RequestId"]
    (line,) = [line for line in server_log() if f"[{request_id}]" in line]
    assert "ERROR django.request" in line and "Internal Server Error" in line, line
    assert "secret-token" not in "\n".join(server_log())


def test_a_line_of_no_request_says_so(server_log: Any) -> None:
    import logging

    logging.getLogger("kmsconsole.test").warning("no request here")
    assert any(line.endswith("kmsconsole.test [-]: no request here") for line in server_log())
