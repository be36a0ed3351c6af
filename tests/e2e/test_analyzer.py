"""The access analyzer and the policy simulator in a real browser: the findings of every key, a key's matrix from
the key policy tab, a cell's "Simulate" link filling the simulator in, and the answer explained. Every page is
watched for JavaScript and console errors (a CSP violation is one); screenshots go to test-artifacts/console/."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import Persona
from tests.e2e.conftest import WatchedPage
from tests.e2e.test_signin import sign_in
from tests.policies.analyzer_support import PARTNER_ROOT, ROOT, allow, make_key, policy

pytestmark = pytest.mark.django_db(transaction=True)


def test_findings_matrix_and_simulator(
    watched_page: WatchedPage,
    admin: Persona,
    partner: Callable[..., Persona],
    make_user: Callable[..., Persona],
) -> None:
    partner(None)
    dev = make_user(
        "dev",
        '{"Version": "2012-10-17", "Statement": [{"Sid": "DecryptOnly", "Effect": "Allow", '
        '"Action": "kms:Decrypt", "Resource": "*"}]}',
    )
    key = make_key(
        policy(
            ROOT,
            allow(PARTNER_ROOT, "kms:Decrypt", sid="Partner"),
            allow("*", "kms:DescribeKey", sid="Public"),
        ),
        description="shared with the partner",
    )
    page = watched_page.page
    sign_in(watched_page, admin)

    page.get_by_role("link", name="Access analyzer").click()
    page.get_by_role("heading", name="Access analyzer").wait_for()
    assert "Anyone can use this access" in page.content()
    watched_page.screenshot("access-analyzer")
    page.get_by_label("Severity").select_option("high")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/console/analyzer/?severity=high")
    assert "Automatic rotation is off" not in page.content()

    watched_page.goto(f"/console/keys/{key.key_id}/policy/")
    page.get_by_role("link", name="Who has access").click()
    page.get_by_role("heading", name="Who can do what").wait_for()
    assert "Account 444455556666 (its principals)" in page.content()  # another account, as a whole
    watched_page.screenshot("key-access")
    # Another account is shown as a whole, not simulated by this caller (its identity policies are its own).
    assert page.locator("details", has_text=PARTNER_ROOT).get_by_role("link", name="kms:Decrypt").count() == 0

    dev_row = page.locator("details", has_text=dev.arn)
    dev_row.get_by_role("link", name="kms:Decrypt").click()
    page.get_by_role("heading", name="Policy simulator").wait_for()
    assert page.get_by_label("Principal").input_value() == dev.arn
    assert page.get_by_label("Action").input_value() == "kms:Decrypt"
    page.get_by_label("Encryption context").fill("dept=finance")
    page.get_by_role("button", name="Simulate").click()
    page.locator("#simulation-result").wait_for()
    assert page.locator(".decision").inner_text() == "Allowed"
    assert "DecryptOnly" in page.locator("#simulation-explanation").inner_text()
    watched_page.screenshot("policy-simulator")

    page.get_by_label("Action").select_option("kms:Encrypt")
    page.get_by_role("button", name="Simulate").click()
    page.locator("#simulation-result").wait_for()
    assert page.locator(".decision").inner_text() == "Denied"
