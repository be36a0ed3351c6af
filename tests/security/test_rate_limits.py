"""Rate limits (threat model §9, gap 7): failed authentication per address on the AWS endpoint and the REST API,
per-account quotas for cryptographic operations, and password spraying at the console sign-in.

Throttled requests are audited (denied, with the rule in the reason) once per address or account and interval,
never one event per refused request; normal traffic is never throttled.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from django.conf import settings
from django.test import Client
from django.urls import reverse

from kmsconsole.audit.models import AuditEvent
from kmsconsole.core import ratelimit
from policies.models import Account
from tests.api.conftest import token_for
from tests.conftest import Persona
from tests.console.conftest import PASSWORD, console_login_for

pytestmark = pytest.mark.django_db

SPRAYER, NEIGHBOUR = "203.0.113.7", "198.51.100.9"


@pytest.fixture
def limits(settings: Any) -> Any:
    """Small limits, one worker (so the per-process share is the whole limit)."""
    settings.KMS_WEB_WORKERS = 1
    settings.KMS_AUTH_FAILURE_LIMIT = 4
    settings.KMS_AUTH_FAILURE_WINDOW_SECONDS = 60
    settings.KMS_THROTTLE_AUDIT_SECONDS = 60
    settings.KMS_CRYPTO_QUOTAS = {**settings.KMS_CRYPTO_QUOTAS, "symmetric": 3}
    ratelimit.reset()
    return settings


def send(
    persona: Persona | None,
    target: str,
    document: dict[str, Any] | None = None,
    *,
    address: str = SPRAYER,
    secret: str | None = None,
    session_token: str | None = None,
    **extra: str,
) -> Any:
    """A KMS request from `address`, signed by the persona (with `secret` instead of its own, if given, and with
    `session_token`, if given), with `extra` WSGI environ entries (unsigned headers such as X-Forwarded-For)."""
    body = json.dumps(document or {}).encode()
    request = AWSRequest(
        method="POST",
        url="http://testserver/",
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"TrentService.{target}"},
    )
    if persona is not None:
        credentials = Credentials(persona.access_key_id, secret or persona.secret_access_key, session_token)
        SigV4Auth(credentials, "kms", settings.KMS_REGION).add_auth(request)
    meta = {"HTTP_HOST": "testserver", "REMOTE_ADDR": address, **extra}
    for name, value in request.headers.items():
        key = name.upper().replace("-", "_")
        meta[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    return Client().generic("POST", "/", data=body, **meta)


def aws_error(response: Any) -> str:
    assert response.status_code == 400, response.content
    document = json.loads(response.content)
    assert response["x-amzn-ErrorType"] == document["__type"] and document["message"]
    return str(document["__type"])


def events(**filters: Any) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(**filters).order_by("seq"))


def test_a_client_spraying_bad_signatures_is_throttled_and_audited_once(limits: Any, admin: Persona) -> None:
    for _ in range(4):
        assert aws_error(send(admin, "ListKeys", secret="x" * 40)) == "InvalidSignatureException"
    # Every refusal counts toward the block; a real key's refusals reach its account's trail through the ledger:
    # the first of the interval only.
    assert len(events(source_ip=SPRAYER, error_code="InvalidSignatureException")) == 1
    # Past the limit: refused before authentication, even correctly signed, in AWS's words.
    for _ in range(20):
        assert aws_error(send(admin, "ListKeys")) == "ThrottlingException"
    [throttled] = events(source_ip=SPRAYER, error_code="ThrottlingException")
    assert throttled.decision == "denied" and throttled.interface == "kms"
    assert "failed authentications from 203.0.113.7" in throttled.reason
    assert throttled.caller_arn == "anonymous" and throttled.operation == "ListKeys"
    # Nobody else is affected.
    assert send(admin, "ListKeys", address=NEIGHBOUR).status_code == 200


def test_unsigned_and_unknown_credentials_count_too_but_authenticated_failures_do_not(
    limits: Any, admin: Persona, outsider: Persona
) -> None:
    for _ in range(10):  # authenticated, then refused by policy: not an authentication failure
        assert send(outsider, "ListKeys").status_code == 400
    assert send(admin, "ListKeys").status_code == 200
    send(None, "ListKeys")
    unknown = Persona("ghost", "arn:aws:iam::111122223333:user/ghost", "AKIA" + "G" * 16, "s" * 40)
    for _ in range(3):
        assert aws_error(send(unknown, "ListKeys")) == "UnrecognizedClientException"
    assert aws_error(send(admin, "ListKeys")) == "ThrottlingException"


def test_the_block_ends_after_the_window(limits: Any, admin: Persona) -> None:
    limits.KMS_AUTH_FAILURE_WINDOW_SECONDS = 3
    ratelimit.reset()
    for _ in range(4):
        send(None, "ListKeys")
    assert aws_error(send(admin, "ListKeys")) == "ThrottlingException"
    time.sleep(3.2)
    assert send(admin, "ListKeys").status_code == 200


def test_an_ipv6_client_is_limited_by_its_slash_64() -> None:
    assert ratelimit.address_key("2001:db8:1:2:aaaa::1") == ratelimit.address_key("2001:db8:1:2:ffff::9")
    assert ratelimit.address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert ratelimit.address_key("2001:db8:1:3::1") != ratelimit.address_key("2001:db8:1:2::1")
    assert ratelimit.address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert ratelimit.address_key("192.0.2.1") == "192.0.2.1"


def test_each_worker_takes_its_share_of_a_limit(settings: Any) -> None:
    settings.KMS_WEB_WORKERS = 4
    assert ratelimit.per_worker(100) == 25 and ratelimit.per_worker(10) == 3 and ratelimit.per_worker(1) == 1


def test_the_ledger_records_one_refusal_per_interval_and_counts_the_rest(settings: Any) -> None:
    settings.KMS_THROTTLE_AUDIT_SECONDS = 10
    ledger = ratelimit.ThrottleLedger()
    assert ledger.admit("a", now=100.0) == 0
    assert [ledger.admit("a", now=100.0 + i) for i in range(1, 6)] == [None] * 5
    assert ledger.admit("b", now=101.0) == 0  # another subject has its own interval
    assert ledger.admit("a", now=110.0) == 5
    assert ledger.admit("a", now=111.0) is None


def test_quota_counters_count_per_family_and_account_within_each_second() -> None:
    counters = ratelimit.QuotaCounters()
    assert [counters.spend("symmetric", "111", 2, now=10.0) for _ in range(3)] == [True, True, False]
    assert counters.spend("symmetric", "222", 2, now=10.5)  # another account: its own count
    assert counters.spend("asymmetric", "111", 2, now=10.9)  # another family: its own count
    assert not counters.spend("symmetric", "111", 2, now=10.99)  # refusals are not counted, nor let through
    assert [counters.spend("symmetric", "111", 2, now=11.0) for _ in range(3)] == [True, True, False]


def test_the_crypto_quota_throttles_per_account(
    limits: Any, admin: Persona, partner: Callable[..., Persona]
) -> None:
    key_id = json.loads(send(admin, "CreateKey").content)["KeyMetadata"]["KeyId"]
    encrypt = {"KeyId": key_id, "Plaintext": "aGVsbG8="}
    started = time.monotonic()
    answers = [send(admin, "Encrypt", encrypt) for _ in range(20)]
    elapsed = time.monotonic() - started
    allowed = [response for response in answers if response.status_code == 200]
    # One-second windows: at most 3 in each second begun (the first and last seconds partly).
    assert 3 <= len(allowed) <= 3 * (int(elapsed) + 2)
    throttled = [response for response in answers if response.status_code != 200]
    assert throttled and {aws_error(response) for response in throttled} == {"ThrottlingException"}
    [event] = events(error_code="ThrottlingException")
    assert event.decision == "denied" and event.caller_arn == admin.arn
    assert "exceeded its symmetric cryptographic request quota of 3 requests per second" in event.reason
    # Management operations have no quota here, and another account has its own.
    assert send(admin, "DescribeKey", {"KeyId": key_id}).status_code == 200
    other = partner(
        "other", '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}'
    )
    assert send(other, "GenerateRandom", {"NumberOfBytes": 8}).status_code == 200
    # The next second brings a new allowance.
    time.sleep(2.1)
    assert send(admin, "Encrypt", encrypt).status_code == 200


def test_botocore_retries_a_throttled_request(
    limits: Any, admin: Persona, kms_client: Callable[..., Any]
) -> None:
    """ThrottlingException is in botocore's list of throttling errors: an SDK backs off and retries it."""
    limits.KMS_CRYPTO_QUOTAS = {**limits.KMS_CRYPTO_QUOTAS, "symmetric": 1}
    ratelimit.reset()
    client = kms_client(admin, retries={"mode": "standard", "max_attempts": 10})
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    # Two requests inside one second: the second is throttled, then retried by botocore. On a loaded machine the
    # two may be more than a second apart (then neither is throttled), so the pair is tried a few times.
    retried = []
    for _ in range(5):
        client.encrypt(KeyId=key_id, Plaintext=b"first")
        second = client.encrypt(KeyId=key_id, Plaintext=b"second")
        retried.append(second["ResponseMetadata"]["RetryAttempts"])
        if retried[-1]:
            break
    assert retried[-1] >= 1, retried
    assert AuditEvent.objects.filter(error_code="ThrottlingException", operation="Encrypt").exists()
    no_retries = kms_client(admin)  # one attempt
    with pytest.raises(ClientError) as raised:
        for _ in range(5):
            no_retries.encrypt(KeyId=key_id, Plaintext=b"burst")
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_normal_traffic_is_not_throttled(admin: Persona) -> None:
    """The default limits, with the test traffic of a busy client: nothing is refused."""
    key_id = json.loads(send(admin, "CreateKey").content)["KeyMetadata"]["KeyId"]
    for _ in range(300):
        assert send(admin, "Encrypt", {"KeyId": key_id, "Plaintext": "aGVsbG8="}).status_code == 200
    for _ in range(20):  # a misconfigured client's few failures stay under the address limit
        send(admin, "ListKeys", secret="y" * 40)
    assert send(admin, "ListKeys").status_code == 200
    assert not AuditEvent.objects.filter(error_code="ThrottlingException").exists()


def test_rate_limits_can_be_turned_off(limits: Any, admin: Persona) -> None:
    limits.KMS_RATE_LIMITS = False
    for _ in range(10):
        send(None, "ListKeys")
    assert send(admin, "ListKeys").status_code == 200


# The REST API.


@pytest.fixture
def api_token(account: Account, admin: Persona) -> str:
    return token_for(account, admin.name)


def api_get(token: str, address: str = SPRAYER) -> Any:
    return Client().get(
        "/api/v1/keys",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        REMOTE_ADDR=address,
        HTTP_ACCEPT="application/json",
    )


def test_a_client_spraying_bad_api_tokens_gets_429_with_retry_after(limits: Any, api_token: str) -> None:
    for index in range(4):
        assert api_get(f"kmsc_{index:012x}_not-the-secret").status_code == 401
    for _ in range(10):
        response = api_get(api_token)  # even the right token, from that address
        assert response.status_code == 429
        assert 1 <= int(response["Retry-After"]) <= 60
        assert response.json()["error"]["code"] == "ThrottlingException"
    [event] = events(interface="api", error_code="ThrottlingException")
    assert event.decision == "denied" and event.request_parameters == {
        "Method": "GET",
        "Path": "/api/v1/keys",
    }
    assert api_get(api_token, address=NEIGHBOUR).status_code == 200


# The console sign-in.


def sign_in(username: str, password: str, address: str) -> Any:
    return Client().post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def test_password_spraying_locks_the_address_across_user_names(
    settings: Any, admin: Persona, outsider: Persona
) -> None:
    settings.KMS_SIGNIN_ADDRESS_FAILURE_LIMIT = 3
    console_login_for(admin)
    # One wrong password per user name: far under the per-name limit of 5, but the third reaches the address's.
    assert [sign_in(name, "Winter2024!", SPRAYER).status_code for name in ("alice", "bob", "carol")] == [
        200,
        200,
        settings.AXES_HTTP_RESPONSE_CODE,
    ]
    locked = sign_in("admin", PASSWORD, SPRAYER)  # the right password, but this address is locked out
    assert locked.status_code == settings.AXES_HTTP_RESPONSE_CODE
    assert "_auth_user_id" not in locked.client.session
    assert sign_in("admin", PASSWORD, NEIGHBOUR).status_code == 302
    # The admin's lockout is recorded too: the lockout ledger keys by address and the account the name belongs
    # to, so one account's lockouts never hide another's (carol's is an unknown name's).
    refused = events(operation="kmsconsole:ConsoleSignIn", source_ip=SPRAYER)
    assert [(e.request_parameters["UserName"], e.caller_account) for e in refused] == [
        ("alice", ""),
        ("bob", ""),
        ("carol", ""),
        ("admin", settings.KMS_ACCOUNT_ID),
    ]
    assert [(e.error_code, e.decision) for e in refused] == [("AccessDeniedException", "denied")] * 2 + [
        ("ThrottlingException", "denied")
    ] * 2
    for _ in range(5):
        sign_in("admin", PASSWORD, SPRAYER)
    # Lockouts: once per interval and ledger entry.
    assert len(events(operation="kmsconsole:ConsoleSignIn", source_ip=SPRAYER)) == 4
