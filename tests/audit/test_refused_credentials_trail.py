"""Refused credentials of a real principal reach the trail of the account they belong to (auditor's report M1).

A wrong signature with a real access key id, a wrong console password for a real login and the lockout that
follows, a wrong password at the sudo confirmation inside a signed-in session, and a real API token's prefix with a
wrong secret are each filed under the account whose credentials were presented, and say whose they were, while
the caller stays anonymous. The owning account's REST audit list shows them; another account's does not. Unknown
credentials stay anonymous with no account. The answer to the client does not depend on whether the credentials
belonged to anyone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from kmsconsole.audit.authevents import AUTHENTICATE, CONFIRM_PASSWORD, SIGN_IN
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.recorder import presented_note
from policies.models import Account
from tests.api.conftest import client_with, token_for
from tests.conftest import PARTNER_ACCOUNT, Persona
from tests.console.conftest import PASSWORD, console_login_for
from tests.security.test_rate_limits import send

pytestmark = pytest.mark.django_db

ACCOUNT = settings.KMS_ACCOUNT_ID
ADDRESS = "192.0.2.61"
# A CSRF token (masked, 64 characters): new on every page.
_CSRF = re.compile(rb"[A-Za-z0-9]{64}")


@pytest.fixture
def auditors(
    account: Account, admin: Persona, partner: Callable[..., Persona]
) -> tuple[APIClient, APIClient]:
    """REST clients of an admin of the owning account and of an admin of the partner account."""
    other = partner(
        "partner-admin",
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}',
    )
    partner_account = Account.objects.get(account_id=PARTNER_ACCOUNT)
    return client_with(token_for(account, admin.name)), client_with(token_for(partner_account, other.name))


def listed(api: APIClient, **filters: str) -> list[dict[str, Any]]:
    response = api.get("/api/v1/audit-events", filters)
    assert response.status_code == 200, response.content
    return response.json()["results"]  # type: ignore[no-any-return]


def assert_filed_under_owner(event: AuditEvent, owner: Persona) -> None:
    assert (event.caller_arn, event.caller_account) == ("anonymous", ACCOUNT)
    assert presented_note(owner.arn) in event.reason


def assert_only_owner_sees(event: AuditEvent, auditors: tuple[APIClient, APIClient]) -> None:
    mine, theirs = auditors
    assert str(event.event_id) in {row["event_id"] for row in listed(mine, operation=event.operation)}
    assert str(event.event_id) not in {row["event_id"] for row in listed(theirs, operation=event.operation)}
    shown = mine.get(f"/api/v1/audit-events/{event.event_id}").json()
    assert shown["caller_arn"] == "anonymous" and "belonged to" in shown["reason"]
    assert theirs.get(f"/api/v1/audit-events/{event.event_id}").status_code == 404


def latest(**filters: Any) -> AuditEvent:
    event = AuditEvent.objects.filter(**filters).order_by("-seq").first()
    assert event is not None
    return event


# The AWS endpoint.


def test_a_wrong_signature_with_a_real_access_key_reaches_its_accounts_trail(
    admin: Persona, auditors: tuple[APIClient, APIClient]
) -> None:
    response = send(admin, "ListKeys", address=ADDRESS, secret="z" * 40)
    body = json.loads(response.content)
    assert response.status_code == 400 and body["__type"] == "InvalidSignatureException"
    event = latest(interface="kms", error_code="InvalidSignatureException")
    assert_filed_under_owner(event, admin)
    assert event.access_key_id == admin.access_key_id
    assert_only_owner_sees(event, auditors)
    mine, _ = auditors
    assert [row["event_id"] for row in listed(mine, error_code="InvalidSignatureException")] == [
        str(event.event_id)
    ]


def test_an_unknown_access_key_stays_anonymous_with_no_account(
    admin: Persona, auditors: tuple[APIClient, APIClient]
) -> None:
    ghost = Persona("ghost", f"arn:aws:iam::{ACCOUNT}:user/ghost", "AKIA" + "Q" * 16, "s" * 40)
    response = send(ghost, "ListKeys", address=ADDRESS)
    assert json.loads(response.content)["__type"] == "UnrecognizedClientException"
    event = latest(interface="kms", error_code="UnrecognizedClientException")
    assert (event.caller_arn, event.caller_account) == ("anonymous", "")
    assert "belonged to" not in event.reason
    mine, _ = auditors
    assert listed(mine, error_code="UnrecognizedClientException") == []


# The console's sign-in and its lockout.


def sign_in(name: str, password: str) -> Any:
    return Client().post(reverse("login"), {"username": name, "password": password}, REMOTE_ADDR=ADDRESS)


def test_a_wrong_password_for_a_real_login_and_its_lockout_reach_its_accounts_trail(
    admin: Persona, auditors: tuple[APIClient, APIClient]
) -> None:
    console_login_for(admin)
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        sign_in("admin", "Winter2026-guess")
    refused = latest(operation=SIGN_IN, error_code="AccessDeniedException")
    assert_filed_under_owner(refused, admin)
    assert_only_owner_sees(refused, auditors)
    locked = latest(operation=SIGN_IN, error_code="ThrottlingException")
    assert_filed_under_owner(locked, admin)
    mine, theirs = auditors
    assert [row["event_id"] for row in listed(mine, error_code="ThrottlingException")] == [
        str(locked.event_id)
    ]
    assert listed(theirs, error_code="ThrottlingException") == []


def test_an_unknown_login_stays_anonymous_and_is_answered_as_a_real_one(admin: Persona) -> None:
    console_login_for(admin)
    real = sign_in("admin", "Winter2026-guess")
    unknown = sign_in("nobody-here", "Winter2026-guess")
    assert real.status_code == unknown.status_code == 200
    # The same page, byte for byte, but for the name typed back into the form and the CSRF token.
    assert _CSRF.sub(b"", real.content).replace(b"admin", b"NAME") == _CSRF.sub(b"", unknown.content).replace(
        b"nobody-here", b"NAME"
    )
    event = latest(operation=SIGN_IN, request_parameters__UserName="nobody-here")
    assert (event.caller_arn, event.caller_account) == ("anonymous", "")
    assert "belonged to" not in event.reason


# The password confirmation inside a signed-in session.


def test_a_wrong_sudo_password_reaches_the_sessions_accounts_trail(
    admin: Persona, auditors: tuple[APIClient, APIClient]
) -> None:
    console_login_for(admin)
    client = Client()
    client.post(reverse("login"), {"username": "admin", "password": PASSWORD}, REMOTE_ADDR=ADDRESS)
    answer = client.post(reverse("console:sudo"), {"password": "Spring2026-guess", "next": "/console/"})
    assert answer.status_code == 400
    event = latest(operation=CONFIRM_PASSWORD, decision="denied")
    assert_filed_under_owner(event, admin)
    assert_only_owner_sees(event, auditors)


# The REST API's bearer tokens.


def test_a_real_tokens_prefix_with_a_wrong_secret_reaches_its_accounts_trail(
    account: Account, admin: Persona, auditors: tuple[APIClient, APIClient]
) -> None:
    real = token_for(account, admin.name)
    prefix = real.split("_", 2)[1]
    named = Client().get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer kmsc_{prefix}_{'A' * 43}")
    nobodys = Client().get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer kmsc_{'0' * 12}_{'A' * 43}")
    # The client is told the same either way.
    assert named.status_code == nobodys.status_code == 401
    assert named.content == nobodys.content
    assert named["WWW-Authenticate"] == nobodys["WWW-Authenticate"]
    refused = list(AuditEvent.objects.filter(operation=AUTHENTICATE, interface="api").order_by("seq"))
    assert [event.access_key_id for event in refused] == [f"kmsc_{prefix}", f"kmsc_{'0' * 12}"]
    assert_filed_under_owner(refused[0], admin)
    assert (refused[1].caller_arn, refused[1].caller_account) == ("anonymous", "")
    assert_only_owner_sees(refused[0], auditors)
