"""Races over real HTTP (issue 10, "Concurrency"): 50 parallel boto3 requests against the live server that
create the same alias, the same named grant, disable a key while it is used, and revoke a grant while it is
used. The outcome is consistent and AWS-correct, and no revoked permission is honored after the revoke returns.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from grants.models import Grant
from keys.models import Alias
from tests.conftest import Persona

pytestmark = pytest.mark.django_db(transaction=True)

RACERS = 50


def outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "ok"


def race(calls: list[Callable[[], Any]]) -> Counter[str]:
    """Start every call at the same moment (a barrier), on as many threads, and count the outcomes."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> str:
        barrier.wait()
        return outcome(call)

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return Counter(pool.map(run, calls))


@pytest.fixture
def clients(kms_client: Callable[..., Any]) -> Callable[[Persona], list[Any]]:
    # One boto3 client per thread: clients are thread-safe, but separate ones give separate connections.
    return lambda persona: [kms_client(persona, max_pool_connections=2) for _ in range(RACERS)]


def test_fifty_creators_of_one_alias_one_wins(admin: Persona, clients: Callable[..., list[Any]]) -> None:
    pool = clients(admin)
    key_id = pool[0].create_key()["KeyMetadata"]["KeyId"]
    counts = race([lambda c=c: c.create_alias(AliasName="alias/raced", TargetKeyId=key_id) for c in pool])
    assert counts == Counter({"ok": 1, "AlreadyExistsException": RACERS - 1})
    assert Alias.objects.filter(name="alias/raced").count() == 1


def test_fifty_identical_named_grants_are_one_grant(
    admin: Persona, make_user: Callable[..., Persona], clients: Callable[..., list[Any]]
) -> None:
    app = make_user("app")
    pool = clients(admin)
    key_id = pool[0].create_key()["KeyMetadata"]["KeyId"]
    grant_ids: list[str] = []

    def create(client: Any) -> None:
        grant_ids.append(
            client.create_grant(
                KeyId=key_id, GranteePrincipal=app.arn, Operations=["Encrypt"], Name="raced-grant"
            )["GrantId"]
        )

    counts = race([lambda c=c: create(c) for c in pool])
    # AWS: CreateGrant with a Name is idempotent for identical parameters; every caller gets the same grant.
    assert counts == Counter({"ok": RACERS})
    assert len(set(grant_ids)) == 1
    assert Grant.objects.filter(key__key_id=key_id, name="raced-grant").count() == 1


def _hammer(call: Callable[[], Any], stop: threading.Event, log: list[tuple[float, str]]) -> None:
    """Call repeatedly until told to stop, logging when each call was sent and how it ended."""
    while not stop.is_set():
        sent = time.monotonic()
        log.append((sent, outcome(call)))


def _until(count: int, log: list[tuple[float, str]], *, sent_after: float = 0.0) -> None:
    """Wait until `count` calls sent after `sent_after` have ended (30 s at most: slow machines take longer than
    any fixed pause would allow)."""
    deadline = time.monotonic() + 30
    while sum(1 for sent, _ in list(log) if sent >= sent_after) < count:
        assert time.monotonic() < deadline, f"only {len(log)} calls ended"
        time.sleep(0.05)


def test_no_use_of_a_key_after_disable_key_returns(admin: Persona, clients: Callable[..., list[Any]]) -> None:
    pool = clients(admin)
    key_id = pool[0].create_key()["KeyMetadata"]["KeyId"]
    stop, log = threading.Event(), []  # type: ignore[var-annotated]
    users = [
        threading.Thread(
            target=_hammer, args=(lambda c=c: c.encrypt(KeyId=key_id, Plaintext=b"x"), stop, log)
        )
        for c in pool[1:11]
    ]
    for thread in users:
        thread.start()
    _until(20, log)
    pool[0].disable_key(KeyId=key_id)
    disabled_at = time.monotonic()
    _until(40, log, sent_after=disabled_at)
    stop.set()
    for thread in users:
        thread.join()
    before = Counter(result for sent, result in log if sent < disabled_at)
    after = Counter(result for sent, result in log if sent >= disabled_at)
    assert before["ok"] > 0, before
    assert after and set(after) == {"DisabledException"}, after


def test_no_use_of_a_grant_after_revoke_grant_returns(
    admin: Persona, make_user: Callable[..., Persona], clients: Callable[..., list[Any]], kms_client: Any
) -> None:
    # The key policy lets the account's IAM policies count; the app has none, so only the grant lets it in.
    app = make_user("grant-user")
    owner = clients(admin)[0]
    key_id = owner.create_key()["KeyMetadata"]["KeyId"]
    grant = owner.create_grant(KeyId=key_id, GranteePrincipal=app.arn, Operations=["Encrypt"])
    token = grant["GrantToken"]
    app_pool = [kms_client(app) for _ in range(10)]
    stop, log = threading.Event(), []  # type: ignore[var-annotated]
    users = [
        threading.Thread(
            target=_hammer,
            args=(lambda c=c: c.encrypt(KeyId=key_id, Plaintext=b"x", GrantTokens=[token]), stop, log),
        )
        for c in app_pool
    ]
    for thread in users:
        thread.start()
    _until(20, log)
    owner.revoke_grant(KeyId=key_id, GrantId=grant["GrantId"])
    revoked_at = time.monotonic()
    # More than the ten in flight at the revoke, so that the trail has later Encrypts to check.
    _until(40, log, sent_after=revoked_at)
    stop.set()
    for thread in users:
        thread.join()
    before = Counter(result for sent, result in log if sent < revoked_at)
    after = Counter(result for sent, result in log if sent >= revoked_at)
    assert before["ok"] > 0, before
    # A token names the grant it came with; once the grant is gone the token is refused as invalid.
    assert after and set(after) == {"InvalidGrantTokenException"}, after
    # And the trail agrees: no Encrypt recorded after the revoke (beyond the ten already in flight) was allowed.
    from kmsconsole.audit.models import AuditEvent

    revoke_seq = AuditEvent.objects.get(operation="RevokeGrant", decision="allowed").seq
    late = AuditEvent.objects.filter(operation="Encrypt", seq__gt=revoke_seq + len(app_pool))
    assert late.exists() and "allowed" not in set(late.values_list("decision", flat=True))
    assert json.dumps(list(late.values_list("request_parameters", flat=True))).count(token) == 0
