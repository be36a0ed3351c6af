"""The key policy review at a laptop's width: the "who gains or loses access" tables stay inside their card, long
ARNs wrapping, rather than running past its edge."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import Persona
from tests.e2e.conftest import WatchedPage
from tests.e2e.test_signin import sign_in
from tests.policies.analyzer_support import make_key

pytestmark = pytest.mark.django_db(transaction=True)

WIDTH = 1280


def test_the_access_table_of_adding_a_key_user_fits_its_card(
    watched_page: WatchedPage, admin: Persona, make_user: Callable[..., Persona]
) -> None:
    app = make_user("an-application-service-user-with-a-long-descriptive-name")
    key = make_key()
    page = watched_page.page
    page.set_viewport_size({"width": WIDTH, "height": 900})
    sign_in(watched_page, admin)
    watched_page.goto(f"/console/keys/{key.key_id}/policy/")
    page.locator("#add-user-arn").fill(app.arn)
    page.get_by_role("button", name="Add key user").click()
    page.get_by_role("heading", name="Review the changes").wait_for()
    card = page.locator("#access-diff").bounding_box()
    tables = page.locator("#access-diff table")
    assert card is not None and tables.count() >= 1
    # The card itself stays within the window: no sideways scrolling at a laptop's width.
    assert card["x"] >= 0 and card["x"] + card["width"] <= WIDTH, card
    for index in range(tables.count()):
        table = tables.nth(index).bounding_box()
        assert table is not None
        assert card["x"] <= table["x"] and table["x"] + table["width"] <= card["x"] + card["width"], (
            table,
            card,
        )
    watched_page.screenshot("key-policy-review-add-user-1280")
