"""The key list in a real browser, for a principal allowed kms:ListKeys and kms:DescribeKey whose key policies do
not all let it describe: a hidden key shows its id (a link to its page) and a note, never its description;
searching (htmx swaps the results) and filtering find only what the rows show; a search that looked through its
bound of keys offers to look further; and a changed page link is refused in words on the page."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from kmsconsole.api.key_listing import WALK_LIMIT
from tests.api.conftest import make_key
from tests.conftest import Persona
from tests.console.test_keys import seed_keys
from tests.e2e.conftest import WatchedPage
from tests.e2e.test_signin import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def allow(*actions: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
        }
    )


def test_a_describers_key_list(
    watched_page: WatchedPage, admin: Persona, make_user: Callable[..., Persona]
) -> None:
    seed_keys(WALK_LIMIT + 10)  # older keys the describer may describe (the account's default key policy)
    shown = make_key("ledger of payments")
    admin_only = {"Effect": "Allow", "Principal": {"AWS": admin.arn}, "Action": "kms:*", "Resource": "*"}
    hidden = make_key(
        "zephyr merger secret", policy=json.dumps({"Version": "2012-10-17", "Statement": [admin_only]})
    )
    describer = make_user("describer", allow("kms:ListKeys", "kms:DescribeKey"))
    page = watched_page.page
    sign_in(watched_page, describer)

    watched_page.goto("/console/keys/")
    hidden_row = page.locator("tr", has=page.locator(f'a[href="/console/keys/{hidden.key_id}/"]'))
    assert "Details need kms:DescribeKey" in hidden_row.inner_text()
    assert "zephyr" not in page.content()
    assert "ledger of payments" in page.content()
    watched_page.screenshot("key-list-describer")

    # Search: htmx swaps the results in place.
    search = page.get_by_label("Search")
    search.fill("zephyr")
    search.press("Enter")
    page.get_by_text("No keys match").or_(page.get_by_text("No match yet")).first.wait_for()
    assert str(hidden.key_id) not in page.locator("#key-results").inner_text()
    search.fill("ledger")
    search.press("Enter")
    page.locator(f'#key-results a[href="/console/keys/{shown.key_id}/"]').wait_for()
    assert f"Looked through {WALK_LIMIT} keys" in page.locator("#key-results").inner_text()
    watched_page.screenshot("key-list-search")
    # The search looked through its bound of keys: look further, and the rest holds no match.
    page.get_by_role("link", name="Look further").first.click()
    page.get_by_text("Looked through 12 keys").wait_for()
    assert "No keys match" in page.locator("#key-results").inner_text()

    # A filter by a DescribeKey field: only keys the row describes.
    watched_page.goto("/console/keys/")
    page.get_by_label("Status").select_option("Enabled")  # submits itself; htmx swaps the results
    page.locator(f'#key-results a[href="/console/keys/{hidden.key_id}/"]').wait_for(state="detached")
    assert "state=Enabled" in page.url
    assert page.locator(f'#key-results a[href="/console/keys/{shown.key_id}/"]').count() == 1

    # A key id finds the hidden key, still without its details.
    watched_page.goto(f"/console/keys/?q={hidden.key_id}")
    assert "Details need kms:DescribeKey" in page.locator("#key-results").inner_text()

    # A page link changed by hand is refused on the page, in words.
    watched_page.goto("/console/keys/?q=ledger&cursor=changed-by-hand")
    assert "That page link is not valid for this list" in page.get_by_role("alert").first.inner_text()
