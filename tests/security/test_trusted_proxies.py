"""Behind a reverse proxy (KMS_TRUSTED_PROXY_ADDRESSES), the client the proxy names is the request's address on
every interface: in the audit trail, for aws:SourceIp, and for every limit per address (failed authentication on
the AWS endpoint and the REST API, console sign-in). From any other peer, X-Forwarded-For is ignored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from kmsconsole.audit.models import AuditEvent
from kmsconsole.core import ratelimit
from policies.models import Account
from tests.api.conftest import token_for
from tests.conftest import Persona
from tests.console.conftest import PASSWORD, console_login_for
from tests.security.test_rate_limits import send

pytestmark = pytest.mark.django_db

PROXY, OTHER_PEER = "10.0.0.5", "198.51.100.9"
CLIENT, NEIGHBOUR = "203.0.113.7", "192.0.2.44"


@pytest.fixture
def behind_proxy(settings: Any) -> Any:
    settings.KMS_TRUSTED_PROXY_ADDRESSES = "10.0.0.0/8"
    settings.KMS_WEB_WORKERS = 1
    settings.KMS_AUTH_FAILURE_LIMIT = 3
    settings.KMS_AUTH_FAILURE_WINDOW_SECONDS = 60
    settings.KMS_THROTTLE_AUDIT_SECONDS = 60
    ratelimit.reset()
    return settings


def last_event(**filters: Any) -> AuditEvent:
    event = AuditEvent.objects.filter(**filters).order_by("-seq").first()
    assert event is not None
    return event


def test_the_kms_endpoint_takes_the_client_from_a_trusted_proxy_only(
    behind_proxy: Any, admin: Persona
) -> None:
    # The proxy appends the address it saw to whatever the client sent.
    forwarded = {"HTTP_X_FORWARDED_FOR": f"6.6.6.6, {CLIENT}"}
    assert send(admin, "ListKeys", address=PROXY, **forwarded).status_code == 200
    assert last_event(operation="ListKeys").source_ip == CLIENT
    assert send(admin, "ListKeys", address=OTHER_PEER, **forwarded).status_code == 200
    assert last_event(operation="ListKeys").source_ip == OTHER_PEER


def test_aws_source_ip_is_the_forwarded_client(behind_proxy: Any, make_user: Any) -> None:
    only_from_client_net = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "kms:ListKeys",
                    "Resource": "*",
                    "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
                }
            ],
        }
    )
    app = make_user("app", only_from_client_net)
    allowed = send(app, "ListKeys", address=PROXY, HTTP_X_FORWARDED_FOR=CLIENT)
    assert allowed.status_code == 200, allowed.content
    refused = send(app, "ListKeys", address=PROXY, HTTP_X_FORWARDED_FOR=NEIGHBOUR)
    assert json.loads(refused.content)["__type"] == "AccessDeniedException"
    # A client that reaches the server directly cannot claim the address.
    spoofed = send(app, "ListKeys", address=OTHER_PEER, HTTP_X_FORWARDED_FOR=CLIENT)
    assert json.loads(spoofed.content)["__type"] == "AccessDeniedException"


def test_failed_authentication_through_a_proxy_limits_that_client_only(
    behind_proxy: Any, admin: Persona
) -> None:
    for _ in range(3):
        send(None, "ListKeys", address=PROXY, HTTP_X_FORWARDED_FOR=CLIENT)
    throttled = send(admin, "ListKeys", address=PROXY, HTTP_X_FORWARDED_FOR=CLIENT)
    assert json.loads(throttled.content)["__type"] == "ThrottlingException"
    assert f"failed authentications from {CLIENT}" in last_event(error_code="ThrottlingException").reason
    # Another client of the same proxy, and the proxy's own address, are not held up.
    assert send(admin, "ListKeys", address=PROXY, HTTP_X_FORWARDED_FOR=NEIGHBOUR).status_code == 200
    assert send(admin, "ListKeys", address=PROXY).status_code == 200


def test_the_rest_api_audits_and_limits_the_forwarded_client(
    behind_proxy: Any, account: Account, admin: Persona
) -> None:
    token = token_for(account, admin.name)

    def get(secret: str, client: str) -> Any:
        return Client().get(
            "/api/v1/keys",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
            HTTP_ACCEPT="application/json",
            REMOTE_ADDR=PROXY,
            HTTP_X_FORWARDED_FOR=client,
        )

    assert get(token, CLIENT).status_code == 200
    assert last_event(operation="ListKeys", interface="api").source_ip == CLIENT
    for index in range(3):
        assert get(f"kmsc_{index:012x}_not-the-secret", CLIENT).status_code == 401
    assert get(token, CLIENT).status_code == 429
    assert get(token, NEIGHBOUR).status_code == 200


def test_console_sign_in_locks_out_the_forwarded_client(behind_proxy: Any, admin: Persona) -> None:
    behind_proxy.KMS_SIGNIN_ADDRESS_FAILURE_LIMIT = 2
    console_login_for(admin)

    def sign_in(username: str, password: str, client: str) -> Any:
        return Client().post(
            reverse("login"),
            {"username": username, "password": password},
            REMOTE_ADDR=PROXY,
            HTTP_X_FORWARDED_FOR=client,
        )

    assert [sign_in(name, "Winter2024!", CLIENT).status_code for name in ("alice", "bob")] == [
        200,
        behind_proxy.AXES_HTTP_RESPONSE_CODE,
    ]
    assert sign_in("admin", PASSWORD, CLIENT).status_code == behind_proxy.AXES_HTTP_RESPONSE_CODE
    assert sign_in("admin", PASSWORD, NEIGHBOUR).status_code == 302
    assert last_event(operation="kmsconsole:ConsoleSignIn", decision="allowed").source_ip == NEIGHBOUR
