"""Each dashboard filter narrows the trail to exactly the events it names, and keyset pages return every event
once, in order, even where events share a timestamp."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from keys.models import Key
from keys.services.aliases import alias_create
from keys.services.lifecycle import key_create
from kmsconsole.audit.models import AuditEvent
from tests.audit.dashboard_support import (
    ACCOUNT,
    ALICE,
    ALLOW_STATEMENT,
    BOB,
    KEY_2,
    OTHER_ACCOUNT,
    PARTNER_KEY,
    add,
    append,
    event_values,
)
from tests.conftest import Persona, as_operator

pytestmark = pytest.mark.django_db

TRAIL = "/console/audit/"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/app"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/app/session-1"
OTHER_SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/application/session-1"  # not a session of "app"


@pytest.fixture
def orders_key(admin: Persona) -> Key:
    key = as_operator("CreateKey", lambda ctx: key_create(ctx=ctx, description="orders"))
    as_operator(
        "CreateAlias",
        lambda ctx: alias_create(ctx=ctx, alias_name="alias/orders", target_key_id=str(key.key_id)),
    )
    return key


@pytest.fixture
def trail(orders_key: Key) -> dict[str, Any]:
    """Named events ten days ago, one event now (outside the window) and one of another account."""
    start = timezone.now() - timedelta(days=10)
    key_1 = orders_key.arn
    spec = {
        "e1": dict(caller_arn=ALICE, key_arn=key_1, request_id="req-aaaa-1",
                   request_parameters={"KeyId": key_1, "EncryptionContext": {"tenant": "42", "purpose": "orders"}}),
        "e2": dict(operation="Decrypt", caller_arn=BOB, key_arn=key_1, decision="denied", reason="denied: no",
                   decided_by="", error_code="AccessDeniedException", source_ip="10.0.0.2",
                   request_parameters={"EncryptionContext": {"tenant": "7"}}),
        "e3": dict(caller_arn=SESSION, key_arn=KEY_2, decided_by="grant abc123", source_ip="10.0.0.3"),
        "e4": dict(operation="Decrypt", caller_arn=ALICE, key_arn=PARTNER_KEY,
                   decided_by="statement 'Cross' in the key policy",
                   request_parameters={"EncryptionContext": {"tenant": "42"}}),
        "e5": dict(operation="GenerateDataKey", caller_arn=ALICE, key_arn=KEY_2, decision="failed",
                   error_code="KMSInvalidStateException", notable="use of a key pending deletion"),
        "e6": dict(operation="CreateKey", caller_arn="kmsconsole:operator/tests", key_arn="", decided_by="operator"),
        "e7": dict(operation="ListKeys", caller_arn=ROLE, key_arn="", decided_by=ALLOW_STATEMENT),
        "e8": dict(operation="ReEncrypt", caller_arn=ALICE, key_arn=key_1,
                   request_parameters={"SourceEncryptionContext": {"tenant": "99"},
                                       "DestinationEncryptionContext": {"tenant": "42"}}),
        "e9": dict(caller_arn=OTHER_SESSION, key_arn=KEY_2),
    }  # fmt: skip
    events = [
        event_values(time=start + timedelta(minutes=i), **fields) for i, fields in enumerate(spec.values())
    ]
    last = append(events)
    seqs = dict(zip(spec, range(last - len(spec) + 1, last + 1), strict=True))
    now_event = add(caller_arn=ALICE, key_arn=key_1)
    add(caller_account=OTHER_ACCOUNT, caller_arn=f"arn:aws:iam::{OTHER_ACCOUNT}:user/zed", key_arn=key_1)
    window = {
        "since": (start - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M"),
        "until": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
    }
    return {"seqs": seqs, "window": window, "key": orders_key, "now_event": now_event}


def shown(client: Client, params: dict[str, str]) -> list[int]:
    response = client.get(TRAIL, params)
    assert response.status_code == 200, response.content.decode()[:2000]
    return [row.event.seq for row in response.context["rows"]]


def names(trail: dict[str, Any], *wanted: str) -> list[int]:
    """The seqs of named events, newest first (as the page lists them)."""
    return sorted((trail["seqs"][name] for name in wanted), reverse=True)


def every_one(trail: dict[str, Any]) -> list[str]:
    return list(trail["seqs"])


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8", "e9"]),
        ({"key": "{key_arn}"}, ["e1", "e2", "e8"]),
        ({"key": "{key_id}"}, ["e1", "e2", "e8"]),
        ({"key": "alias/orders"}, ["e1", "e2", "e8"]),
        ({"key": f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/orders"}, ["e1", "e2", "e8"]),
        ({"principal": ALICE}, ["e1", "e4", "e5", "e8"]),
        ({"principal": ROLE}, ["e3", "e7"]),  # a role includes its sessions, not those of "application"
        ({"principal": SESSION}, ["e3"]),
        ({"account": OTHER_ACCOUNT}, ["e4"]),
        ({"operation": "Decrypt"}, ["e2", "e4"]),
        ({"decision": "denied"}, ["e2"]),
        ({"decision": "failed"}, ["e5"]),
        ({"error_code": "KMSInvalidStateException"}, ["e5"]),
        ({"decided_by": "grant abc123"}, ["e3"]),
        ({"decided_by": ALLOW_STATEMENT}, ["e1", "e5", "e7", "e8", "e9"]),
        ({"context_key": "tenant"}, ["e1", "e2", "e4", "e8"]),
        ({"context_key": "tenant", "context_value": "42"}, ["e1", "e4", "e8"]),
        ({"context_key": "tenant", "context_value": "99"}, ["e8"]),  # ReEncrypt's source context
        ({"context_key": "purpose", "context_value": "orders"}, ["e1"]),
        ({"context_key": "tenant", "context_value": "4"}, []),  # values match whole, not by prefix
        ({"source_ip": "10.0.0.2"}, ["e2"]),
        ({"request_id": "req-aaaa"}, ["e1"]),
        ({"request_id": "req-aaaa-1"}, ["e1"]),
        ({"notable": "use of a key pending deletion"}, ["e5"]),
        ({"principal": ALICE, "context_key": "tenant", "context_value": "42"}, ["e1", "e4", "e8"]),
        ({"principal": ALICE, "decision": "allowed", "operation": "Decrypt"}, ["e4"]),
    ],
)
def test_each_filter_narrows_to_exactly_its_events(
    console: Callable[..., Client],
    admin: Persona,
    trail: dict[str, Any],
    params: dict[str, str],
    expected: list[str],
) -> None:
    key: Key = trail["key"]
    params = {k: v.format(key_arn=key.arn, key_id=key.key_id) for k, v in params.items()}
    assert shown(console(admin), {**trail["window"], **params}) == names(trail, *expected)


def test_a_multi_region_key_id_or_arn_is_a_key_filter(console: Callable[..., Client], admin: Persona) -> None:
    """`mrk-` and 32 lowercase hex digits is a key id (keys.selectors.MULTI_REGION_KEY_ID), as an id or in a key
    ARN: the filter takes it, and, naming no key here (no event records one), it matches no event, as an unknown
    key's ARN does. A malformed one is still refused."""
    mrk_id = "mrk-1234abcd12ab34cd56ef1234567890ab"
    mrk_arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{mrk_id}"
    since = {"since": (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")}
    other = add(caller_arn=ALICE, key_arn=KEY_2)
    assert other.seq in shown(console(admin), since)
    for value in (mrk_id, mrk_arn):
        assert shown(console(admin), {**since, "key": value}) == [], value
    for malformed in ("mrk-fake-key-id", mrk_id.upper(), f"{mrk_arn}0"):
        assert console(admin).get(TRAIL, {**since, "key": malformed}).status_code == 400, malformed


def test_a_user_or_role_name_is_looked_up(
    console: Callable[..., Client], admin: Persona, trail: dict[str, Any], make_user: Any, role_session: Any
) -> None:
    make_user("alice")
    role_session("app")
    client = console(admin)
    assert shown(client, {**trail["window"], "principal": "alice"}) == names(trail, "e1", "e4", "e5", "e8")
    assert shown(client, {**trail["window"], "principal": "app"}) == names(trail, "e3", "e7")


def test_the_time_range_decides_what_is_in(
    console: Callable[..., Client], admin: Persona, trail: dict[str, Any]
) -> None:
    client = console(admin)
    recent = shown(client, {"range": "1h", "principal": ALICE})
    assert recent == [trail["now_event"].seq]
    everything = shown(client, {"range": "all", "principal": ALICE})
    assert everything == [trail["now_event"].seq, *names(trail, "e1", "e4", "e5", "e8")]
    # Another account's events never show, whatever the filters.
    assert all(
        e.caller_account == ACCOUNT
        for e in AuditEvent.objects.filter(seq__in=shown(client, {"range": "all"}))
    )


def test_keyset_pages_return_each_event_once_in_order(console: Callable[..., Client], admin: Persona) -> None:
    moment = timezone.now() - timedelta(days=2)
    # 130 events, in runs of five that share one timestamp: the cursor must break the ties by seq.
    append(event_values(time=moment + timedelta(seconds=i // 5), caller_arn=BOB) for i in range(130))
    client = console(admin)
    params = {"range": "7d", "principal": BOB}
    seen: list[tuple[Any, int]] = []
    response = client.get(TRAIL, params)
    pages = 0
    while True:
        pages += 1
        rows = [row.event for row in response.context["rows"]]
        seen.extend((event.time, event.seq) for event in rows)
        older = response.context["older_url"]
        if not older:
            break
        response = client.get(older)
        assert response.status_code == 200
        # Pages after the first do not aggregate the whole range again: the charts stay on the first page.
        assert response.context["charts"] is None and "are on the <a" in response.content.decode()
    assert pages == 3 and len(seen) == 130 and len(set(seen)) == 130
    assert seen == sorted(seen, reverse=True), "newest first, by time then seq"
    # And back: the newer link of the last page gives the page before it, exactly.
    newer = response.context["newer_url"]
    back = [row.event.seq for row in client.get(newer).context["rows"]]
    assert back == [seq for _, seq in seen[50:100]]
    assert response.context["newest_url"]


def test_links_keep_the_filters(
    console: Callable[..., Client], admin: Persona, trail: dict[str, Any]
) -> None:
    response = console(admin).get(TRAIL, {**trail["window"], "decision": "allowed"})
    context = response.context
    assert "decision=allowed" in context["export_csv"] and "since=" in context["export_csv"]
    row = context["rows"][0]
    assert "decision=allowed" in row.links.key_filter or not row.event.key_arn
    assert "decision=allowed" in row.links.principal_filter
