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
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from kmsconsole.audit.authevents import AUTHENTICATE, CONFIRM_PASSWORD, SIGN_IN
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.recorder import presented_note
from kmsconsole.core import ratelimit
from policies.models import Account
from tests.api.conftest import client_with, token_for
from tests.conftest import PARTNER_ACCOUNT, Persona
from tests.console.conftest import PASSWORD, console_login_for
from tests.rows import update_sealed
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


def test_a_wrong_sudo_password_is_recorded_as_the_sessions_caller(
    admin: Persona, auditors: tuple[APIClient, APIClient]
) -> None:
    console_login_for(admin)
    client = Client()
    client.post(reverse("login"), {"username": "admin", "password": PASSWORD}, REMOTE_ADDR=ADDRESS)
    answer = client.post(reverse("console:sudo"), {"password": "Spring2026-guess", "next": "/console/"})
    assert answer.status_code == 400
    event = latest(operation=CONFIRM_PASSWORD, decision="denied")
    # The session authenticated the caller: the event names it (only the password typed again was refused).
    assert (event.caller_arn, event.caller_account) == (admin.arn, ACCOUNT)
    assert "belonged to" not in event.reason
    mine, theirs = auditors
    assert str(event.event_id) in {row["event_id"] for row in listed(mine, operation=CONFIRM_PASSWORD)}
    assert theirs.get(f"/api/v1/audit-events/{event.event_id}").status_code == 404


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


# What anyone who knows a credential's public part can put into its account's trail is bounded.


class _Clock:
    """The ledger's clock (kmsconsole.core.ratelimit), moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(settings: Any, monkeypatch: pytest.MonkeyPatch) -> _Clock:
    settings.KMS_WEB_WORKERS = 1
    settings.KMS_AUTH_FAILURE_LIMIT = 100
    settings.KMS_THROTTLE_AUDIT_SECONDS = 60
    moved = _Clock()
    monkeypatch.setattr(ratelimit, "time", moved)
    ratelimit.reset()
    return moved


def test_refusals_of_a_real_access_key_reach_its_trail_once_per_interval_and_address_with_the_count(
    clock: _Clock, admin: Persona
) -> None:
    for _ in range(3):
        assert send(admin, "ListKeys", address=ADDRESS, secret="z" * 40).status_code == 400
    first = list(AuditEvent.objects.filter(error_code="InvalidSignatureException").order_by("seq"))
    assert len(first) == 1 and "not recorded" not in first[0].reason
    assert_filed_under_owner(first[0], admin)
    # Another address has its own entry.
    send(admin, "ListKeys", address="192.0.2.62", secret="z" * 40)
    assert (
        AuditEvent.objects.filter(error_code="InvalidSignatureException", source_ip="192.0.2.62").count() == 1
    )
    clock.now += 61
    send(admin, "ListKeys", address=ADDRESS, secret="z" * 40)
    recorded = list(
        AuditEvent.objects.filter(error_code="InvalidSignatureException", source_ip=ADDRESS).order_by("seq")
    )
    assert len(recorded) == 2
    assert (
        "2 more refused attempts with this credential from this address were not recorded"
        in recorded[1].reason
    )
    assert_filed_under_owner(recorded[1], admin)


def test_refusals_of_unknown_credentials_are_each_recorded_as_before(clock: _Clock) -> None:
    ghost = Persona("ghost", f"arn:aws:iam::{ACCOUNT}:user/ghost", "AKIA" + "Q" * 16, "s" * 40)
    for _ in range(3):
        send(ghost, "ListKeys", address=ADDRESS)
    assert AuditEvent.objects.filter(error_code="UnrecognizedClientException", caller_account="").count() == 3


def test_every_refusal_of_a_real_key_still_counts_toward_the_address_block(
    clock: _Clock, settings: Any, admin: Persona
) -> None:
    settings.KMS_AUTH_FAILURE_LIMIT = 3
    ratelimit.reset()
    for _ in range(3):
        assert json.loads(send(admin, "ListKeys", address=ADDRESS, secret="z" * 40).content)["__type"] == (
            "InvalidSignatureException"
        )
    assert AuditEvent.objects.filter(error_code="InvalidSignatureException").count() == 1
    blocked = send(admin, "ListKeys", address=ADDRESS)  # even correctly signed
    assert json.loads(blocked.content)["__type"] == "ThrottlingException"
    # Refused before any credential was looked at: not attributed to the key's account.
    throttled = latest(error_code="ThrottlingException")
    assert (throttled.caller_arn, throttled.caller_account) == ("anonymous", "")
    assert "belonged to" not in throttled.reason


def test_refusals_of_a_real_token_reach_its_trail_once_per_interval(
    clock: _Clock, account: Account, admin: Persona, auditors: tuple[APIClient, APIClient]
) -> None:
    prefix = token_for(account, admin.name).split("_", 2)[1]
    for _ in range(3):
        answer = Client().get(
            "/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer kmsc_{prefix}_{'A' * 43}", REMOTE_ADDR=ADDRESS
        )
        assert answer.status_code == 401
    [event] = AuditEvent.objects.filter(operation=AUTHENTICATE, interface="api")
    assert_filed_under_owner(event, admin)
    # The principal filter "anonymous" finds them in the account's trail (README), the admin's own name does not.
    mine, _ = auditors
    found = {row["event_id"] for row in listed(mine, caller_arn="anonymous")}
    assert str(event.event_id) in found
    assert str(event.event_id) not in {row["event_id"] for row in listed(mine, caller_arn=admin.arn)}


def test_the_overview_leaves_refused_credentials_of_the_accounts_principals_out_of_its_denied_requests(
    clock: _Clock, admin: Persona, console: Callable[..., Client]
) -> None:
    console_login_for(admin)
    sign_in("admin", "Winter2026-guess")
    assert latest(operation=SIGN_IN, error_code="AccessDeniedException").caller_account == ACCOUNT
    page = console(admin).get("/")
    assert page.status_code == 200
    assert b"No request has been denied." in page.content


# A user name no login can have is looked up nowhere.


@pytest.mark.parametrize("name", ["ad\x00min", "admin\ud800"])
def test_a_user_name_no_login_can_have_gets_the_same_page_as_an_unknown_one(
    admin: Persona, name: str
) -> None:
    console_login_for(admin)
    unknown = sign_in("nobody-here", "Winter2026-guess")
    if "\ud800" in name:
        # A lone surrogate cannot be sent encoded: the raw bytes of one (invalid UTF-8) stand in for it.
        answer = Client().post(
            reverse("login"),
            "username=admin%ED%A0%80&password=Winter2026-guess",
            content_type="application/x-www-form-urlencoded",
            REMOTE_ADDR=ADDRESS,
        )
    else:
        answer = sign_in(name, "Winter2026-guess")
    # The sign-in page again, as before the name was ever looked up (no 500 from a query the database refuses).
    assert answer.status_code == unknown.status_code == 200
    assert b'name="password"' in answer.content and b'name="password"' in unknown.content
    event = latest(operation=SIGN_IN)
    assert (event.caller_arn, event.caller_account) == ("anonymous", "")
    assert "belonged to" not in event.reason


# Tokens refused for their age or revocation, or whose row fails its integrity check.


def test_an_expired_or_revoked_token_reaches_its_accounts_trail(account: Account, admin: Persona) -> None:
    from kmsconsole.api.models import ApiToken

    for change in ("expires_at", "revoked_at"):
        prefix = token_for(account, admin.name).split("_", 2)[1]
        row = ApiToken.objects.get(prefix=prefix)
        setattr(row, change, timezone.now() - timedelta(seconds=1))
        row.save()  # a sealed change, as the service makes it
        assert (
            Client().get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer kmsc_{prefix}_{'A' * 43}").status_code
            == 401
        )
        assert_filed_under_owner(latest(operation=AUTHENTICATE, access_key_id=f"kmsc_{prefix}"), admin)


def test_a_token_whose_row_fails_its_integrity_check_is_filed_under_no_account(
    account: Account, admin: Persona
) -> None:
    from kmsconsole.api.models import ApiToken

    prefix = token_for(account, admin.name).split("_", 2)[1]
    ApiToken.objects.filter(prefix=prefix).update(
        revoked_at=timezone.now()
    )  # unsealed: the MAC no longer matches
    assert (
        Client().get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer kmsc_{prefix}_{'A' * 43}").status_code == 401
    )
    event = latest(operation=AUTHENTICATE, access_key_id=f"kmsc_{prefix}")
    assert (event.caller_arn, event.caller_account) == ("anonymous", "")
    assert "belonged to" not in event.reason


# The AWS endpoint: inactive keys and session tokens.


def test_an_inactive_access_key_stays_anonymous_with_no_account(admin: Persona) -> None:
    from policies.models import AccessKey

    AccessKey.objects.filter(access_key_id=admin.access_key_id).update(status=AccessKey.Status.INACTIVE)
    send(admin, "ListKeys", address=ADDRESS, secret="z" * 40)
    event = latest(interface="kms")
    assert (event.error_code, event.caller_arn, event.caller_account) == (
        "UnrecognizedClientException",
        "anonymous",
        "",
    )


def test_a_session_key_with_a_bad_or_expired_token_reaches_its_accounts_trail(
    role_session: Callable[..., Persona],
) -> None:
    from policies.models import RoleSession
    from tests.conftest import ALLOW_RANDOM

    session = role_session("app", ALLOW_RANDOM)
    forged = send(session, "GenerateRandom", {"NumberOfBytes": 1}, address=ADDRESS, session_token="forged")
    assert json.loads(forged.content)["__type"] == "UnrecognizedClientException"
    event = latest(interface="kms")
    assert (event.caller_arn, event.caller_account) == ("anonymous", ACCOUNT)
    assert "belonged to" in event.reason
    update_sealed(RoleSession.objects, expires_at=timezone.now() - timedelta(seconds=1))
    expired = send(
        session,
        "GenerateRandom",
        {"NumberOfBytes": 1},
        address="192.0.2.63",
        session_token=session.session_token,
    )
    assert json.loads(expired.content)["__type"] == "ExpiredTokenException"
    event = latest(interface="kms", error_code="ExpiredTokenException")
    assert (event.caller_arn, event.caller_account) == ("anonymous", ACCOUNT)
    assert "belonged to" in event.reason
