"""The Principals pages in a real browser: create a user, give it an inline policy in the shared editor (a JSON
error marked at its line, then fixed and saved behind sudo), create its access key and copy the secret shown
once. Every page is watched for JavaScript and console errors (tests/e2e/conftest.py)."""

from __future__ import annotations

import pytest

from policies.models import AccessKey, IdentityPolicy
from tests.conftest import Persona
from tests.console.conftest import PASSWORD
from tests.e2e.conftest import WatchedPage
from tests.e2e.test_signin import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

# Lines without indentation: Playwright types leading spaces into CodeMirror as no-break spaces, which JSON refuses.
BROKEN = '{"Version": "2012-10-17",\n"Statement": [\n{"Effect": "Allow", "Action": "kms:Encrypt",,}\n]}'
FIXED = '{"Version": "2012-10-17",\n"Statement": [\n{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}\n]}'


def test_user_policy_and_access_key(watched_page: WatchedPage, admin: Persona) -> None:
    page = watched_page.page
    sign_in(watched_page, admin)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])

    watched_page.goto("/console/principals/")
    assert "Users (1)" in page.content()
    watched_page.screenshot("principals")
    page.get_by_label("User name").fill("carol")
    page.get_by_role("button", name="Create user").click()
    page.wait_for_url("**/principals/111122223333/users/carol/")
    assert "Created user carol." in page.content()
    assert "This user has no access keys" in page.content()

    page.get_by_role("link", name="Add a policy").click()
    page.get_by_label("Policy name").fill("encrypt")
    editor = page.locator("[data-policy-editor] .cm-content")
    editor.fill(BROKEN)
    problems = page.locator(".policy-report .policy-problems li")
    problems.first.wait_for()
    assert problems.first.inner_text().startswith("Line 3, column")
    editor.fill(FIXED)
    page.locator(".policy-report", has_text="No problems found.").wait_for()
    watched_page.screenshot("identity-policy")
    page.get_by_role("button", name="Create policy").click()
    # An identity policy decides who can do what: sudo mode first, and the confirmation then saves the draft.
    page.wait_for_url("**/console/confirm/**")
    page.get_by_label("Password for").fill(PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/users/carol/policies/encrypt/")
    assert "Saved policy encrypt on user carol." in page.content()
    stored = IdentityPolicy.objects.get(user__name="carol", name="encrypt").document
    assert stored == FIXED  # the textarea's CRLF line breaks (HTML form encoding) are stored as typed: LF

    page.get_by_role("link", name="carol").click()
    page.get_by_role("button", name="Create access key").click()
    if "/console/confirm/" in page.url:  # sudo mode is not open yet: the confirmation creates the key
        page.get_by_label("Password for").fill(PASSWORD)
        page.get_by_role("button", name="Confirm").click()
    page.get_by_role("heading", name="Access key created").wait_for()
    secret = page.locator("#secret-access-key").inner_text().strip()
    key = AccessKey.objects.get(user__name="carol")
    assert page.locator("#access-key-id").inner_text().strip() == key.access_key_id and len(secret) == 40
    page.get_by_role("button", name="Copy").nth(1).click()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    watched_page.screenshot("access-key-created")
    page.get_by_role("link", name="I have copied the secret").click()
    page.wait_for_url("**/users/carol/")
    assert key.access_key_id in page.content() and secret not in page.content()
    watched_page.screenshot("user")
