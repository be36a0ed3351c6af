"""A user's access keys in the console: the secret is shown once (sudo first), deactivate, delete."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from kmsconsole.audit.models import AuditEvent
from kmsconsole.core.rootkey import sealer
from policies.models import AccessKey
from tests.conftest import Persona
from tests.console.conftest import audit_events
from tests.console.principals_support import ACCOUNT, last_event, principals_state, text, url

pytestmark = pytest.mark.django_db

Console = Callable[..., Client]


def test_create_without_sudo_asks_for_the_password_and_creates_nothing(
    console: Console, admin: Persona, outsider: Persona
) -> None:
    before = principals_state()
    response = console(admin, sudo=False).post(
        url("access-key-create", ACCOUNT, "outsider"), HTTP_REFERER=url("user", ACCOUNT, "outsider")
    )
    assert response.status_code == 302
    assert response["Location"].startswith(url("sudo") + "?next=")
    assert principals_state() == before
    assert not AuditEvent.objects.filter(operation="iam:CreateAccessKey", interface="console").exists()


def test_the_secret_is_shown_once_and_kept_nowhere(
    console: Console, admin: Persona, outsider: Persona
) -> None:
    client = console(admin)
    response = client.post(url("access-key-create", ACCOUNT, "outsider"))
    assert response.status_code == 200
    created = response.context["created"]
    key = AccessKey.objects.get(access_key_id=created.access_key_id)
    secret = sealer().open(bytes(key.secret_sealed), bound_to=key.sealing_identity).decode()
    assert created.secret_access_key == secret and key.user.name == "outsider"
    page = text(response)
    assert page.count(secret) == 1
    assert "This is the only time the secret access key is shown." in page
    assert 'data-copy="#secret-access-key"' in page
    assert "no-store" in response["Cache-Control"]
    # Not in the audit trail, the session, a flash message, or any page after this one.
    event = audit_events("iam:CreateAccessKey")[-1]
    assert (event.caller_arn, event.decision) == (admin.arn, "allowed")
    assert event.response_elements == {
        "AccessKeyId": key.access_key_id,
        "UserName": "outsider",
        "Status": "Active",
    }
    for row in AuditEvent.objects.values():
        assert secret not in str(row)
    for session in Session.objects.all():
        assert secret not in str(session.get_decoded()) and secret not in session.session_data
    later = text(client.get(url("user", ACCOUNT, "outsider")))
    assert key.access_key_id in later and secret not in later


def test_a_third_key_is_refused_inline(console: Console, admin: Persona, outsider: Persona) -> None:
    client = console(admin)
    assert client.post(url("access-key-create", ACCOUNT, "outsider")).status_code == 200
    before = principals_state()
    response = client.post(url("access-key-create", ACCOUNT, "outsider"))
    assert response.status_code == 400
    assert 'class="message error" role="alert">Cannot exceed quota for AccessKeysPerUser: 2' in text(response)
    assert principals_state() == before


def test_outsider_cannot_create_keys(console: Console, outsider: Persona, admin: Persona) -> None:
    before = principals_state()
    response = console(outsider).post(url("access-key-create", ACCOUNT, "admin"))
    assert response.status_code == 403 and "Refused." in text(response)
    assert principals_state() == before
    assert audit_events("iam:CreateAccessKey", caller_arn=outsider.arn, decision="denied")


def test_admin_deactivates_and_activates_a_key(console: Console, admin: Persona, outsider: Persona) -> None:
    client = console(admin)
    target = url("access-key-status", ACCOUNT, "outsider", outsider.access_key_id)
    response = client.post(target, {"status": "Inactive"})
    assert response.status_code == 302 and response["Location"] == url("user", ACCOUNT, "outsider")
    assert AccessKey.objects.get(access_key_id=outsider.access_key_id).status == "Inactive"
    assert f"Access key {outsider.access_key_id} is now inactive." in text(client.get(response["Location"]))
    client.post(target, {"status": "Active"})
    assert AccessKey.objects.get(access_key_id=outsider.access_key_id).status == "Active"
    assert [e.decision for e in audit_events("iam:UpdateAccessKey")] == ["allowed", "allowed"]


@pytest.mark.parametrize(
    ("status", "key", "words"),
    [
        ("Sleeping", None, "Status must be Active or Inactive."),
        ("Inactive", "AKIANOSUCHKEY", "cannot be found"),
    ],
)
def test_bad_status_changes_are_400_inline(
    status: str, key: str | None, words: str, console: Console, admin: Persona, outsider: Persona
) -> None:
    before = principals_state()
    target = url("access-key-status", ACCOUNT, "outsider", key or outsider.access_key_id)
    response = console(admin).post(target, {"status": status})
    assert response.status_code == 400 and words in text(response)
    assert principals_state() == before


def test_a_key_of_another_user_is_not_reachable_through_this_user(
    console: Console, admin: Persona, outsider: Persona
) -> None:
    before = principals_state()
    response = console(admin).post(
        url("access-key-status", ACCOUNT, "admin", outsider.access_key_id), {"status": "Inactive"}
    )
    assert response.status_code == 400 and principals_state() == before


def test_outsider_cannot_change_or_delete_keys(console: Console, outsider: Persona, admin: Persona) -> None:
    before = principals_state()
    client = console(outsider)
    responses = [
        client.post(url("access-key-status", ACCOUNT, "admin", admin.access_key_id), {"status": "Inactive"}),
        client.get(url("access-key-delete", ACCOUNT, "admin", admin.access_key_id)),
        client.post(url("access-key-delete", ACCOUNT, "admin", admin.access_key_id)),
    ]
    assert [response.status_code for response in responses] == [403] * 3
    assert all("Refused." in text(response) for response in responses)
    assert principals_state() == before
    assert last_event("iam:DeleteAccessKey").decision == "denied"


def test_admin_deletes_a_key_after_confirming(console: Console, admin: Persona, outsider: Persona) -> None:
    client = console(admin)
    target = url("access-key-delete", ACCOUNT, "outsider", outsider.access_key_id)
    confirm = client.get(target)
    assert confirm.status_code == 200 and f"Delete access key {outsider.access_key_id}?" in text(confirm)
    assert AccessKey.objects.filter(access_key_id=outsider.access_key_id).exists()
    response = client.post(target)
    assert response.status_code == 302 and response["Location"] == url("user", ACCOUNT, "outsider")
    assert not AccessKey.objects.filter(access_key_id=outsider.access_key_id).exists()
    assert audit_events("iam:DeleteAccessKey", caller_arn=admin.arn, decision="allowed")
    assert "This user has no access keys" in text(client.get(response["Location"]))


def test_confirming_an_unknown_key_is_404(console: Console, admin: Persona) -> None:
    response = console(admin).get(url("access-key-delete", ACCOUNT, "admin", "AKIANOSUCHKEY"))
    assert response.status_code == 404 and "User admin has no access key AKIANOSUCHKEY." in text(response)
