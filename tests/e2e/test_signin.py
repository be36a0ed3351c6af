"""Sign-in in a real browser: the form, a wrong password's inline message, and the overview after success."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Persona
from tests.console.conftest import PASSWORD, console_login_for
from tests.e2e.conftest import WatchedPage

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in(watched: WatchedPage, persona: Persona) -> None:
    console_login_for(persona)
    page = watched.page
    watched.goto("/signin/")
    page.get_by_label("User name").fill(persona.name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(watched.base_url + "/")


def test_sign_in_with_a_wrong_password_then_the_right_one(watched_page: WatchedPage, admin: Persona) -> None:
    console_login_for(admin)
    page = watched_page.page
    watched_page.goto("/signin/")
    watched_page.screenshot("signin")
    page.get_by_label("User name").fill(admin.name)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert "did not match" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("User name").input_value() == admin.name
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(watched_page.base_url + "/")
    assert admin.arn in page.content()
    watched_page.screenshot("overview-new-account")


def test_a_page_needs_a_signed_in_session(watched_page: WatchedPage, account: Any) -> None:
    watched_page.goto("/console/confirm/")
    assert "/signin/" in watched_page.page.url
