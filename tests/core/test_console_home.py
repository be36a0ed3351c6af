"""Sign-in and the home page (the overview): a console login acts as the IAM user it is linked to."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from kmsconsole.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_bootstrap_is_idempotent_and_links_the_console_admin(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KMS_ADMIN_PASSWORD", "correct horse battery staple")
    out = StringIO()
    call_command("bootstrap", stdout=out)
    assert "Created IAM user arn:aws:iam::111122223333:user/admin" in out.getvalue()
    assert "correct horse" not in out.getvalue()
    events = AuditEvent.objects.count()
    again = StringIO()
    call_command("bootstrap", stdout=again)
    assert "Created" not in again.getvalue() and AuditEvent.objects.count() == events
    assert AuditEvent.objects.filter(operation="iam:PutUserPolicy", decision="allowed").count() == 1

    assert client.post("/signin/", {"username": "admin", "password": "wrong"}).status_code == 200
    response = client.post("/signin/", {"username": "admin", "password": "correct horse battery staple"})
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 200 and b"<h1>Overview</h1>" in home.content
    assert b"arn:aws:iam::111122223333:user/admin" in home.content
    assert b'endpoint_url="http://testserver/"' in home.content
    assert b"KMS_DAY_SECONDS" not in home.content


def test_shortened_days_are_announced(admin_client_as_principal: Any, settings: Any) -> None:
    settings.KMS_DAY_SECONDS = 2
    page = admin_client_as_principal.get("/")
    assert b"A day lasts 2 seconds on this server (KMS_DAY_SECONDS)" in page.content


@pytest.fixture
def admin_client_as_principal(client: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("KMS_ADMIN_PASSWORD", "correct horse battery staple")
    call_command("bootstrap", stdout=StringIO())
    assert (
        client.post("/signin/", {"username": "admin", "password": "correct horse battery staple"}).status_code
        == 302
    )
    return client


def test_a_generated_password_is_printed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KMS_ADMIN_PASSWORD", raising=False)
    out = StringIO()
    call_command("bootstrap", stdout=out)
    assert "password '" in out.getvalue() and "(shown once)" in out.getvalue()
    second = StringIO()
    call_command("bootstrap", stdout=second)
    assert "password" not in second.getvalue()
    trail = str(list(AuditEvent.objects.values_list("request_parameters", "response_elements")))
    printed = out.getvalue().split("password '")[1].split("'")[0]
    assert printed not in trail
