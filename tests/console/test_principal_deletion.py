"""Deleting users, roles and groups in the console: the Delete action on each entity page, a confirmation page
behind sudo that lists what blocks the deletion with a way to remove each (its own operation), AWS's
DeleteConflict inline (409, never a 500), another account's principal answered as an unknown one, and the
console-login removal that ends the login's sessions."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from kmsconsole.audit.models import AuditEvent
from kmsconsole.console.sudo import REQUEST_CONFIRMATION
from policies import services
from policies.models import Account, ConsoleIdentity, IamGroup, IamRole, IamUser
from tests.conftest import PARTNER_ACCOUNT, Persona, as_operator
from tests.console.conftest import audit_events
from tests.console.principals_support import (
    ACCOUNT,
    principals_state,
    seed_group,
    seed_policy,
    seed_role,
    text,
    url,
)

pytestmark = pytest.mark.django_db

Console = Callable[..., Client]
MODELS = {"user": IamUser, "role": IamRole, "group": IamGroup}


def seed(kind: str, name: str = "doomed") -> Any:
    account = Account.objects.get(account_id=ACCOUNT)
    if kind == "role":
        return seed_role(name)
    if kind == "group":
        return seed_group(name)
    return as_operator(
        "iam:CreateUser", lambda ctx: services.user_create(ctx=ctx, account=account, user_name=name)
    )


def test_anonymous_is_sent_to_sign_in(admin: Persona) -> None:
    seed("user")
    for method in ("get", "post"):
        response = getattr(Client(), method)(url("entity-delete", ACCOUNT, "user", "doomed"))
        assert response.status_code == 302 and response["Location"].startswith("/signin/?next=")
    assert IamUser.objects.filter(name="doomed").exists()


@pytest.mark.parametrize("kind", MODELS)
def test_the_entity_page_offers_delete_and_the_confirmation_page_shows_it(
    kind: str, console: Console, admin: Persona
) -> None:
    entity = seed(kind)
    client = console(admin)
    page = client.get(url(kind, ACCOUNT, "doomed"))
    delete_url = url("entity-delete", ACCOUNT, kind, "doomed")
    assert delete_url in text(page)
    confirm = client.get(delete_url)
    assert confirm.status_code == 200
    assert f"Delete {kind} doomed?" in text(confirm) and entity.unique_id in text(confirm)
    assert "Remove these first" not in text(confirm)
    assert audit_events(f"iam:Get{kind.capitalize()}")[-1].decision == "allowed"


@pytest.mark.parametrize("kind", MODELS)
def test_admin_deletes_after_sudo(kind: str, console: Console, admin: Persona) -> None:
    entity = seed(kind)
    response = console(admin).post(url("entity-delete", ACCOUNT, kind, "doomed"))
    assert response.status_code == 302
    assert response["Location"] == f"{url('principals')}?account={ACCOUNT}&tab={kind}"
    assert not MODELS[kind].objects.filter(pk=entity.pk).exists()
    event = audit_events(f"iam:Delete{kind.capitalize()}")[-1]
    assert (event.decision, event.caller_arn) == ("allowed", admin.arn)
    assert event.response_elements[f"{kind.capitalize()}Id"] == entity.unique_id


def test_without_sudo_nothing_is_deleted_and_only_the_prompt_is_recorded(
    console: Console, admin: Persona
) -> None:
    seed("user")
    events = AuditEvent.objects.count()
    response = console(admin, sudo=False).post(url("entity-delete", ACCOUNT, "user", "doomed"))
    assert response.status_code == 302 and response["Location"].startswith(url("sudo"))
    assert IamUser.objects.filter(name="doomed").exists()
    # The one event is the prompt's (nothing deleted): kmsconsole:RequestConfirmation, naming what waits.
    [prompt] = AuditEvent.objects.order_by("seq")[events:]
    assert prompt.operation == REQUEST_CONFIRMATION
    assert prompt.request_parameters["AwaitedOperation"] == "iam:DeleteUser"


def test_outsider_is_refused_and_nothing_changes(console: Console, outsider: Persona) -> None:
    seed("user")
    before = principals_state()
    client = console(outsider)
    assert client.get(url("entity-delete", ACCOUNT, "user", "doomed")).status_code == 403
    refused = client.post(url("entity-delete", ACCOUNT, "user", "doomed"))
    assert refused.status_code == 403 and "Refused." in text(refused)
    assert principals_state() == before
    assert audit_events("iam:DeleteUser")[-1].decision == "denied"


def test_the_blockers_are_listed_with_a_way_to_remove_each(console: Console, admin: Persona) -> None:
    account = Account.objects.get(account_id=ACCOUNT)
    user = seed("user")
    seed_policy(user, "encrypt")
    seed_group("devs", "doomed")
    key = as_operator(
        "iam:CreateAccessKey",
        lambda ctx: services.access_key_create(ctx=ctx, account=account, user_name="doomed"),
    )
    login = get_user_model().objects.create_user(username="doomed-login")
    ConsoleIdentity.objects.create(login=login, iam_user=user)
    client = console(admin)
    page = text(client.get(url("entity-delete", ACCOUNT, "user", "doomed")))
    assert "Remove these first" in page
    for message in (
        "must delete access keys first.",
        "must delete login profile first.",
        "must delete policies first.",
        "must remove users from group first.",
    ):
        assert message in page
    assert url("access-key-delete", ACCOUNT, "doomed", key.access_key_id) in page
    assert url("identity-policy-delete", ACCOUNT, "user", "doomed", "encrypt") in page
    assert url("group-member-remove", ACCOUNT, "devs", "doomed") in page
    # A console sign-in name is never listed: the page says a console login exists.
    assert url("console-login-delete", ACCOUNT, "doomed") in page and "This user has a console login." in page
    assert "doomed-login" not in page

    refused = client.post(url("entity-delete", ACCOUNT, "user", "doomed"))
    assert refused.status_code == 409
    assert "Cannot delete entity, must delete access keys first." in text(refused)
    assert IamUser.objects.filter(name="doomed").exists()

    # Each removal is its own operation; then the deletion goes through.
    back = url("entity-delete", ACCOUNT, "user", "doomed")
    removed = client.post(url("console-login-delete", ACCOUNT, "doomed"), {"next": back})
    assert removed.status_code == 302 and removed["Location"] == back
    assert not get_user_model().objects.filter(username="doomed-login").exists()
    assert audit_events("kmsconsole:DeleteConsoleLogin")[-1].decision == "allowed"
    client.post(url("access-key-delete", ACCOUNT, "doomed", key.access_key_id))
    client.post(url("identity-policy-delete", ACCOUNT, "user", "doomed", "encrypt"))
    client.post(url("group-member-remove", ACCOUNT, "devs", "doomed"), {"next": back})
    assert "Remove these first" not in text(client.get(back))
    assert client.post(back).status_code == 302
    assert not IamUser.objects.filter(name="doomed").exists()


def test_a_group_with_members_lists_them(console: Console, admin: Persona) -> None:
    seed("user", "alice")
    seed_group("crew", "alice")
    page = text(console(admin).get(url("entity-delete", ACCOUNT, "group", "crew")))
    assert "must remove users from group first." in page
    assert url("group-member-remove", ACCOUNT, "crew", "alice") in page


def test_an_unknown_console_login_is_said_inline(console: Console, admin: Persona) -> None:
    seed("user")
    response = console(admin).post(url("console-login-delete", ACCOUNT, "doomed"), {"login": "nobody"})
    assert response.status_code == 400
    assert "The console login nobody of user doomed cannot be found." in text(response)


@pytest.mark.parametrize("kind", MODELS)
def test_another_accounts_principal_is_answered_as_an_unknown_one(
    kind: str, console: Console, admin: Persona, partner: Any
) -> None:
    partner(None)
    other = Account.objects.get(account_id=PARTNER_ACCOUNT)
    create = {"user": services.user_create, "role": services.role_create, "group": services.group_create}[
        kind
    ]
    as_operator(
        f"iam:Create{kind.capitalize()}",
        lambda ctx: create(ctx=ctx, account=other, **{f"{kind}_name": "ghost"}),
    )
    client = console(admin)
    existing = client.post(url("entity-delete", PARTNER_ACCOUNT, kind, "ghost"))
    unknown = client.post(url("entity-delete", PARTNER_ACCOUNT, kind, "nobody"))
    assert [existing.status_code, unknown.status_code] == [404, 404]
    assert f"The {kind} with name ghost cannot be found." in text(existing)
    assert MODELS[kind].objects.filter(account=other, name="ghost").exists()
    assert client.get(url("entity-delete", PARTNER_ACCOUNT, kind, "ghost")).status_code == 404


def test_a_deleted_console_logins_session_signs_in_nobody(console: Console, admin: Persona) -> None:
    user = seed("user")
    login = get_user_model().objects.create_user(username="doomed-login")
    ConsoleIdentity.objects.create(login=login, iam_user=user)
    theirs = Client()
    theirs.force_login(login)
    # Signed in, acting as the IAM user (which may list nothing: refused by the engine, not sent to sign in).
    assert theirs.get(url("principals")).status_code == 403
    console(admin).post(url("console-login-delete", ACCOUNT, "doomed"), {"login": "doomed-login"})
    response = theirs.get(url("principals"))
    assert response.status_code == 302 and response["Location"].startswith("/signin/?next=")


def test_a_viewer_allowed_only_get_user_sees_the_conflicts_without_their_items(
    console: Console, admin: Persona, make_user: Callable[..., Persona]
) -> None:
    account = Account.objects.get(account_id=ACCOUNT)
    user = seed("user")
    seed_policy(user, "secret-policy-name")
    key = as_operator(
        "iam:CreateAccessKey",
        lambda ctx: services.access_key_create(ctx=ctx, account=account, user_name="doomed"),
    )
    login = get_user_model().objects.create_user(username="doomed-secret-login")
    ConsoleIdentity.objects.create(login=login, iam_user=user)
    get_only = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}],
        }
    )
    viewer = make_user("viewer", get_only)
    page = text(console(viewer).get(url("entity-delete", ACCOUNT, "user", "doomed")))
    for message in (
        "must delete access keys first.",
        "must delete login profile first.",
        "must delete policies first.",
    ):
        assert message in page
    for secret in (key.access_key_id, "secret-policy-name", "doomed-secret-login"):
        assert secret not in page
    assert "This user has a console login." in page
    # The admin, allowed the list reads, sees the items (never the sign-in name).
    page = text(console(admin).get(url("entity-delete", ACCOUNT, "user", "doomed")))
    assert key.access_key_id in page and "secret-policy-name" in page and "doomed-secret-login" not in page
