"""Sudo mode covers every console action that changes who can do what: without a fresh password confirmation the
action is sent to the confirmation page and nothing changes (no row, no event of the action: only the prompt's
kmsconsole:RequestConfirmation); with one it is done.

The existing tests cover disable, schedule deletion, key policy save and restore, grant revoke and access-key
create; this file covers the rest: CreateGrant, identity policies, group membership, access-key status and
deletion, and the tags and aliases that ABAC conditions decide by.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from keys.models import Key
from keys.services import aliases, tags
from kmsconsole.audit.models import AuditEvent
from kmsconsole.console.sudo import PENDING
from policies.models import IamUser
from tests.conftest import Persona, as_operator
from tests.console import key_tab_helpers as keytabs
from tests.console.conftest import PASSWORD
from tests.console.principals_support import (
    ACCOUNT,
    POLICY,
    principals_state,
    seed_group,
    seed_policy,
    text,
    url,
)

pytestmark = pytest.mark.django_db

NEW_POLICY = POLICY.replace("kms:Encrypt", "kms:Decrypt")


@dataclass(frozen=True)
class World:
    key: Key
    other_key: Key
    outsider: Persona


@dataclass(frozen=True)
class Action:
    operation: str
    path: Callable[[World], str]
    data: Callable[[World], dict[str, Any]]


def _alias(key: Key, name: str) -> None:
    as_operator(
        "CreateAlias",
        lambda ctx: aliases.alias_create(ctx=ctx, alias_name=name, target_key_id=str(key.key_id)),
    )


def _tag(key: Key) -> None:
    pair = {"TagKey": "team", "TagValue": "payments"}
    as_operator("TagResource", lambda ctx: tags.key_tag(ctx=ctx, key_id=str(key.key_id), tags=[pair]))


@pytest.fixture
def world(admin: Persona, outsider: Persona) -> World:
    key, other_key = keytabs.make_key(), keytabs.make_key()
    _alias(key, "alias/payments")
    _tag(key)
    seed_policy(seed_group("devs", "admin"))
    seed_policy(IamUser.objects.get(name="outsider"))
    return World(key=key, other_key=other_key, outsider=outsider)


ACTIONS = [
    Action(
        "CreateGrant",
        lambda w: keytabs.url("key-grant-create", w.key),
        lambda w: {"grantee_principal": w.outsider.arn, "operations": ["Encrypt"]},
    ),
    Action(
        "iam:PutUserPolicy",
        lambda w: url("identity-policy-create", ACCOUNT, "user", "outsider"),
        lambda w: {"policy_name": "decrypt", "policy": NEW_POLICY},
    ),
    Action(
        "iam:PutUserPolicy",
        lambda w: url("identity-policy", ACCOUNT, "user", "outsider", "encrypt"),
        lambda w: {"policy": NEW_POLICY},
    ),
    Action(
        "iam:DeleteGroupPolicy",
        lambda w: url("identity-policy-delete", ACCOUNT, "group", "devs", "encrypt"),
        lambda w: {},
    ),
    Action(
        "iam:AddUserToGroup",
        lambda w: url("group-member-add", ACCOUNT, "devs"),
        lambda w: {"user_name": "outsider"},
    ),
    Action(
        "iam:RemoveUserFromGroup",
        lambda w: url("group-member-remove", ACCOUNT, "devs", "admin"),
        lambda w: {},
    ),
    Action(
        "iam:UpdateAccessKey",
        lambda w: url("access-key-status", ACCOUNT, "outsider", w.outsider.access_key_id),
        lambda w: {"status": "Inactive"},
    ),
    Action(
        "iam:DeleteAccessKey",
        lambda w: url("access-key-delete", ACCOUNT, "outsider", w.outsider.access_key_id),
        lambda w: {},
    ),
    Action(
        "TagResource",
        lambda w: keytabs.url("key-tag-put", w.key),
        lambda w: {"tag_key": "env", "tag_value": "prod"},
    ),
    Action("UntagResource", lambda w: keytabs.url("key-tag-remove", w.key), lambda w: {"tag_key": "team"}),
    Action(
        "CreateAlias", lambda w: keytabs.url("key-alias-create", w.key), lambda w: {"alias_name": "alias/new"}
    ),
    Action(
        "UpdateAlias",
        lambda w: keytabs.url("key-alias-update", w.key),
        lambda w: {"alias_name": "alias/payments", "target_key_id": str(w.other_key.key_id)},
    ),
    Action(
        "DeleteAlias",
        lambda w: keytabs.url("key-alias-delete", w.key),
        lambda w: {"alias_name": "alias/payments"},
    ),
]


def state() -> tuple[Any, ...]:
    return principals_state(), keytabs.snapshot()


def console_events(operation: str) -> int:
    return AuditEvent.objects.filter(operation=operation, interface="console").count()


@pytest.mark.parametrize("action", ACTIONS, ids=[f"{a.operation}-{i}" for i, a in enumerate(ACTIONS)])
def test_without_sudo_nothing_changes_and_with_sudo_it_is_done(
    action: Action, world: World, admin: Persona, console: Callable[..., Client]
) -> None:
    before, events = state(), console_events(action.operation)
    client = console(admin, sudo=False)
    path, data = action.path(world), action.data(world)
    refused = client.post(path, data, HTTP_REFERER=f"http://testserver{path}")
    assert refused.status_code == 302
    assert refused["Location"].startswith(url("sudo") + "?next=")
    assert state() == before
    assert console_events(action.operation) == events

    done = console(admin).post(path, data)
    assert done.status_code in (200, 302), text(done)
    assert state() != before
    event = (
        AuditEvent.objects.filter(operation=action.operation, interface="console").order_by("-seq").first()
    )
    assert event is not None and (event.caller_arn, event.decision) == (admin.arn, "allowed")


def test_htmx_actions_are_sent_to_the_confirmation_too(
    world: World, admin: Persona, console: Callable[..., Client]
) -> None:
    before = state()
    response = console(admin, sudo=False).post(
        keytabs.url("key-tag-put", world.key), {"tag_key": "env", "tag_value": "prod"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 204 and response["HX-Redirect"].startswith(url("sudo"))
    assert state() == before


def test_an_identity_policy_draft_is_saved_by_the_confirmation(
    world: World, admin: Persona, console: Callable[..., Client]
) -> None:
    client = console(admin, sudo=False)
    editor = url("identity-policy-create", ACCOUNT, "user", "outsider")
    draft = NEW_POLICY.replace("{", "{\r\n", 1)
    refused = client.post(editor, {"policy_name": "decrypt", "policy": draft})
    assert refused["Location"].startswith(f"{url('sudo')}?next={editor.replace('/', '%2F')}&action=")
    assert client.session[PENDING]["fields"] == {"policy_name": ["decrypt"], "policy": [draft]}
    confirmed = client.post(refused["Location"], {"password": PASSWORD})
    assert confirmed.status_code == 302
    assert confirmed["Location"] == url("identity-policy", ACCOUNT, "user", "outsider", "decrypt")
    assert PENDING not in client.session
    saved = IamUser.objects.get(name="outsider").policies.get(name="decrypt")
    assert saved.document.replace("\r\n", "\n") == NEW_POLICY.replace("{", "{\n", 1)


def test_a_grant_form_is_submitted_by_the_confirmation(
    world: World, admin: Persona, console: Callable[..., Client]
) -> None:
    client = console(admin, sudo=False)
    form_url = keytabs.url("key-grant-create", world.key)
    posted = {"grantee_principal": world.outsider.arn, "operations": ["Encrypt", "Decrypt"], "name": "orders"}
    refused = client.post(form_url, posted)
    confirmed = client.post(refused["Location"], {"password": PASSWORD})
    assert confirmed["Location"] == keytabs.url("key-grant-created", world.key)
    [event] = AuditEvent.objects.filter(operation="CreateGrant", interface="console")
    assert event.request_parameters["Operations"] == ["Encrypt", "Decrypt"]
    assert event.request_parameters["Name"] == "orders"
