"""The password prompt of sudo mode in a real browser: what was typed before it is done once the password is
confirmed (an alias and a tag), and a key user is neither offered nor asked for a password for an admin action."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from keys.models import Alias, Tag
from tests.conftest import Persona
from tests.console.conftest import PASSWORD
from tests.console.test_keys import make_key
from tests.console.test_sudo_completion import key_user_policy
from tests.e2e.conftest import WatchedPage
from tests.e2e.test_signin import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def confirm(watched: WatchedPage, *shown: str) -> None:
    page = watched.page
    page.wait_for_url("**/console/confirm/**")
    prompt = page.locator("#sudo-pending").inner_text()
    assert all(text in prompt for text in shown), prompt  # the prompt says what will be done
    page.get_by_label("Password for").fill(PASSWORD)
    page.get_by_role("button", name="Confirm and continue").click()


def test_what_was_typed_before_the_password_is_done_after_it(
    watched_page: WatchedPage, admin: Persona
) -> None:
    key = make_key()
    page = watched_page.page
    sign_in(watched_page, admin)  # a fresh sign-in: no password confirmed in the last minutes

    watched_page.goto(f"/console/keys/{key.key_id}/aliases/")
    page.get_by_label("Alias name").fill("alias/payments2")
    page.get_by_role("button", name="Create alias").click()
    confirm(watched_page, "CreateAlias", "alias/payments2")
    page.wait_for_url(f"**/console/keys/{key.key_id}/aliases/")
    assert "Alias alias/payments2 now names this key." in page.content()
    assert Alias.objects.get(name="alias/payments2").key_id == key.pk


def test_a_tag_waits_for_the_password_and_a_key_user_is_offered_no_admin_action(
    watched_page: WatchedPage, admin: Persona, make_user: Callable[..., Persona]
) -> None:
    alice = make_user("alice")
    key = make_key(policy=key_user_policy(alice.arn))
    page = watched_page.page
    sign_in(watched_page, admin)
    watched_page.goto(f"/console/keys/{key.key_id}/tags/")
    page.get_by_label("Tag key").fill("owner")
    page.get_by_label("Tag value").fill("secops")
    page.get_by_role("button", name="Save tag").click()
    confirm(watched_page, "TagResource", "owner", "secops")
    page.wait_for_url(f"**/console/keys/{key.key_id}/tags/")
    assert list(Tag.objects.filter(key=key).values_list("tag_key", "tag_value")) == [("owner", "secops")]

    page.context.clear_cookies()
    sign_in(watched_page, alice)
    watched_page.goto(f"/console/keys/{key.key_id}/")
    actions = page.locator("main").inner_text()
    assert "You may not disable this key (kms:DisableKey)." in actions
    assert page.get_by_role("button", name="Disable key").count() == 0
    assert page.get_by_role("button", name="Schedule deletion").count() == 0
