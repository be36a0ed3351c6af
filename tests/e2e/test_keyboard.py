"""Keyboard only (issue 6: "usable on a laptop screen and keyboard-only"): sign in, skip to the content, reach the
key list and open the create wizard without a mouse, with a visible focus ring on what has focus."""

from __future__ import annotations

import pytest

from tests.conftest import Persona
from tests.console.conftest import PASSWORD, console_login_for
from tests.e2e.conftest import WatchedPage

pytestmark = pytest.mark.django_db(transaction=True)


def focused(watched: WatchedPage) -> str:
    return str(
        watched.page.evaluate("document.activeElement.textContent || document.activeElement.name || ''")
    )


def tab_until(watched: WatchedPage, text: str, limit: int = 40) -> None:
    for _ in range(limit):
        watched.page.keyboard.press("Tab")
        if focused(watched).strip() == text:
            return
    raise AssertionError(f"{text!r} cannot be reached with the Tab key")


def test_sign_in_and_reach_the_wizard_by_keyboard(watched_page: WatchedPage, admin: Persona) -> None:
    console_login_for(admin)
    page = watched_page.page
    watched_page.goto("/signin/")
    # The user name field has focus on arrival; type, Tab to the password, Enter submits.
    page.keyboard.type(admin.name)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(watched_page.base_url + "/")

    # The first Tab lands on "Skip to content", which is shown while focused.
    page.keyboard.press("Tab")
    assert focused(watched_page) == "Skip to content"
    assert page.locator(".skip").bounding_box()["x"] >= 0  # type: ignore[index]

    tab_until(watched_page, "Keys")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), "the focused link has no visible focus ring"
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/keys/")
    tab_until(watched_page, "Create key")
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/keys/create/")
    # The wizard's first choice is reachable and can be picked with the keyboard.
    tab_until(watched_page, "key_type")  # the key type radio group (a radio has no text: its name)
    page.keyboard.press("Space")
    assert page.locator("input[name=key_type]:checked").count() == 1
