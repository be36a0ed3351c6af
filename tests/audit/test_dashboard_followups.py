"""The dashboard's follow-ups from the audit of 2026-11-30: links that keep a range containing the event, a grant
followed by its id, destroyed keys no longer warned about as pending deletion, the operation filter's spellings,
and what the events table and charts show."""

from __future__ import annotations

import html
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from keys.models import DeletedKey
from kmsconsole.audit.charts import refusal_reasons
from kmsconsole.audit.marks import PENDING_DELETION_USE
from kmsconsole.audit.models import AuditEvent
from tests.audit.dashboard_support import ACCOUNT, ALICE, KEY_1, KEY_2, add
from tests.conftest import ALLOW_RANDOM, Persona

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


def test_the_events_table_shows_a_grant_by_the_start_of_its_id(
    console: Callable[..., Client], admin: Persona
) -> None:
    add(operation="Decrypt", decided_by=f"grant {GRANT}", reason=f"allowed by grant {GRANT}")
    body = _text(console(admin).get(TRAIL))
    assert f">grant {GRANT[:12]}…</a>" in body
    assert f'title="Only events decided by grant {GRANT}"' in body


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
