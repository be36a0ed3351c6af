"""The dashboard's follow-ups from the audit of 2026-11-30: links that keep a range containing the event, a grant
followed by its id, destroyed keys no longer warned about as pending deletion, the operation filter's spellings,
and what the events table and charts show."""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from keys.models import DeletedKey
from kmsconsole.audit.charts import refusal_reasons
from kmsconsole.audit.marks import PENDING_DELETION_USE
from kmsconsole.audit.models import AuditEvent
from tests.audit.dashboard_support import ACCOUNT, ALICE, KEY_1, KEY_2, OTHER_ACCOUNT, add
from tests.conftest import ALLOW_ALL, ALLOW_RANDOM, Persona

pytestmark = pytest.mark.django_db

TRAIL = "/console/audit/"
GRANT = "5e" * 32


def _text(response: object) -> str:
    return html.unescape(response.content.decode())  # type: ignore[attr-defined]


def _event_page(client: Client, event: AuditEvent) -> str:
    response = client.get(f"/console/audit/events/{event.event_id}/")
    assert response.status_code == 200
    return _text(response)


def test_an_old_events_links_search_all_time(console: Callable[..., Client], admin: Persona) -> None:
    old = add(time=timezone.now() - timedelta(days=40), caller_arn=ALICE)
    client = console(admin)
    body = _event_page(client, old)
    for target in (f"principal={ALICE}", f"key={KEY_1}", "decided_by="):
        start = body.index(target.split("=")[0] + "=")
        href = body[body.rindex('href="', 0, start) + 6 : body.index('"', start)]
        assert "range=all" in href, href
        listed = _text(client.get(href))
        assert str(old.event_id) in listed, target


def test_the_overviews_link_to_other_accounts_refusals_searches_all_time(
    console: Callable[..., Client], admin: Persona
) -> None:
    add(caller_arn="arn:aws:iam::444455556666:user/zed", caller_account="444455556666", decision="denied")
    body = _text(console(admin).get("/"))
    assert "?scope=key-owner&decision=denied&range=all" in body


def _grant_history() -> dict[str, AuditEvent]:
    return {
        "created": add(
            operation="CreateGrant",
            request_parameters={"KeyId": KEY_1, "GranteePrincipal": ALICE},
            response_elements={"GrantId": GRANT},
        ),
        "used": add(operation="Decrypt", decided_by=f"grant {GRANT}", reason=f"allowed by grant {GRANT}"),
        "revoked": add(operation="RevokeGrant", request_parameters={"KeyId": KEY_1, "GrantId": GRANT}),
        "other grant": add(
            operation="RevokeGrant", request_parameters={"KeyId": KEY_1, "GrantId": "7f" * 32}
        ),
        "unrelated": add(operation="Encrypt"),
        # A list filtered by the grant's id: what its caller typed, not an event of the grant's life.
        "listed": add(operation="ListGrants", request_parameters={"KeyId": KEY_1, "GrantId": GRANT}),
    }


def test_a_grant_is_followed_by_its_id(console: Callable[..., Client], admin: Persona) -> None:
    events = _grant_history()
    client = console(admin)
    body = _text(client.get(TRAIL, {"grant": GRANT, "range": "all"}))
    found = {name for name, event in events.items() if str(event.event_id) in body}
    assert found == {"created", "used", "revoked"}
    refused = client.get(TRAIL, {"grant": "not-a-grant"})
    assert refused.status_code == 400
    assert "A grant id is 64 hexadecimal characters" in _text(refused)


def test_an_event_of_a_grant_that_is_gone_links_its_history_not_the_keys_grants(
    console: Callable[..., Client], admin: Persona
) -> None:
    used = _grant_history()["used"]
    body = _event_page(console(admin), used)
    assert "the key's grants" not in body
    assert "its history in the audit trail" in body and "no longer a grant of the key" in body
    assert f"grant={GRANT}" in body


@pytest.mark.parametrize("typed", ["decrypt", "kms:Decrypt", "KMS:DECRYPT", "Decrypt"])
def test_the_operation_filter_takes_any_case_and_the_service_prefix(
    console: Callable[..., Client], admin: Persona, typed: str
) -> None:
    decrypt, encrypt = add(operation="Decrypt"), add(operation="Encrypt")
    body = _text(console(admin).get(TRAIL, {"operation": typed}))
    assert str(decrypt.event_id) in body and str(encrypt.event_id) not in body


def test_an_operation_that_is_none_says_which_was_meant(
    console: Callable[..., Client], admin: Persona
) -> None:
    add(operation="Decrypt")
    body = _text(console(admin).get(TRAIL, {"operation": "decrpyt"}))
    assert "There is no operation named decrpyt; did you mean Decrypt?" in body


@pytest.mark.parametrize(
    ("typed", "recorded"),
    [
        ("consolesignin", "kmsconsole:ConsoleSignIn"),
        ("kmsconsole:ConsoleSignOut", "kmsconsole:ConsoleSignOut"),
        ("KMSCONSOLE:CONFIRMPASSWORD", "kmsconsole:ConfirmPassword"),
        ("authenticate", "kmsconsole:Authenticate"),
    ],
)
def test_the_operation_filter_knows_the_authentication_events(
    console: Callable[..., Client], admin: Persona, typed: str, recorded: str
) -> None:
    """Recorded outside any operation (kmsconsole.audit.authevents), they are found by any spelling, with no
    "there is no operation" note."""
    event, other = add(operation=recorded, key_arn=""), add(operation="Decrypt")
    body = _text(console(admin).get(TRAIL, {"operation": typed}))
    assert str(event.event_id) in body and str(other.event_id) not in body
    assert "There is no operation named" not in body


def _destroyed_key_1() -> AuditEvent:
    now = timezone.now()
    DeletedKey.objects.create(
        key_id=uuid.UUID(KEY_1.rsplit("/", 1)[-1]),
        arn=KEY_1,
        account_id=ACCOUNT,
        key_spec="SYMMETRIC_DEFAULT",
        created_at=now - timedelta(days=30),
        deletion_date=now - timedelta(minutes=5),
        deleted_at=now - timedelta(minutes=5),
        material_versions_destroyed=1,
    )
    return add(
        operation="DeleteKey",
        interface="worker",
        caller_arn=f"kmsconsole:operator/{ACCOUNT}/deletion-sweep",
        request_parameters={"KeyId": KEY_1},
        time=now - timedelta(minutes=5),
    )


def _pending_use(key_arn: str) -> AuditEvent:
    return add(
        key_arn=key_arn,
        decision="failed",
        error_code="KMSInvalidStateException",
        notable=PENDING_DELETION_USE,
        time=timezone.now() - timedelta(minutes=10),
    )


def test_a_destroyed_key_is_no_longer_warned_about_as_pending_deletion(
    console: Callable[..., Client], admin: Persona
) -> None:
    _pending_use(KEY_1)
    client = console(admin)
    assert "Cancel the deletion if it is needed" in _text(client.get("/"))
    deleting = _destroyed_key_1()
    overview = _text(client.get("/"))
    assert "Cancel the deletion if it is needed" not in overview
    assert "These keys have been destroyed since" in overview
    assert f"/console/audit/events/{deleting.event_id}/" in overview
    panel = _text(client.get(TRAIL))
    assert "The keys these requests used have been destroyed since" in panel
    assert "the key was destroyed" in panel and f"/console/audit/events/{deleting.event_id}/" in panel
    # A key still pending deletion keeps the warning beside the destroyed one.
    _pending_use(KEY_2)
    assert "Cancel the deletion if it is needed" in _text(client.get("/"))


def test_a_destroyed_keys_page_says_when_and_by_which_event_to_a_trail_reader_only(
    console: Callable[..., Client], admin: Persona, make_user: Callable[..., Persona]
) -> None:
    deleting = _destroyed_key_1()
    key_page = f"/console/keys/{KEY_1.rsplit('/', 1)[-1]}/"
    response = console(admin).get(key_page)
    assert response.status_code == 404
    body = _text(response)
    assert "Key deleted" in body and f"/console/audit/events/{deleting.event_id}/" in body
    # A caller who may not read the trail is told only what it is told of a key that never existed.
    outsider = console(make_user("outsider", ALLOW_RANDOM)).get(key_page)
    never = console(make_user("other", ALLOW_RANDOM)).get(f"/console/keys/{uuid.uuid4()}/")
    assert outsider.status_code == never.status_code == 404
    assert "Key deleted" not in _text(outsider) and "Key not found" in _text(outsider)


def _allow_all_but(action: str, condition: dict[str, Any] | None = None) -> str:
    """An identity policy: everything, but `action` (when `condition` holds)."""
    deny: dict[str, Any] = {"Effect": "Deny", "Action": action, "Resource": "*"}
    if condition is not None:
        deny["Condition"] = condition
    allow = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [allow, deny]})


def _page_event(persona: Persona) -> AuditEvent:
    return AuditEvent.objects.filter(operation="DescribeKey", caller_arn=persona.arn).latest("seq")


@pytest.mark.parametrize(
    "condition",
    [
        {"Bool": {"aws:SecureTransport": "false"}},  # the test client's requests are plain HTTP
        {"IpAddress": {"aws:SourceIp": "127.0.0.1/32"}},  # and come from 127.0.0.1
    ],
)
def test_a_destroyed_keys_page_asks_the_trail_as_a_request_from_there_would(
    console: Callable[..., Client],
    admin: Persona,
    make_user: Callable[..., Persona],
    condition: dict[str, Any],
) -> None:
    """Whether the caller may read the trail is decided with the page's own request (its source IP, transport and
    time), inside its DescribeKey: a Deny on the trail conditioned on them hides the deletion, as the trail
    itself is refused."""
    _destroyed_key_1()
    key_page = f"/console/keys/{KEY_1.rsplit('/', 1)[-1]}/"
    barred = make_user("barred", _allow_all_but("kmsconsole:ListAuditEvents", condition))
    client = console(barred)
    assert client.get(TRAIL).status_code == 403
    response = client.get(key_page)
    body = _text(response)
    assert response.status_code == 404 and "Key not found" in body
    assert "Key deleted" not in body and KEY_1 not in body and "/console/audit/events/" not in body
    assert _page_event(barred).response_elements is None
    # The admin is shown the deletion, and the page's DescribeKey event says so.
    assert "Key deleted" in _text(console(admin).get(key_page))
    assert _page_event(admin).response_elements == {"DeletionShown": True}


def test_a_deletekey_event_is_linked_only_where_its_page_would_open(
    console: Callable[..., Client], make_user: Callable[..., Persona]
) -> None:
    """The key page, the overview and the notable events name the destroyed key, but link its DeleteKey event
    only for a caller whose GetAuditEvent would be allowed, and only an event of the account's scopes."""
    _pending_use(KEY_1)
    deleting = _destroyed_key_1()
    link = f'href="/console/audit/events/{deleting.event_id}/"'
    key_page = f"/console/keys/{KEY_1.rsplit('/', 1)[-1]}/"
    reader = console(make_user("reader", ALLOW_ALL))
    no_event_page = console(make_user("no-event-page", _allow_all_but("kmsconsole:GetAuditEvent")))
    for client, linked in ((reader, True), (no_event_page, False)):
        key_body, overview = _text(client.get(key_page)), _text(client.get("/"))
        # The trail lists the DeleteKey event itself too: only its notable panel is looked at.
        notable = _text(client.get(TRAIL)).split('id="audit-notable-title"', 1)[1].split("</section>", 1)[0]
        assert "Key deleted" in key_body and "These keys have been destroyed since" in overview
        assert "the key was destroyed" in notable
        assert [link in key_body, link in overview, link in notable] == [linked] * 3
    # A DeleteKey event of the key that the account reads through neither scope is not linked either.
    AuditEvent.objects.filter(pk=deleting.pk).delete()
    unread = add(
        operation="DeleteKey",
        caller_arn=f"arn:aws:iam::{OTHER_ACCOUNT}:root",
        caller_account=OTHER_ACCOUNT,
        key_owner_account=OTHER_ACCOUNT,
        request_parameters={"KeyId": KEY_1},
    )
    key_body = _text(reader.get(key_page))
    assert "Key deleted" in key_body and f"/console/audit/events/{unread.event_id}/" not in key_body


def test_the_events_table_shows_a_grant_by_the_start_of_its_id(
    console: Callable[..., Client], admin: Persona
) -> None:
    add(operation="Decrypt", decided_by=f"grant {GRANT}", reason=f"allowed by grant {GRANT}")
    retiring = f"grant {GRANT} as its retiring principal"
    add(operation="RetireGrant", decided_by=retiring, reason=f"allowed by {retiring}")
    body = _text(console(admin).get(TRAIL))
    assert f">grant {GRANT[:12]}…</a>" in body
    assert f'title="Only events decided by grant {GRANT}"' in body
    # What follows the id stays: the grant decided as the right of its retiring principal.
    assert f">grant {GRANT[:12]}… as its retiring principal</a>" in body
    assert f'title="Only events decided by {retiring}"' in body


def test_refusal_bars_that_read_alike_are_told_apart_and_link_their_own_events() -> None:
    for code in ("AccessDeniedException", "AccessDeniedException", "KMSInvalidStateException"):
        add(decision="denied", error_code=code, decided_by="missing: an identity-policy allow")
    bars = refusal_reasons(AuditEvent.objects.all(), account_id=ACCOUNT)
    assert [(bar.label, bar.count) for bar in bars] == [
        ("Refused: missing: an identity-policy allow (AccessDeniedException)", 2),
        ("Refused: missing: an identity-policy allow (KMSInvalidStateException)", 1),
    ]
    assert bars[1].filters["error_code"] == "KMSInvalidStateException"


def test_the_overviews_refusals_link_each_events_why(console: Callable[..., Client], admin: Persona) -> None:
    refused = add(decision="denied", caller_arn=ALICE, error_code="AccessDeniedException")
    body = _text(console(admin).get("/"))
    assert f'<a href="/console/audit/events/{refused.event_id}/">Why</a>' in body
