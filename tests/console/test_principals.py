"""Principals pages: the account's users, roles and groups, creating them, each entity's page, group membership.

Every page and action: anonymous is sent to sign in, the outsider (no policies) is refused and nothing changes,
the admin changes state and the console's audit event is written, bad input is a 400 with the service's words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from policies import services
from policies.models import Account, IamGroup, IamRole, IamUser
from tests.conftest import PARTNER_ACCOUNT, Persona, as_operator
from tests.console.conftest import audit_events
from tests.console.principals_support import (
    ACCOUNT,
    last_event,
    principals_state,
    seed_group,
    seed_policy,
    seed_role,
    text,
    url,
)

pytestmark = pytest.mark.django_db

Console = Callable[..., Client]

# Every Principals route, with the method that changes state (or reads, for pages).
ROUTES = [
    ("get", "principals", ()),
    ("post", "user-create", (ACCOUNT,)),
    ("post", "role-create", (ACCOUNT,)),
    ("post", "group-create", (ACCOUNT,)),
    ("get", "user", (ACCOUNT, "admin")),
    ("get", "role", (ACCOUNT, "app")),
    ("get", "group", (ACCOUNT, "devs")),
    ("post", "group-member-add", (ACCOUNT, "devs")),
    ("post", "group-member-remove", (ACCOUNT, "devs", "admin")),
    ("post", "identity-policy-create", (ACCOUNT, "user", "admin")),
    ("get", "identity-policy", (ACCOUNT, "user", "admin", "p")),
    ("post", "identity-policy-delete", (ACCOUNT, "user", "admin", "p")),
    ("post", "identity-policy-validate", ()),
    ("post", "access-key-create", (ACCOUNT, "admin")),
    ("post", "access-key-status", (ACCOUNT, "admin", "AKIAEXAMPLE")),
    ("post", "access-key-delete", (ACCOUNT, "admin", "AKIAEXAMPLE")),
]


@pytest.mark.parametrize(("method", "name", "args"), ROUTES)
def test_anonymous_is_sent_to_sign_in(method: str, name: str, args: tuple[str, ...], admin: Persona) -> None:
    before = principals_state()
    response = getattr(Client(), method)(
        url(name, *args), {"name": "x", "user_name": "admin", "status": "Inactive"}
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/signin/?next=")
    assert principals_state() == before


def test_principals_appear_in_the_navigation(console: Console, admin: Persona) -> None:
    assert f'href="{url("principals")}"' in text(console(admin).get("/"))


# The list page.


def test_admin_sees_the_accounts_users_with_counts(
    console: Console, admin: Persona, outsider: Persona
) -> None:
    seed_role("app")
    response = console(admin).get(url("principals"))
    assert response.status_code == 200
    page = text(response)
    assert "Users (2)" in page and "Roles (1)" in page and "Groups (0)" in page
    assert admin.arn in page and outsider.arn in page
    assert f'href="{url("user", ACCOUNT, "outsider")}"' in page
    for operation in ("kmsconsole:ListAccounts", "iam:ListUsers", "iam:ListRoles", "iam:ListGroups"):
        assert audit_events(operation, caller_arn=admin.arn, decision="allowed")


def test_each_tab_lists_its_kind_or_says_it_is_empty(console: Console, admin: Persona) -> None:
    seed_role("app")
    client = console(admin)
    roles = text(client.get(url("principals"), {"tab": "role"}))
    assert (
        "arn:aws:iam::111122223333:role/app" in roles and "arn:aws:iam::111122223333:user/admin" not in roles
    )
    groups = text(client.get(url("principals"), {"tab": "group"}))
    assert "This account has no groups yet" in groups
    assert f'action="{url("group-create", ACCOUNT)}"' in groups


def test_pages_of_users(console: Console, admin: Persona, make_user: Callable[..., Persona]) -> None:
    for index in range(50):
        make_user(f"user-{index:02d}")
    client = console(admin)
    first = text(client.get(url("principals")))
    assert "Users (51)" in first and "Page 1 of 2" in first and "user-49" not in first
    second = text(client.get(url("principals"), {"page": "2"}))
    assert "user-49" in second and "user-00" not in second
    assert client.get(url("principals"), {"page": "not-a-number"}).status_code == 200


def test_outsider_is_refused_the_lists(console: Console, outsider: Persona, admin: Persona) -> None:
    response = console(outsider).get(url("principals"))
    assert response.status_code == 403
    page = text(response)
    assert 'class="message error" role="alert">Refused.' in page
    assert admin.arn not in page
    assert audit_events("iam:ListUsers", caller_arn=outsider.arn, decision="denied")


def test_another_accounts_principals_are_refused_even_to_the_admin(
    console: Console, admin: Persona, partner: Any
) -> None:
    stranger = partner("stranger")
    response = console(admin).get(url("principals"), {"account": PARTNER_ACCOUNT})
    page = text(response)
    assert response.status_code == 403
    assert f'<option value="{PARTNER_ACCOUNT}" selected>' in page  # the admin may list every account
    assert "Refused." in page and stranger.arn not in page


def test_the_outsider_sees_only_its_own_account(console: Console, outsider: Persona, partner: Any) -> None:
    partner("stranger")
    page = text(console(outsider).get(url("principals")))
    assert f'<option value="{ACCOUNT}" selected>' in page and PARTNER_ACCOUNT not in page


# Creating users, roles and groups.

MODELS = {"user": IamUser, "role": IamRole, "group": IamGroup}


@pytest.mark.parametrize("kind", ["user", "role", "group"])
def test_admin_creates_a_principal(kind: str, console: Console, admin: Persona) -> None:
    client = console(admin)
    response = client.post(url(f"{kind}-create", ACCOUNT), {"name": "ops-1", "path": "/eng/"})
    assert response.status_code == 302 and response["Location"] == url(kind, ACCOUNT, "ops-1")
    created = MODELS[kind].objects.get(name="ops-1")
    assert created.path == "/eng/"
    event = audit_events(f"iam:Create{kind.capitalize()}")[-1]
    assert (event.caller_arn, event.decision) == (admin.arn, "allowed")
    assert event.response_elements["Arn"] == f"arn:aws:iam::{ACCOUNT}:{kind}/eng/ops-1"
    followed = text(client.get(response["Location"]))
    assert f"Created {kind} ops-1." in followed and created.unique_id in followed


def test_an_empty_path_means_the_root_path(console: Console, admin: Persona) -> None:
    console(admin).post(url("user-create", ACCOUNT), {"name": "plain", "path": ""})
    assert IamUser.objects.get(name="plain").path == "/"


def test_create_form_page(console: Console, admin: Persona) -> None:
    response = console(admin).get(url("role-create", ACCOUNT))
    assert response.status_code == 200
    assert 'name="name"' in text(response) and "Create role" in text(response)


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"name": "has space", "path": "/"}, "name-error", "The specified value for userName is invalid"),
        ({"name": "", "path": "/"}, "name-error", "The specified value for userName is invalid"),
        (
            {"name": "x" * 65, "path": "/"},
            "name-error",
            "The specified value for userName is invalid. It must contain 1-64",
        ),
        ({"name": "ok", "path": "eng"}, "path-error", "The specified value for path is invalid"),
        ({"name": "admin", "path": "/"}, "name-error", "User with name admin already exists."),
    ],
)
def test_bad_input_is_a_400_beside_its_field_and_creates_nothing(
    values: dict[str, str], field: str, words: str, console: Console, admin: Persona
) -> None:
    before = principals_state()
    response = console(admin).post(url("user-create", ACCOUNT), values)
    assert response.status_code == 400
    page = text(response)
    assert f'id="{field}" role="alert">{words}' in page
    assert f'value="{values["name"]}"' in page  # what was typed stays
    assert principals_state() == before


def test_outsider_cannot_create(console: Console, outsider: Persona) -> None:
    before = principals_state()
    response = console(outsider).post(url("group-create", ACCOUNT), {"name": "sneaky", "path": "/"})
    assert response.status_code == 403 and "Refused." in text(response)
    assert principals_state() == before
    assert audit_events("iam:CreateGroup", caller_arn=outsider.arn, decision="denied")


def test_creating_in_an_unknown_account_is_refused_as_in_any_other_account(
    console: Console, admin: Persona
) -> None:
    response = console(admin).post(url("user-create", "999999999999"), {"name": "x", "path": "/"})
    assert response.status_code == 403 and "cannot be found" not in text(response)
    assert "arn:aws:iam::999999999999:user/*" in text(response)  # refused on the ARNs it would create under


# Entity pages.


def test_user_page_shows_arn_id_groups_policies_and_keys(console: Console, admin: Persona) -> None:
    user = IamUser.objects.get(name="admin")
    seed_group("devs", "admin")
    response = console(admin).get(url("user", ACCOUNT, "admin"))
    assert response.status_code == 200
    page = text(response)
    assert admin.arn in page and user.unique_id in page
    assert f'href="{url("group", ACCOUNT, "devs")}"' in page
    assert f'href="{url("identity-policy", ACCOUNT, "user", "admin", "policy-0")}"' in page
    assert admin.access_key_id in page and admin.secret_access_key not in page
    for operation in ("iam:GetUser", "iam:ListUserPolicies", "iam:ListAccessKeys"):
        assert audit_events(operation, caller_arn=admin.arn, decision="allowed")


def test_role_page_and_its_empty_policies(console: Console, admin: Persona) -> None:
    role = seed_role("app")
    page = text(console(admin).get(url("role", ACCOUNT, "app")))
    assert role.arn in page and role.unique_id in page and "No inline policies" in page
    assert audit_events("iam:GetRole", decision="allowed")


def test_group_page_lists_members_and_policies(console: Console, admin: Persona, outsider: Persona) -> None:
    group = seed_group("devs", "outsider")
    seed_policy(group, "team")
    page = text(console(admin).get(url("group", ACCOUNT, "devs")))
    assert group.arn in page and group.unique_id in page and outsider.arn in page
    assert f'href="{url("identity-policy", ACCOUNT, "group", "devs", "team")}"' in page
    assert audit_events("iam:GetGroup", decision="allowed")
    empty = seed_group("empty")
    assert "This group has no members" in text(console(admin).get(url("group", ACCOUNT, empty.name)))


@pytest.mark.parametrize("name", ["user", "role", "group"])
def test_outsider_is_refused_entity_pages(
    name: str, console: Console, outsider: Persona, admin: Persona
) -> None:
    seed_role("app")
    seed_group("devs")
    target = {"user": "admin", "role": "app", "group": "devs"}[name]
    response = console(outsider).get(url(name, ACCOUNT, target))
    assert response.status_code == 403 and "Refused." in text(response)
    unique_id = MODELS[name].objects.get(name=target).unique_id
    assert unique_id not in text(response)


def _page_text(response: Any) -> str:
    """The page without what differs between two renders of it (the CSRF token)."""
    page = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", text(response))
    return re.sub(r'"X-CSRFToken": "[^"]*"', "", page)


@pytest.mark.parametrize("kind", ["user", "role", "group"])
def test_another_accounts_principal_is_answered_as_an_unknown_one(
    kind: str, console: Console, admin: Persona, partner: Any
) -> None:
    partner(None)
    other = Account.objects.get(account_id=PARTNER_ACCOUNT)
    create = {"user": services.user_create, "role": services.role_create, "group": services.group_create}[
        kind
    ]
    ghost = as_operator(
        f"iam:Create{kind.capitalize()}",
        lambda ctx: create(ctx=ctx, account=other, path="/team/", **{f"{kind}_name": "ghost"}),
    )
    client = console(admin)
    existing = client.get(url(kind, PARTNER_ACCOUNT, "ghost"))
    no_account = client.get(url(kind, "999999999999", "ghost"))
    unknown = client.get(url(kind, PARTNER_ACCOUNT, "nobody"))
    # The same answer, word for word, whether the principal, or even its account, exists or not.
    assert [existing.status_code, no_account.status_code, unknown.status_code] == [404, 404, 404]
    assert f"The {kind} with name ghost cannot be found." in text(existing)
    assert _page_text(existing) == _page_text(no_account)
    assert _page_text(unknown) == _page_text(existing).replace("ghost", "nobody")
    assert ghost.arn not in text(existing) and "/team/" not in text(existing)
    # And the same audit event, which the admin's account may read: no path, nothing that tells them apart.
    events = audit_events(f"iam:Get{kind.capitalize()}", caller_arn=admin.arn)[-3:]
    shapes = [
        (e.decision, e.error_code, e.error_message, e.reason.replace("999999999999", PARTNER_ACCOUNT))
        for e in events[:2]
    ]
    assert shapes[0] == shapes[1] and shapes[0][:2] == ("failed", "NoSuchEntity")
    assert not any("/team/" in f"{e.reason} {e.error_message}" for e in events)


def test_the_principals_of_an_account_are_refused_alike_whether_it_exists_or_not(
    console: Console, admin: Persona, partner: Any
) -> None:
    """The list and create pages of another account: refused before the account is looked up, so an unknown one
    is not told apart (it answered 404 while an existing one answered 403). (The account picker lists the accounts
    a caller allowed kmsconsole:ListAccounts may see: left out of the comparison.)"""
    from django.urls import reverse

    partner(None)
    client = console(admin)
    answers = {}
    for account_id in (PARTNER_ACCOUNT, "999999999999"):
        listed = client.get(reverse("console:principals"), {"account": account_id, "tab": "users"})
        created = client.post(
            reverse("console:user-create", args=[account_id]), {"name": "ghost", "path": "/"}
        )
        answers[account_id] = (
            listed.status_code,
            re.sub(r"<option[^>]*>[^<]*</option>", "", _page_text(listed)).replace(account_id, "ACCOUNT"),
            created.status_code,
            _page_text(created).replace(account_id, "ACCOUNT"),
        )
    assert answers[PARTNER_ACCOUNT] == answers["999999999999"]
    assert "cannot be found" not in answers[PARTNER_ACCOUNT][1] + answers[PARTNER_ACCOUNT][3]
    assert not IamUser.objects.filter(name="ghost").exists()
    events = audit_events("iam:CreateUser", caller_arn=admin.arn)[-2:]
    assert [(e.decision, e.error_code) for e in events] == [("denied", "AccessDeniedException")] * 2


def test_another_accounts_principal_pages_below_an_entity_are_answered_as_unknown(
    console: Console, admin: Persona, partner: Any
) -> None:
    stranger = partner("stranger")
    key_id = stranger.access_key_id
    other = Account.objects.get(account_id=PARTNER_ACCOUNT)
    as_operator(
        "iam:CreateGroup", lambda ctx: services.group_create(ctx=ctx, account=other, group_name="partners")
    )
    client = console(admin)
    for account_id, name in ((PARTNER_ACCOUNT, "stranger"), ("999999999999", "stranger")):
        policy = client.get(url("identity-policy", account_id, "user", name, "policy-0"))
        key = client.get(url("access-key-delete", account_id, name, key_id))
        for response in (policy, key):
            assert response.status_code == 404
            assert "The user with name stranger cannot be found." in text(response)
        member = client.post(url("group-member-add", account_id, "partners"), {"user_name": "stranger"})
        assert member.status_code == 404 and "The group with name partners cannot be found." in text(member)


def test_unknown_entity_is_404_for_the_admin(console: Console, admin: Persona) -> None:
    response = console(admin).get(url("user", ACCOUNT, "nobody"))
    assert response.status_code == 404 and "The user with name nobody cannot be found." in text(response)


# Group membership.


def test_admin_adds_and_removes_a_member(console: Console, admin: Persona, outsider: Persona) -> None:
    group = seed_group("devs")
    client = console(admin)
    added = client.post(url("group-member-add", ACCOUNT, "devs"), {"user_name": "outsider"})
    assert added.status_code == 302 and added["Location"] == url("group", ACCOUNT, "devs")
    assert list(group.members.values_list("name", flat=True)) == ["outsider"]
    assert audit_events("iam:AddUserToGroup", caller_arn=admin.arn, decision="allowed")
    # The user's page shows the group, with a way out of it that returns there.
    user_page = text(client.get(url("user", ACCOUNT, "outsider")))
    assert f'action="{url("group-member-remove", ACCOUNT, "devs", "outsider")}"' in user_page
    removed = client.post(
        url("group-member-remove", ACCOUNT, "devs", "outsider"), {"next": url("user", ACCOUNT, "outsider")}
    )
    assert removed.status_code == 302 and removed["Location"] == url("user", ACCOUNT, "outsider")
    assert not group.members.exists()
    assert audit_events("iam:RemoveUserFromGroup", caller_arn=admin.arn, decision="allowed")
    assert "Removed outsider from group devs." in text(client.get(removed["Location"]))


def test_remove_never_returns_to_another_site(console: Console, admin: Persona) -> None:
    seed_group("devs", "admin")
    response = console(admin).post(
        url("group-member-remove", ACCOUNT, "devs", "admin"), {"next": "https://evil.example/"}
    )
    assert response["Location"] == url("group", ACCOUNT, "devs")


@pytest.mark.parametrize(
    ("user_name", "words"),
    [("", "Enter the name of a user to add."), ("nobody", "The user with name nobody cannot be found.")],
)
def test_adding_a_bad_member_is_a_400_inline(
    user_name: str, words: str, console: Console, admin: Persona
) -> None:
    seed_group("devs")
    before = principals_state()
    response = console(admin).post(url("group-member-add", ACCOUNT, "devs"), {"user_name": user_name})
    assert response.status_code == 400
    assert f'id="member-error" role="alert">{words}' in text(response)
    assert f'value="{user_name}"' in text(response)
    assert principals_state() == before


def test_outsider_cannot_change_membership(console: Console, outsider: Persona, admin: Persona) -> None:
    seed_group("devs", "admin")
    before = principals_state()
    client = console(outsider)
    add = client.post(url("group-member-add", ACCOUNT, "devs"), {"user_name": "outsider"})
    remove = client.post(url("group-member-remove", ACCOUNT, "devs", "admin"))
    assert (add.status_code, remove.status_code) == (403, 403)
    assert "Refused." in text(add) and "Refused." in text(remove)
    assert principals_state() == before
    assert last_event("iam:RemoveUserFromGroup").decision == "denied"


def test_removing_a_non_member_says_so(console: Console, admin: Persona) -> None:
    seed_group("devs")
    response = console(admin).post(url("group-member-remove", ACCOUNT, "devs", "admin"))
    assert response.status_code == 400 and "The user admin is not in group devs." in text(response)
