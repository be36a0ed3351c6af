"""handler500: an exception nothing else handled (the database gone mid-request) is answered in the interface's
own error shape — AWS JSON on the KMS endpoint, the API's JSON body under /api/, the page in words elsewhere."""

from __future__ import annotations

import json
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
