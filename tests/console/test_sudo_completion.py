"""Sudo mode completes what was asked: a sensitive action posted without a fresh password is decided by the engine
first; allowed, it waits in the session (only the fields its view names: never a CSRF token or a password) and the
right password performs exactly that request, once, for that login, within minutes; refused, it is answered at
once with the refusal's one audit event and no password is asked. The key page offers only the actions the caller
would be allowed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from keys.models import Alias, Key, KeyState, Tag
from kmsconsole.audit.models import AuditEvent
from kmsconsole.console.sudo import PENDING, PENDING_MAX_SECONDS
from policies.models import AccessKey
from tests.conftest import Persona
from tests.console import key_tab_helpers as keytabs
from tests.console.conftest import PASSWORD, audit_events
from tests.console.test_keys import key_snapshot, make_key
from tests.policies.analyzer_support import ROOT, allow, policy

pytestmark = pytest.mark.django_db

SUDO = reverse("console:sudo")


def prompt_of(response: Any) -> dict[str, str]:
    """The confirmation a refused-for-now action was sent to: its `next` and `action`."""
    location = response["Location"]
    assert location.startswith(f"{SUDO}?"), location
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def confirm(client: Client, prompt: dict[str, str]) -> Any:
    return client.post(SUDO, {"password": PASSWORD, **prompt})


def test_an_alias_typed_before_the_password_is_created_by_the_confirmation(
    console: Callable[..., Client], admin: Persona
) -> None:
    key = make_key()
    client = console(admin, sudo=False)
    tab = keytabs.url("key-aliases", key)
    asked = client.post(
        keytabs.url("key-alias-create", key),
        {"alias_name": "alias/payments2"},
        HTTP_REFERER=f"http://testserver{tab}",
    )
    prompt = prompt_of(asked)
    assert prompt["next"] == tab and prompt["action"]
    assert not Alias.objects.filter(name="alias/payments2").exists() and not audit_events("CreateAlias")
    assert client.session[PENDING]["fields"] == {"alias_name": ["alias/payments2"]}  # no CSRF token
    page = client.get(SUDO, prompt)
    assert b"CreateAlias" in page.content and b"alias/payments2" in page.content

    done = confirm(client, prompt)
    assert done.status_code == 302 and done["Location"] == tab
    assert Alias.objects.get(name="alias/payments2").key_id == key.pk
    [event] = audit_events("CreateAlias")
    assert (event.caller_arn, event.decision) == (admin.arn, "allowed")
    assert PENDING not in client.session  # used once, then forgotten
    assert b"alias/payments2 now names this key" in client.get(tab).content


def test_a_tag_typed_before_the_password_is_saved_by_the_confirmation(
    console: Callable[..., Client], admin: Persona
) -> None:
    key = make_key()
    client = console(admin, sudo=False)
    asked = client.post(keytabs.url("key-tag-put", key), {"tag_key": "owner", "tag_value": "secops"})
    assert not Tag.objects.filter(key=key).exists()
    done = confirm(client, prompt_of(asked))
    assert done["Location"] == keytabs.url("key-tags", key)
    assert list(Tag.objects.filter(key=key).values_list("tag_key", "tag_value")) == [("owner", "secops")]


def test_a_deletion_scheduled_before_the_password_keeps_its_waiting_period(
    console: Callable[..., Client], admin: Persona
) -> None:
    key = make_key()
    client = console(admin, sudo=False)
    data = {"pending_window_days": "9", "confirm_key_id": str(key.key_id)}
    asked = client.post(reverse("console:key-schedule-deletion", args=[str(key.key_id)]), data)
    assert key_snapshot(key)["state"] == KeyState.ENABLED
    confirm(client, prompt_of(asked))
    key.refresh_from_db()
    assert (key.state, key.pending_window_days) == (KeyState.PENDING_DELETION, 9)
    [event] = audit_events("ScheduleKeyDeletion")
    assert event.request_parameters["PendingWindowInDays"] == 9


@pytest.mark.parametrize("field", ["password", "api_key"])  # a field the view does not name, secret or not
def test_a_kept_request_never_holds_a_field_its_view_does_not_name_and_one_that_posts_one_is_not_kept(
    console: Callable[..., Client], admin: Persona, field: str
) -> None:
    key = make_key()
    client = console(admin, sudo=False)
    asked = client.post(
        keytabs.url("key-alias-create", key), {"alias_name": "alias/x", field: "typed by mistake 1"}
    )
    prompt = prompt_of(asked)
    assert "action" not in prompt and PENDING not in client.session
    assert "typed by mistake" not in json.dumps(dict(client.session.items()))
    assert b"submit it again" in client.get(SUDO, prompt).content
    confirm(client, prompt)
    # Completing it without the field it posted would be another request: nothing is done for it.
    assert not Alias.objects.filter(name="alias/x").exists()


def test_a_secret_made_by_the_completed_request_never_reaches_the_session(
    console: Callable[..., Client], admin: Persona, outsider: Persona
) -> None:
    client = console(admin, sudo=False)
    create = reverse("console:access-key-create", args=[outsider.arn.split(":")[4], "outsider"])
    prompt = prompt_of(client.post(create, {}))
    page = confirm(client, prompt)
    assert page.status_code == 200
    created = AccessKey.objects.filter(user__name="outsider").exclude(access_key_id=outsider.access_key_id)
    assert created.count() == 1
    secret = page.context["created"].secret_access_key
    assert secret.encode() in page.content
    assert secret not in json.dumps(dict(client.session.items())) and PENDING not in client.session


def test_a_kept_request_is_completed_only_from_its_prompt_once_and_in_time(
    console: Callable[..., Client], admin: Persona
) -> None:
    key = make_key()
    client = console(admin, sudo=False)
    create = keytabs.url("key-alias-create", key)

    prompt = prompt_of(client.post(create, {"alias_name": "alias/one"}))
    confirm(client, {**prompt, "action": "another-prompt"})
    assert not Alias.objects.filter(name="alias/one").exists() and PENDING not in client.session

    client = console(admin, sudo=False)
    prompt = prompt_of(client.post(create, {"alias_name": "alias/two"}))
    session = client.session
    session[PENDING] = {**session[PENDING], "at": time.time() - PENDING_MAX_SECONDS - 1}
    session.save()
    assert b"waited too long" in client.get(SUDO, prompt).content
    confirm(client, prompt)
    assert not Alias.objects.filter(name="alias/two").exists()

    client = console(admin, sudo=False)
    prompt = prompt_of(client.post(create, {"alias_name": "alias/three"}))
    confirm(client, prompt)
    confirm(client, prompt)  # the same confirmation again does not do it twice
    assert Alias.objects.filter(name="alias/three").count() == 1
    assert len(audit_events("CreateAlias")) == 1


def test_the_completing_confirmation_keeps_its_csrf_check(
    console: Callable[..., Client], admin: Persona
) -> None:
    key = make_key()
    client = console(admin, sudo=False)
    prompt = prompt_of(client.post(keytabs.url("key-alias-create", key), {"alias_name": "alias/csrf"}))
    client.handler.enforce_csrf_checks = True
    assert confirm(client, prompt).status_code == 403
    assert not Alias.objects.filter(name="alias/csrf").exists()


# --- A key user is neither offered nor asked for a password for what she may not do ------------------------------


def key_user_policy(user_arn: str) -> str:
    """The default key policy's shape: the account administers; `user_arn` may use the key and read it."""
    return policy(
        ROOT, allow(user_arn, "kms:Encrypt", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*")
    )


@pytest.fixture
def alice_key(make_user: Callable[..., Persona]) -> tuple[Persona, Key]:
    alice = make_user("alice")  # no identity policy: the key policy alone makes her a key user
    return alice, make_key(policy=key_user_policy(alice.arn))


ADMIN_BUTTONS = (b"Disable key", b"Schedule deletion", b"Save description")


def test_a_key_user_is_not_offered_the_admin_actions(
    console: Callable[..., Client], alice_key: tuple[Persona, Key], admin: Persona
) -> None:
    alice, key = alice_key
    page = console(alice).get(reverse("console:key", args=[str(key.key_id)]))
    assert page.status_code == 200
    for button in ADMIN_BUTTONS:
        assert button not in page.content
    assert b"You may not disable this key (kms:DisableKey)." in page.content
    assert b"You may not schedule this key's deletion (kms:ScheduleKeyDeletion)." in page.content
    # The page's one event is its DescribeKey; the questions behind it are recorded nowhere.
    assert not AuditEvent.objects.exclude(operation="DescribeKey").filter(caller_arn=alice.arn).exists()
    admin_page = console(admin).get(reverse("console:key", args=[str(key.key_id)]))
    for button in ADMIN_BUTTONS:
        assert button in admin_page.content
    assert b"You may not" not in admin_page.content


@pytest.mark.parametrize(
    ("name", "operation", "data"),
    [
        ("key-disable", "DisableKey", {}),
        ("key-schedule-deletion", "ScheduleKeyDeletion", {"pending_window_days": "7"}),
    ],
)
def test_a_refused_caller_is_refused_at_once_without_a_password(
    console: Callable[..., Client],
    alice_key: tuple[Persona, Key],
    name: str,
    operation: str,
    data: dict[str, str],
) -> None:
    alice, key = alice_key
    client = console(alice, sudo=False)
    before = key_snapshot(key)
    response = client.post(
        reverse(f"console:{name}", args=[str(key.key_id)]), {"confirm_key_id": str(key.key_id), **data}
    )
    assert response.status_code == 403
    assert b"Refused" in response.content and f"kms:{operation}".encode() in response.content
    assert key_snapshot(key) == before and PENDING not in client.session
    [event] = audit_events(operation)
    assert (event.caller_arn, event.decision) == (alice.arn, "denied")
