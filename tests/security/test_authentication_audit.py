"""Authentication is audited on every interface (threat model gap 5 and gap 1's leftover): refused REST
credentials, every kind of refused SigV4 request, console sign-in success and failure, sign-out and session
expiry, and a console login whose link to its IAM user was changed in the database. Each is one event with the
interface, the principal (or only the name that was tried), the source address and the outcome, and none holds a
password, a token's secret or a signature."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from kmsconsole.audit.authevents import AUTHENTICATE, CONFIRM_PASSWORD, RELINKED, SIGN_IN, SIGN_OUT
from kmsconsole.audit.models import AuditEvent
from kmsconsole.console.session import LAST_SEEN_AT
from kmsconsole.console.sudo import sudo_fresh
from policies.models import AccessKey, Account, ConsoleIdentity, IamUser
from tests.api.conftest import token_for
from tests.audit.test_fail_closed import audit_writes_fail  # noqa: F401 - a fixture
from tests.conftest import Persona
from tests.console.conftest import PASSWORD, console_login_for
from tests.security.test_rate_limits import send

pytestmark = pytest.mark.django_db

ADDRESS = "192.0.2.44"


class RequestWithSession:
    """What `sudo_fresh` reads of a request: its session."""

    def __init__(self, session: Any) -> None:
        self.session = session


def only_event(**filters: Any) -> AuditEvent:
    [event] = AuditEvent.objects.filter(**filters)
    return event


def no_row_holds(*secrets: str) -> None:
    for row in AuditEvent.objects.values():
        for secret in secrets:
            assert secret not in json.dumps(row, default=str)


# The REST API.


def test_a_request_without_a_token_is_a_recorded_401() -> None:
    response = Client().get("/api/v1/keys", REMOTE_ADDR=ADDRESS, HTTP_USER_AGENT="curl/8")
    assert response.status_code == 401
    event = only_event(interface="api")
    assert (event.operation, event.decision, event.error_code) == (
        AUTHENTICATE,
        "failed",
        "MissingAuthenticationTokenException",
    )
    assert (event.caller_arn, event.source_ip, event.user_agent) == ("anonymous", ADDRESS, "curl/8")
    assert event.request_parameters == {"Method": "GET", "Path": "/api/v1/keys"}


def test_a_wrong_token_is_recorded_by_its_public_prefix_only(account: Account, admin: Persona) -> None:
    real = token_for(account, admin.name)
    prefix = real.split("_", 2)[1]
    forged = f"kmsc_{prefix}_{'A' * 43}"
    assert Client().get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {forged}").status_code == 401
    assert (
        Client().get("/api/v1/keys", HTTP_AUTHORIZATION="Bearer my-aws-secret-pasted-here").status_code == 401
    )
    events = list(AuditEvent.objects.filter(interface="api", operation=AUTHENTICATE).order_by("seq"))
    assert [(e.error_code, e.access_key_id) for e in events] == [
        ("UnrecognizedClientException", f"kmsc_{prefix}"),
        ("UnrecognizedClientException", ""),
    ]
    no_row_holds("A" * 43, "my-aws-secret-pasted-here", real.split("_", 2)[2])
    assert Client().get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {real}").status_code == 200


# The AWS endpoint: every way SigV4 authentication can fail leaves one event.


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unsigned", "MissingAuthenticationTokenException"),
        ("wrong-secret", "InvalidSignatureException"),
        ("unknown-key", "UnrecognizedClientException"),
        ("inactive-key", "UnrecognizedClientException"),
    ],
)
def test_every_refused_signature_is_recorded(admin: Persona, case: str, code: str) -> None:
    persona: Persona | None = admin
    secret = None
    if case == "unsigned":
        persona = None
    elif case == "wrong-secret":
        secret = "z" * 40
    elif case == "unknown-key":
        persona = Persona("ghost", "arn:aws:iam::111122223333:user/ghost", "AKIA" + "Q" * 16, "s" * 40)
    else:
        AccessKey.objects.filter(access_key_id=admin.access_key_id).update(status=AccessKey.Status.INACTIVE)
    response = send(persona, "ListKeys", address=ADDRESS, secret=secret)
    assert json.loads(response.content)["__type"] == code
    event = only_event(interface="kms")
    assert (event.operation, event.decision, event.error_code, event.caller_arn, event.source_ip) == (
        "ListKeys",
        "failed",
        code,
        "anonymous",
        ADDRESS,
    )
    assert event.access_key_id == ("" if persona is None else persona.access_key_id)
    no_row_holds(admin.secret_access_key)


# The console.


def sign_in(username: str, password: str) -> Client:
    client = Client()
    client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ADDRESS)
    return client


def test_a_sign_in_is_recorded_as_the_iam_user(admin: Persona) -> None:
    console_login_for(admin)
    client = sign_in("admin", PASSWORD)
    assert "_auth_user_id" in client.session
    event = only_event(operation=SIGN_IN)
    assert (event.interface, event.decision, event.caller_arn, event.source_ip) == (
        "console",
        "allowed",
        admin.arn,
        ADDRESS,
    )
    assert event.request_parameters == {"UserName": "admin"}
    no_row_holds(PASSWORD)


def test_a_failed_sign_in_is_recorded_with_the_name_tried_never_the_password(admin: Persona) -> None:
    console_login_for(admin)
    client = sign_in("admin", "Summer2025-guess")
    assert "_auth_user_id" not in client.session
    event = only_event(operation=SIGN_IN)
    assert (event.decision, event.error_code, event.caller_arn) == (
        "denied",
        "AccessDeniedException",
        "anonymous",
    )
    assert event.request_parameters == {"UserName": "admin"} and event.source_ip == ADDRESS
    no_row_holds("Summer2025-guess")


def test_sign_out_and_an_expired_session_are_recorded(admin: Persona) -> None:
    console_login_for(admin)
    client = sign_in("admin", PASSWORD)
    client.post(reverse("logout"), REMOTE_ADDR=ADDRESS)
    event = only_event(operation=SIGN_OUT)
    assert (event.decision, event.caller_arn, event.reason) == ("allowed", admin.arn, "Signed out.")
    idle = sign_in("admin", PASSWORD)
    session = idle.session
    session[LAST_SEEN_AT] = int(time.time()) - settings.KMS_SESSION_IDLE_SECONDS - 5
    session.save()
    assert idle.get(reverse("console:keys")).status_code == 302  # back to the sign-in page
    expired = AuditEvent.objects.filter(operation=SIGN_OUT).order_by("-seq").first()
    assert expired is not None and expired.reason.startswith("The session ended")


def relink(victim: Persona, to: Persona) -> None:
    """What a database writer does: point a login at another IAM user, around the service (no new row MAC)."""
    ConsoleIdentity.objects.filter(iam_user=IamUser.objects.get(name=victim.name)).update(
        iam_user=IamUser.objects.get(name=to.name)
    )


def test_a_relinked_login_is_refused_and_recorded_on_every_interface(
    admin: Persona, outsider: Persona
) -> None:
    login = console_login_for(outsider)
    browser = Client(raise_request_exception=False)
    browser.force_login(login)
    relink(outsider, admin)

    page = browser.get(reverse("console:keys"), REMOTE_ADDR=ADDRESS)
    assert page.status_code == 500 and b"cannot be trusted" in page.content
    api = browser.get("/api/v1/keys", REMOTE_ADDR=ADDRESS)
    assert api.status_code == 500 and api.json()["error"]["code"] == "KMSInternalException"
    signed_in = sign_in("outsider", PASSWORD)
    assert "_auth_user_id" not in signed_in.session  # not signed in as anyone

    events = list(AuditEvent.objects.filter(operation=AUTHENTICATE).order_by("seq"))
    assert [e.interface for e in events] == ["console", "api", "console"]
    for event in events:
        assert (event.decision, event.error_code, event.reason) == (
            "failed",
            "KMSInternalException",
            RELINKED,
        )
        assert event.request_parameters == {"ConsoleLogin": "outsider"} and event.source_ip == ADDRESS
        assert event.caller_arn == "anonymous"  # never the IAM user the link now names
    assert not AuditEvent.objects.filter(operation=SIGN_IN, decision="allowed").exists()


# The password confirmation that opens sudo mode.


def confirm(client: Client, password: str) -> Any:
    return client.post(
        reverse("console:sudo"), {"password": password, "next": "/console/"}, REMOTE_ADDR=ADDRESS
    )


def test_a_password_confirmation_is_recorded_right_or_wrong(admin: Persona) -> None:
    console_login_for(admin)
    client = sign_in("admin", PASSWORD)
    assert confirm(client, "Autumn2025-guess").status_code == 400
    assert not sudo_fresh(RequestWithSession(client.session))
    wrong = only_event(operation=CONFIRM_PASSWORD)
    assert (wrong.decision, wrong.error_code, wrong.source_ip) == ("denied", "AccessDeniedException", ADDRESS)
    assert wrong.request_parameters == {"UserName": "admin"}
    assert confirm(client, PASSWORD).status_code == 302
    assert sudo_fresh(RequestWithSession(client.session))
    right = AuditEvent.objects.filter(operation=CONFIRM_PASSWORD).order_by("-seq").first()
    assert right is not None and (right.decision, right.caller_arn) == ("allowed", admin.arn)
    no_row_holds(PASSWORD, "Autumn2025-guess")


def test_sudo_mode_stays_closed_when_the_confirmation_cannot_be_recorded(
    admin: Persona, request: pytest.FixtureRequest
) -> None:
    console_login_for(admin)
    client = Client()
    client.force_login(User.objects.get(username="admin"))
    request.getfixturevalue("audit_writes_fail")  # from here on, every audit insert is refused
    answer = confirm(client, PASSWORD)
    assert answer.status_code == 503 and "could not be recorded" in answer.content.decode()
    assert not sudo_fresh(RequestWithSession(client.session))
