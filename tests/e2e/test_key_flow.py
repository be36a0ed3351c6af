"""The security admin's day in a real browser (issue 6): create a symmetric key with the wizard choosing an
administrator and a user; open its policy, break the JSON and see the error at its line, fix it, see the diff
and save (through sudo mode); revoke a grant; schedule deletion and cancel it; then sign in as a key
administrator who is not a key user and see that encrypting is refused. Every page is watched for JavaScript
errors, console errors (CSP violations included) and 5xx, and the main pages are saved as screenshots."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from grants.models import Grant
from grants.services.creation import grant_create
from keys.models import Key
from keys.services import tags
from kmsconsole.audit.models import AuditEvent
from tests.conftest import Persona, as_operator
from tests.console.conftest import PASSWORD
from tests.e2e.conftest import WatchedPage
from tests.e2e.test_signin import sign_in
from tests.policies.analyzer_support import identity_policy, make_key

pytestmark = pytest.mark.django_db(transaction=True)


def policy_text(document: dict[str, object]) -> str:
    # One member per line and no indentation: Playwright types leading spaces into CodeMirror as no-break
    # spaces, which JSON refuses.
    return json.dumps(document, indent=0)


def confirm_password(watched: WatchedPage) -> None:
    page = watched.page
    page.wait_for_load_state()
    assert "/console/confirm/" in page.url, "a destructive action must ask for the password first"
    watched.screenshot("sudo")
    page.get_by_label("Password for").fill(PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_load_state()


def test_a_key_from_creation_to_refusal(
    watched_page: WatchedPage, admin: Persona, make_user: Callable[..., Persona]
) -> None:
    key_admin = make_user("key-admin")
    app = make_user("app-user")
    page = watched_page.page
    sign_in(watched_page, admin)

    # The wizard.
    watched_page.goto("/console/keys/")
    assert "No keys yet" in page.content()
    page.get_by_role("link", name="Create key").first.click()
    page.get_by_role("radio", name="Symmetric One AES-256 key").check()
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Alias").fill("e2e")
    page.get_by_label("Description").fill("made in the browser")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("admin", exact=True).check()
    page.get_by_label("key-admin", exact=True).check()
    page.get_by_role("button", name="Next").click()
    page.get_by_label("app-user", exact=True).check()
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Create key").wait_for()  # the review step (content() does not wait)
    assert key_admin.arn in page.content() and app.arn in page.content()
    watched_page.screenshot("key-create-review")
    page.get_by_role("button", name="Create key").click()
    page.get_by_role("heading", name="General configuration").wait_for()
    key = Key.objects.get(description="made in the browser")
    assert "alias/e2e" in page.content()
    watched_page.screenshot("key-general")
    watched_page.goto("/console/keys/")
    assert str(key.key_id) in page.content()
    watched_page.screenshot("keys")

    # The policy: a JSON error marked at its line, fixed, the diff, saved behind sudo.
    watched_page.goto(f"/console/keys/{key.key_id}/policy/")
    assert "key-admin" in page.content()
    assert "grant themselves use of this key" in page.content()  # the finding beside the policy
    watched_page.screenshot("key-policy-people")
    page.get_by_role("link", name="Policy document (JSON)").first.click()
    document = json.loads(key.policy)
    users = next(s for s in document["Statement"] if s.get("Sid") == "Allow use of the key")
    users["Action"] = [a for a in users["Action"] if a != "kms:ReEncrypt*"]
    fixed = policy_text(document)
    lines = fixed.split("\n")
    broken_line = next(i for i, line in enumerate(lines) if '"Sid": "Allow use of the key"' in line)
    broken = "\n".join([*lines[:broken_line], lines[broken_line] + ",", *lines[broken_line + 1 :]])
    editor = page.locator("[data-policy-editor] .cm-content")
    editor.fill(broken)
    # The engine's error, placed at its line: a link that moves the cursor there, and a lint mark in the text.
    jump = page.get_by_role("button", name=re.compile(r"^Line \d+, column \d+$"))
    jump.first.wait_for()
    assert jump.first.inner_text() == f"Line {broken_line + 1}, column {len(lines[broken_line]) + 1}"
    jump.first.click()  # the cursor moves to the error, which scrolls into view with its lint mark
    assert page.locator(".cm-lintRange-error").count() >= 1
    watched_page.screenshot("key-policy-error")
    # Select all, delete, type: a real person's way of replacing text (a fill() across CodeMirror's error marks
    # makes Chromium's editing code copy their styles into style attributes, which the CSP refuses).
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(fixed)
    jump.first.wait_for(state="detached")
    page.locator(
        "#policy-report", has_text="Key administrators can grant themselves use of this key"
    ).wait_for()
    page.get_by_role("button", name="Review changes").click()
    page.get_by_role("heading", name="Review the changes").wait_for()
    watched_page.screenshot("key-policy-review")
    assert "kms:ReEncrypt*" in page.locator("main").inner_text()  # the removed line is in the diff
    page.get_by_role("button", name="Save the key policy").click()
    confirm_password(watched_page)
    # The password confirmed, the save that asked for it is done: nothing to submit again.
    page.wait_for_url(f"**/console/keys/{key.key_id}/policy/")
    key.refresh_from_db()
    assert "kms:ReEncrypt*" not in key.policy and key.policy_versions.count() == 2
    watched_page.goto(f"/console/keys/{key.key_id}/policy/versions/")
    watched_page.screenshot("key-policy-versions")

    # A grant, revoked from its tab.
    grant = as_operator(
        "CreateGrant",
        lambda ctx: grant_create(
            ctx=ctx, key_id=str(key.key_id), grantee_principal=app.arn, operations=["Encrypt"]
        ),
    )
    watched_page.goto(f"/console/keys/{key.key_id}/grants/")
    watched_page.screenshot("key-grants")
    page.get_by_role("link", name="Revoke").first.click()
    page.get_by_role("button", name="Revoke grant").click()
    page.wait_for_load_state()
    assert not Grant.objects.filter(grant_id=grant.grant.grant_id, removal_requested_at__isnull=True).exists()
    assert page.get_by_role("link", name="Revoke").count() == 0  # the grant is gone from the list

    # Deletion: scheduled with the key id typed to confirm, then cancelled.
    watched_page.goto(f"/console/keys/{key.key_id}/")
    schedule = page.get_by_role("button", name="Schedule deletion")
    assert schedule.is_disabled()
    page.get_by_label("Waiting period").fill("7")
    page.get_by_label("To confirm, type the key id").fill(str(key.key_id))
    assert schedule.is_enabled()
    schedule.click()
    page.get_by_role("button", name="Cancel key deletion").wait_for()
    key.refresh_from_db()
    assert key.state == "PendingDeletion"
    watched_page.screenshot("key-pending-deletion")
    page.get_by_role("button", name="Cancel key deletion").click()
    page.get_by_role("button", name="Enable key").wait_for()
    key.refresh_from_db()
    assert key.state == "Disabled"  # AWS: a cancelled deletion leaves the key disabled
    page.get_by_role("button", name="Enable key").click()
    page.wait_for_load_state()
    key.refresh_from_db()
    assert key.state == "Enabled"

    watched_page.goto("/")
    watched_page.screenshot("overview")

    # The key administrator may manage the key but not use it.
    page.get_by_role("button", name="Sign out").click()
    sign_in(watched_page, key_admin)
    watched_page.goto(f"/console/keys/{key.key_id}/crypto/")
    page.get_by_label("Text to encrypt").fill("hello from a key administrator")
    page.get_by_role("button", name="Encrypt", exact=True).click()
    refusal = page.locator("#try-error")
    refusal.wait_for()
    assert "Refused." in refusal.inner_text() and "kms:Encrypt" in refusal.inner_text()
    assert page.locator("#try-ciphertext").count() == 0
    watched_page.screenshot("key-crypto-refused")


def test_a_readers_policy_editor_checks_nothing_as_it_is_typed(
    watched_page: WatchedPage, make_user: Callable[..., Persona]
) -> None:
    """Checking a draft needs kms:PutKeyPolicy: the editor of a caller who may only read the policy is read-only
    (typing changes nothing, no Review changes), posts no check (none refused in the audit trail), and keeps the
    findings the page came with. The Tags tab of that reader is read-only too: no form, no Remove, and a sentence
    naming the action its access lacks."""
    reader = make_user("reader", identity_policy("kms:GetKeyPolicy", "kms:ListResourceTags"))
    key = make_key()
    page = watched_page.page
    posted: list[str] = []
    page.on("request", lambda request: posted.append(request.url) if request.method == "POST" else None)
    sign_in(watched_page, reader)
    watched_page.goto(f"/console/keys/{key.key_id}/policy/?view=json")
    page.locator("#policy-read-only").wait_for()
    report = page.locator("#policy-report").inner_text()
    editor = page.locator("[data-policy-editor] .cm-content")
    document = editor.inner_text()
    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.insert_text(" ")
    page.wait_for_timeout(1500)  # past the editor's debounce
    assert [url for url in posted if "/policy/validate/" in url] == []
    assert page.locator("#policy-report").inner_text() == report
    assert not AuditEvent.objects.filter(operation="kmsconsole:ValidateKeyPolicy").exists()
    assert editor.inner_text() == document and editor.get_attribute("contenteditable") == "false"
    assert page.get_by_role("button", name="Review changes").count() == 0

    as_operator(
        "TagResource",
        lambda ctx: tags.key_tag(
            ctx=ctx, key_id=str(key.key_id), tags=[{"TagKey": "team", "TagValue": "ops"}]
        ),
    )
    watched_page.goto(f"/console/keys/{key.key_id}/tags/")
    read_only = page.locator("#tags-read-only")
    read_only.wait_for()
    assert "your access does not allow kms:TagResource" in read_only.inner_text()
    assert page.get_by_role("cell", name="ops").count() == 1
    assert page.get_by_role("button", name="Save tag").count() == 0
    assert page.get_by_role("button", name=re.compile("^Remove tag")).count() == 0
    watched_page.screenshot("key-tags-read-only")
