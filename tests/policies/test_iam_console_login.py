"""`manage.py iam create-console-login`: a console sign-in linked to an IAM user, audited, its password never
echoed when given and printed once when generated; the login then signs in and acts as that user."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from kmsconsole.audit.models import AuditEvent
from policies.models import ConsoleIdentity
from tests.conftest import ALLOW_ALL, Persona

pytestmark = pytest.mark.django_db

GIVEN = "correct horse battery staple 42"


def create_login(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    call_command("iam", "create-console-login", *args)
    return json.loads(capsys.readouterr().out)["ConsoleLogin"]


def sign_in(login: str, password: str) -> Client:
    """Sign in through the real form, with CSRF enforced."""
    client = Client(enforce_csrf_checks=True)
    token = client.get("/signin/").context["csrf_token"]
    response = client.post(
        "/signin/", {"username": login, "password": password, "csrfmiddlewaretoken": str(token)}
    )
    assert response.status_code == 302, "sign-in failed"
    return client


def test_login_with_the_password_from_the_environment_acts_as_the_user(
    make_user: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice: Persona = make_user("alice", ALLOW_ALL)
    monkeypatch.setenv("KMS_CONSOLE_PASSWORD", GIVEN)
    call_command("iam", "create-console-login", "--user-name", "alice", "--login", "alice@example.com")
    out = capsys.readouterr().out
    assert GIVEN not in out
    shown = json.loads(out)["ConsoleLogin"]
    assert shown == {
        "Login": "alice@example.com",
        "UserName": "alice",
        "Arn": alice.arn,
        "PasswordFrom": "KMS_CONSOLE_PASSWORD",
    }
    identity = ConsoleIdentity.objects.get(login__username="alice@example.com")
    assert identity.iam_user.arn == alice.arn and not identity.login.is_superuser
    event = AuditEvent.objects.get(operation="kmsconsole:CreateConsoleLogin")
    assert (event.interface, event.decision) == ("cli", "allowed")
    assert event.request_parameters["Login"] == "alice@example.com"
    assert GIVEN not in str(AuditEvent.objects.values().get(pk=event.pk))

    client = sign_in("alice@example.com", GIVEN)
    assert client.get(reverse("console:user", args=["111122223333", "alice"])).status_code == 200
    acted = AuditEvent.objects.filter(operation="iam:GetUser").latest("seq")
    assert (acted.interface, acted.caller_arn, acted.decision) == ("console", alice.arn, "allowed")


def test_without_a_password_a_strong_one_is_generated_and_shown_once(
    make_user: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bob: Persona = make_user("bob")
    monkeypatch.delenv("KMS_CONSOLE_PASSWORD", raising=False)
    shown = create_login(capsys, "--user-name", "bob", "--login", "bob")
    password = shown["Password"]
    assert len(password) >= 32
    event = AuditEvent.objects.get(operation="kmsconsole:CreateConsoleLogin")
    assert password not in str(AuditEvent.objects.values().get(pk=event.pk))
    assert event.response_elements["ConsoleLogin"]["Arn"] == bob.arn and "Password" not in str(
        event.response_elements
    )
    # bob has no policies: signed in, the console acts as bob and the engine refuses him.
    client = sign_in("bob", password)
    refused = client.get(reverse("console:user", args=["111122223333", "bob"]))
    assert refused.status_code == 403
    acted = AuditEvent.objects.filter(operation="iam:GetUser").latest("seq")
    assert (acted.caller_arn, acted.decision) == (bob.arn, "denied")


def run_failing(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    with pytest.raises(SystemExit) as exited:
        call_command("iam", "create-console-login", *args)
    assert exited.value.code == 254
    return json.loads(capsys.readouterr().err)["Error"]


def test_a_weak_given_password_is_refused_without_echoing_it(
    make_user: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user("carol")
    monkeypatch.setenv("KMS_CONSOLE_PASSWORD", "short1")
    error = run_failing(capsys, "--user-name", "carol", "--login", "carol")
    assert error["Code"] == "ValidationException" and "too short" in error["Message"]
    assert "short1" not in error["Message"]
    assert not get_user_model().objects.filter(username="carol").exists()


def test_unknown_user_and_taken_login_are_errors(
    make_user: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user("dave")
    monkeypatch.setenv("KMS_CONSOLE_PASSWORD", GIVEN)
    assert run_failing(capsys, "--user-name", "nobody", "--login", "x")["Code"] == "NoSuchEntity"
    create_login(capsys, "--user-name", "dave", "--login", "dave")
    assert run_failing(capsys, "--user-name", "dave", "--login", "dave")["Code"] == "EntityAlreadyExists"
    assert ConsoleIdentity.objects.filter(login__username="dave").count() == 1
