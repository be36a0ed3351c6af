"""The key policy tab: the people view, the JSON editor's live check, review with a diff, save (sudo), the version
history and restore.

Every route: anonymous is sent to sign in, the outsider is refused and nothing changes, the admin changes the policy
and the console's audit event is written, a bad draft is a 400 with the engine's words and the draft kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html import unescape
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from keys.default_policies import console_key_policy, default_key_policy
from keys.models import Key, KeyPolicyVersion
from kmsconsole.console.policy_check import identity_policy_check
from policies.engine import LOCKOUT_MESSAGE
from tests.api.conftest import make_key
from tests.conftest import Persona
from tests.console.conftest import audit_events

pytestmark = pytest.mark.django_db

Console = Callable[..., Client]
ACCOUNT = settings.KMS_ACCOUNT_ID
ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"


def url(name: str, key: Key, *args: Any) -> str:
    return reverse(f"console:{name}", args=[str(key.key_id), *args])


def policy_of(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, indent=2)


def allow(principal: str, action: Any = "kms:*", sid: str | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": action}
    statement["Resource"] = "*"
    return {"Sid": sid, **statement} if sid else statement


ROOT = allow(ROOT_ARN, sid="Enable IAM User Permissions")


def state(key: Key) -> tuple[str, list[tuple[int, str]]]:
    """The key's policy and its history, to prove a refused request changed nothing."""
    key.refresh_from_db()
    return key.policy, list(key.policy_versions.order_by("version").values_list("version", "document"))


def page(response: Any) -> str:
    return unescape(response.content.decode())


def console_shaped_key(*, administrators: list[str], users: list[str]) -> Key:
    """A key with the policy the console's create wizard writes."""
    policy = console_key_policy(
        account_id=ACCOUNT,
        key_spec="SYMMETRIC_DEFAULT",
        key_usage="ENCRYPT_DECRYPT",
        administrators=administrators,
        users=users,
    )
    return make_key("console-shaped", policy=policy)


@pytest.fixture
def key(admin: Persona) -> Key:
    """A key with the default policy (the account root, so IAM policies count: the admin may do anything)."""
    return make_key("policy editor")


def test_anonymous_is_sent_to_sign_in(key: Key) -> None:
    before = state(key)
    for method, name, args in [
        ("get", "key-policy", ()),
        ("post", "key-policy-validate", ()),
        ("post", "key-policy-review", ()),
        ("post", "key-policy-save", ()),
        ("get", "key-policy-versions", ()),
        ("get", "key-policy-restore", (1,)),
        ("post", "key-policy-restore", (1,)),
    ]:
        response = getattr(Client(), method)(url(name, key, *args), {"policy": policy_of(ROOT)})
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("login")), name
    assert state(key) == before


def test_outsider_is_refused_and_the_policy_is_unchanged(
    key: Key, outsider: Persona, console: Console
) -> None:
    before = state(key)
    client = console(outsider)
    tab = client.get(url("key-policy", key))
    assert tab.status_code == 403
    assert "Refused" in page(tab) and "kms:GetKeyPolicy" in page(tab)
    assert "Enable IAM User Permissions" not in page(tab)
    check = client.post(url("key-policy-validate", key), {"policy": policy_of(ROOT)})
    assert check.status_code == 403 and "Refused" in check.json()["error"]
    saved = client.post(url("key-policy-save", key), {"policy": policy_of(ROOT, allow(outsider.arn))})
    assert saved.status_code == 403
    assert "kms:PutKeyPolicy" in page(saved) or "kms:GetKeyPolicy" in page(saved)
    restored = client.post(url("key-policy-restore", key, 1), {})
    assert restored.status_code == 403
    assert client.get(url("key-policy-versions", key)).status_code == 403
    assert state(key) == before
    assert [event.decision for event in audit_events("PutKeyPolicy")] == ["denied", "denied"]


def test_the_tab_shows_the_policy_in_the_editor_and_findings_beside_it(
    admin: Persona, console: Console, make_user: Callable[..., Persona]
) -> None:
    alice = make_user("alice")
    key = console_shaped_key(administrators=[alice.arn], users=[admin.arn])
    response = console(admin).get(url("key-policy", key), {"view": "json"})
    assert response.status_code == 200
    text = page(response)
    assert "data-policy-editor" in text and 'name="policy"' in text
    assert "Allow access for Key Administrators" in text  # the document, in the textarea
    assert "Key administrators can grant themselves use of this key" in text
    assert f"lets {alice.arn} call kms:PutKeyPolicy and kms:CreateGrant" in text
    assert [event.decision for event in audit_events("GetKeyPolicy")] == ["allowed"]


def test_the_current_policy_as_json_for_the_editors_comparison(
    key: Key, admin: Persona, console: Console
) -> None:
    response = console(admin).get(url("key-policy", key), {"format": "json"})
    assert response.status_code == 200
    assert response.json() == {"policy": default_key_policy(ACCOUNT)}


def test_admin_saves_a_new_policy(key: Key, admin: Persona, console: Console) -> None:
    new = policy_of(ROOT, allow(admin.arn, ["kms:Encrypt", "kms:Decrypt"], sid="Admin use"))
    client = console(admin)
    response = client.post(url("key-policy-save", key), {"policy": new})
    assert response.status_code == 302
    assert response["Location"] == url("key-policy", key)
    policy, versions = state(key)
    assert policy == new
    assert versions[-1] == (2, new)
    saved = KeyPolicyVersion.objects.get(key=key, version=2)
    assert saved.created_by == admin.arn and not saved.bypassed_lockout_check
    events = audit_events("PutKeyPolicy")
    assert len(events) == 1 and events[0].decision == "allowed"
    assert events[0].key_arn == key.arn
    assert "Version 2 is now the key policy" in page(client.get(response["Location"]))


def test_invalid_json_is_reported_at_its_line_and_column(key: Key, admin: Persona, console: Console) -> None:
    broken = '{\n  "Version": "2012-10-17",\n  "Statement": [\n    {"Effect": "Allow"\n     "Action": "kms:*"}\n  ]\n}'
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(broken)
    client = console(admin)
    result = client.post(url("key-policy-validate", key), {"policy": broken}).json()
    assert result["valid"] is False
    assert result["errors"] == [
        {
            "line": expected.value.lineno,
            "column": expected.value.colno,
            "message": f"Syntax errors in policy. Expecting ',' delimiter at line {expected.value.lineno} "
            f"column {expected.value.colno}.",
        }
    ]
    assert (expected.value.lineno, expected.value.colno) == (5, 6)
    events = audit_events("kmsconsole:ValidateKeyPolicy")
    assert len(events) == 1 and events[0].decision == "allowed"

    before = state(key)
    saved = client.post(url("key-policy-save", key), {"policy": broken})
    assert saved.status_code == 400
    text = page(saved)
    assert "Syntax errors in policy. Expecting ',' delimiter at line 5 column 6." in text
    assert "Line 5, column 6" in text
    assert f">{broken}</textarea>" in text  # the draft, kept in the editor
    assert state(key) == before


def test_an_engine_error_in_statement_2_is_reported_at_that_statement(
    key: Key, admin: Persona, console: Console
) -> None:
    draft = policy_of(
        ROOT, {"Sid": "Bad", "Effect": "Allow", "Principal": {"AWS": admin.arn}, "Action": "Encrypt"}
    )
    lines = draft.splitlines()
    action_line = next(n for n, line in enumerate(lines, 1) if '"Action": "Encrypt"' in line)
    result = console(admin).post(url("key-policy-validate", key), {"policy": draft}).json()
    (error,) = result["errors"]
    assert error["line"] == action_line
    assert error["column"] == lines[action_line - 1].index('"Encrypt"') + 1
    assert 'statement 2 (Sid "Bad")' in error["message"]

    missing_effect = policy_of(ROOT, {"Principal": {"AWS": admin.arn}, "Action": "kms:*", "Resource": "*"})
    result = console(admin).post(url("key-policy-validate", key), {"policy": missing_effect}).json()
    statement_2 = [n for n, line in enumerate(missing_effect.splitlines(), 1) if line.strip() == "{"][2]
    assert result["errors"][0]["line"] == statement_2
    assert "Missing required field Effect" in result["errors"][0]["message"]


def test_a_principal_that_does_not_exist_is_reported_where_it_is_named(
    key: Key, admin: Persona, console: Console
) -> None:
    ghost = f"arn:aws:iam::{ACCOUNT}:user/ghost"
    draft = policy_of(ROOT, allow(admin.arn, "kms:Encrypt"), allow(ghost, "kms:Decrypt"))
    result = console(admin).post(url("key-policy-validate", key), {"policy": draft}).json()
    (error,) = result["errors"]
    assert error["line"] == next(n for n, line in enumerate(draft.splitlines(), 1) if ghost in line)
    assert f"{ghost} does not exist" in error["message"]


def test_another_accounts_missing_principal_is_not_named(
    key: Key, admin: Persona, console: Console, partner: Callable[..., Persona]
) -> None:
    """A principal of another account that does not exist is answered as AWS answers it, naming none, at the top of
    the draft: the same answer, with the same number of database statements, whichever of that account's
    principals is missing and whether the others exist. The caller's own missing principal is still named where it
    is (see above)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    partner("bob")
    other = "arn:aws:iam::444455556666:user/"
    client = console(admin)
    drafts = (
        policy_of(ROOT, allow(f"{other}bob", "kms:Decrypt"), allow(f"{other}gh1", "kms:Decrypt")),
        policy_of(ROOT, allow(f"{other}gh2", "kms:Decrypt"), allow(f"{other}bob", "kms:Decrypt")),
        policy_of(ROOT, allow(f"{other}gh3", "kms:Decrypt"), allow(f"{other}gh4", "kms:Decrypt")),
    )
    client.post(url("key-policy-validate", key), {"policy": drafts[0]})  # caches and session warmed
    answers, statements = [], []
    for draft in drafts:
        with CaptureQueriesContext(connection) as queries:
            answers.append(client.post(url("key-policy-validate", key), {"policy": draft}).json())
        statements.append(len(queries))
    generic = {
        "line": 1,
        "column": 1,
        "message": "Policy contains a statement with one or more invalid principals.",
    }
    assert [answer["errors"] for answer in answers] == [[generic]] * 3
    assert not any(answer["valid"] for answer in answers)
    assert len(set(statements)) == 1, statements

    # With a missing principal of the caller's own account too: that one is named where it stands.
    ghost = f"arn:aws:iam::{ACCOUNT}:user/ghost"
    both = policy_of(ROOT, allow(ghost, "kms:Decrypt"), allow(f"{other}gh5", "kms:Decrypt"))
    named, unnamed = client.post(url("key-policy-validate", key), {"policy": both}).json()["errors"]
    assert named["line"] == next(n for n, line in enumerate(both.splitlines(), 1) if ghost in line)
    assert f"{ghost} does not exist" in named["message"] and unnamed == generic

    # The review step and a refused save say no more.
    for step in ("key-policy-review", "key-policy-save"):
        response = client.post(url(step, key), {"policy": drafts[0]})
        assert response.status_code == 400
        assert generic["message"] in page(response) and "does not exist" not in page(response)


def test_lockout_is_warned_and_the_save_refused_unless_bypassed(
    key: Key, admin: Persona, console: Console, make_user: Callable[..., Persona]
) -> None:
    bob = make_user("bob")
    without_me = policy_of(allow(bob.arn, sid="Only Bob"))
    client = console(admin)
    result = client.post(url("key-policy-validate", key), {"policy": without_me}).json()
    assert result["valid"] is True and result["lockout"] == LOCKOUT_MESSAGE

    review = client.post(url("key-policy-review", key), {"policy": without_me})
    assert review.status_code == 200
    assert "You could lock yourself out." in page(review) and LOCKOUT_MESSAGE in page(review)
    assert 'name="bypass_lockout_safety_check"' in page(review)
    assert 'name="bypass_lockout_safety_check" checked' not in page(review)

    before = state(key)
    refused = client.post(url("key-policy-save", key), {"policy": without_me})
    assert refused.status_code == 400
    assert LOCKOUT_MESSAGE in page(refused) and "Bypass the lockout safety check" in page(refused)
    assert state(key) == before

    saved = client.post(
        url("key-policy-save", key), {"policy": without_me, "bypass_lockout_safety_check": "on"}
    )
    assert saved.status_code == 302
    assert state(key)[0] == without_me
    assert KeyPolicyVersion.objects.get(key=key, version=2).bypassed_lockout_check
    events = audit_events("PutKeyPolicy")
    assert [
        (event.error_code, event.request_parameters["BypassPolicyLockoutSafetyCheck"]) for event in events
    ] == [
        ("MalformedPolicyDocumentException", False),
        ("", True),
    ]


def test_review_shows_the_lines_added_and_removed(key: Key, admin: Persona, console: Console) -> None:
    draft = default_key_policy(ACCOUNT).replace('"Action" : "kms:*"', '"Action" : "kms:Describe*"')
    response = console(admin).post(url("key-policy-review", key), {"policy": draft})
    assert response.status_code == 200
    text = page(response)
    # Both sides are laid out alike (two-space indent) before the diff.
    assert '<span class="diff-del">-      "Action": "kms:*",</span>' in text
    assert '<span class="diff-add">+      "Action": "kms:Describe*",</span>' in text
    assert 'data-policy-merge data-original="#policy-current"' in text
    assert f'<textarea name="policy" hidden>{draft}</textarea>' in text
    assert "The account cannot manage this key" in text  # the draft's findings
    assert state(key)[1] == [(1, default_key_policy(ACCOUNT))]


def test_re_indenting_alone_is_not_a_change_in_the_diff(key: Key, admin: Persona, console: Console) -> None:
    draft = json.dumps(json.loads(default_key_policy(ACCOUNT)), indent=8)
    text = page(console(admin).post(url("key-policy-review", key), {"policy": draft}))
    assert 'class="diff-add"' not in text and 'class="diff-del"' not in text


def test_the_draft_survives_the_sudo_confirmation(key: Key, admin: Persona, console: Console) -> None:
    draft = policy_of(ROOT, allow(admin.arn, "kms:Encrypt", sid="Mine"))
    client = console(admin, sudo=False)
    assert client.post(url("key-policy-review", key), {"policy": draft}).status_code == 200
    before = state(key)
    response = client.post(
        url("key-policy-save", key),
        {"policy": draft},
        HTTP_REFERER="http://testserver" + url("key-policy-review", key),
    )
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("console:sudo"))
    assert state(key) == before
    assert audit_events("PutKeyPolicy") == []
    again = client.get(url("key-policy-review", key))  # where the confirmation sends the browser back
    assert again.status_code == 200
    assert f'<textarea name="policy" hidden>{draft}</textarea>' in page(again)
    assert "You will be asked to confirm your password" in page(again)


def test_restoring_version_1_saves_its_document_as_a_new_version(
    key: Key, admin: Persona, console: Console
) -> None:
    first = default_key_policy(ACCOUNT)
    client = console(admin)
    second = policy_of(ROOT, allow(admin.arn, "kms:Encrypt", sid="Second"))
    assert client.post(url("key-policy-save", key), {"policy": second}).status_code == 302

    review = client.get(url("key-policy-restore", key, 1))
    assert review.status_code == 200
    assert "Restore version 1" in page(review) and '<span class="diff-add">' in page(review)
    assert state(key)[1][-1] == (2, second)

    response = client.post(url("key-policy-restore", key, 1), {})
    assert response.status_code == 302
    policy, versions = state(key)
    assert policy == first
    assert versions[-1] == (3, first)
    assert [event.decision for event in audit_events("PutKeyPolicy")] == ["allowed", "allowed"]
    assert audit_events("PutKeyPolicy")[-1].request_parameters["Version"] == 1


def test_restoring_a_version_that_does_not_exist_changes_nothing(
    key: Key, admin: Persona, console: Console
) -> None:
    before = state(key)
    response = console(admin).post(url("key-policy-restore", key, 9), {})
    assert response.status_code == 404
    assert "Version 9 of the policy" in page(response)
    assert state(key) == before


def test_the_history_lists_each_version_with_author_bypass_and_diff(
    key: Key, admin: Persona, console: Console, make_user: Callable[..., Persona]
) -> None:
    client = console(admin)
    bob = make_user("bob")
    client.post(url("key-policy-save", key), {"policy": policy_of(ROOT, allow(bob.arn, "kms:Encrypt"))})
    client.post(
        url("key-policy-save", key),
        {
            "policy": policy_of(allow(bob.arn), allow(admin.arn, "kms:GetKeyPolicy")),
            "bypass_lockout_safety_check": "on",
        },
    )
    response = client.get(url("key-policy-versions", key))
    assert response.status_code == 200
    text = page(response)
    for version in (1, 2, 3):
        assert f"Version {version}</strong>" in text
    assert text.count(f"<code>{admin.arn}</code>") == 2
    assert text.count("Lockout safety check bypassed") == 1
    assert "Changes from version 2" in text and "Changes from version 1" in text
    added = re.findall(r'<span class="diff-add">\+([^<]*)</span>', text)
    assert any(bob.arn in line for line in added)
    assert url("key-policy-restore", key, 1) in text and url("key-policy-restore", key, 3) not in text
    assert [event.decision for event in audit_events("kmsconsole:ListKeyPolicyVersions")] == ["allowed"]
    for page_number in ("2", "99999999999999999999999", "x"):
        assert client.get(url("key-policy-versions", key), {"page": page_number}).status_code == 200


def test_people_view_lists_administrators_and_users_and_adds_a_user(
    admin: Persona, console: Console, make_user: Callable[..., Persona]
) -> None:
    alice, carol = make_user("alice"), make_user("carol")
    key = console_shaped_key(administrators=[admin.arn], users=[alice.arn])
    client = console(admin)
    view = client.get(url("key-policy", key))
    assert view.status_code == 200
    text = page(view)
    assert "Key administrators" in text and "Key users" in text
    assert f"<code>{admin.arn}</code>" in text and f"<code>{alice.arn}</code>" in text
    assert f'<option value="{carol.arn}">' in text  # the account's users to choose from

    review = client.post(
        url("key-policy-review", key), {"role": "user", "change": "add", "principal": carol.arn}
    )
    assert review.status_code == 200
    draft = review.context["draft"]
    assert '<span class="diff-add">' in page(review)
    assert client.post(url("key-policy-save", key), {"policy": draft}).status_code == 302
    statements = {s["Sid"]: s for s in json.loads(state(key)[0])["Statement"]}
    assert statements["Allow use of the key"]["Principal"]["AWS"] == [alice.arn, carol.arn]
    assert statements["Allow attachment of persistent resources"]["Principal"]["AWS"] == [
        alice.arn,
        carol.arn,
    ]
    assert statements["Allow access for Key Administrators"]["Principal"]["AWS"] == [admin.arn]


def test_people_view_removes_the_last_user_and_adds_one_by_typed_arn(
    admin: Persona, console: Console, make_user: Callable[..., Persona]
) -> None:
    alice, dave = make_user("alice"), make_user("dave")
    key = console_shaped_key(administrators=[], users=[alice.arn])
    client = console(admin)
    removed = client.post(
        url("key-policy-review", key), {"role": "user", "change": "remove", "principal": alice.arn}
    )
    sids = [s["Sid"] for s in json.loads(removed.context["draft"])["Statement"]]
    assert sids == ["Enable IAM User Permissions"]

    added = client.post(
        url("key-policy-review", key), {"role": "administrator", "change": "add", "arn": dave.arn}
    )
    statements = json.loads(added.context["draft"])["Statement"]
    assert [s["Sid"] for s in statements] == [
        "Enable IAM User Permissions",
        "Allow access for Key Administrators",
        "Allow use of the key",
        "Allow attachment of persistent resources",
    ]
    assert statements[1]["Principal"]["AWS"] == [dave.arn]


def test_people_view_refuses_what_is_not_a_principal_with_the_input_kept(
    key: Key, admin: Persona, console: Console
) -> None:
    before = state(key)
    client = console(admin)
    response = client.post(
        url("key-policy-review", key), {"role": "user", "change": "add", "arn": "not-an-arn"}
    )
    assert response.status_code == 400
    assert "Enter the ARN of a user, role or account" in page(response)
    assert 'value="not-an-arn"' in page(response)
    ghost = f"arn:aws:iam::{ACCOUNT}:user/ghost"
    response = client.post(url("key-policy-review", key), {"role": "user", "change": "add", "arn": ghost})
    assert response.status_code == 400
    assert f"{ghost} does not exist" in page(response)
    assert state(key) == before


def test_a_policy_of_another_shape_says_so_and_offers_the_json_view(admin: Persona, console: Console) -> None:
    key = make_key("custom", policy=policy_of(ROOT, allow(admin.arn, "kms:Encrypt", sid="Custom")))
    client = console(admin)
    response = client.get(url("key-policy", key), {"view": "people"})
    assert response.status_code == 200
    assert "This policy is not in the console's default shape" in page(response)
    assert url("key-policy", key) + "?view=json" in page(response)
    assert client.get(url("key-policy", key)).context["view"] == "json"


def test_the_default_policy_is_shown_as_people_with_none_named(
    key: Key, admin: Persona, console: Console
) -> None:
    response = console(admin).get(url("key-policy", key))
    assert response.context["view"] == "people"
    assert "No key administrators" in page(response) and "No key users" in page(response)


def test_save_without_sudo_redirects_to_sudo_and_changes_nothing(
    key: Key, admin: Persona, console: Console
) -> None:
    before = state(key)
    client = console(admin, sudo=False)
    for target, data in [
        (url("key-policy-save", key), {"policy": policy_of(ROOT)}),
        (url("key-policy-restore", key, 1), {}),
    ]:
        response = client.post(target, data)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("console:sudo"))
    assert state(key) == before
    assert audit_events("PutKeyPolicy") == []


def test_an_unknown_key_is_not_found(admin: Persona, console: Console) -> None:
    response = console(admin).get(
        reverse("console:key-policy", args=["00000000-0000-4000-8000-000000000000"])
    )
    assert response.status_code == 404


def position_of(text: str, needle: str, occurrence: int = 0) -> tuple[int, int]:
    """1-based line and column of the `occurrence`-th `needle` in `text`."""
    offset = -1
    for _ in range(occurrence + 1):
        offset = text.index(needle, offset + 1)
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


LOCATED = [
    (
        "duplicate name",
        '{"Version": "2012-10-17",\n "Statement": {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},\n'
        ' "Version": "2012-10-17"}',
        ('"Version"', 1),
    ),
    (
        "a character that is not allowed",
        '{"Version": "2012-10-17",\n "Statement": [{"Sid": "caf\u0101", "Effect": "Allow"}]}',
        ("\u0101", 0),
    ),
    (
        "a lone Statement object",
        '{"Version": "2012-10-17",\n "Statement": {\n  "Effect": "Allow",\n  "Action": "kms:*",\n  "Resource": 3}}',
        ('"Resource"', 0),
    ),
    (
        "an unknown condition operator",
        '{"Version": "2012-10-17", "Statement": [\n {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},\n'
        ' {"Effect": "Allow", "Action": "kms:*", "Resource": "*",\n'
        '  "Condition": {"StringSorta": {"aws:username": "a"}}}]}',
        ('"Condition"', 0),
    ),
    (
        "the second item of an Action list",
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*",\n "Action": [\n  "kms:Encrypt",\n'
        '  "Decrypt"]}]}',
        ('"Decrypt"', 0),
    ),
]


@pytest.mark.parametrize(("name", "text", "where"), LOCATED, ids=[case[0] for case in LOCATED])
def test_identity_policy_errors_are_located_in_the_text(name: str, text: str, where: tuple[str, int]) -> None:
    result = identity_policy_check(text)
    assert result["valid"] is False
    (error,) = result["errors"]
    assert (error["line"], error["column"]) == position_of(text, *where), error["message"]


def test_identity_policy_check_gives_findings_with_their_line() -> None:
    text = '{"Version": "2012-10-17",\n "Statement": [\n  {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}'
    result = identity_policy_check(text)
    assert result["valid"] is True and result["lockout"] == ""
    (finding,) = result["findings"]
    assert finding["id"] == "identity-full-kms-access" and finding["line"] == 3


def test_a_reader_of_the_policy_gets_an_editor_that_checks_nothing(
    key: Key, console: Console, make_user: Callable[..., Persona], partner: Callable[..., Persona]
) -> None:
    """Checking a draft is PutKeyPolicy's dry run: it tells whether each principal it names exists, in any
    account. A caller who may read the policy but not put it gets an editor that checks nothing as it is typed
    (no validation URL, a sentence saying why, no refused check in the trail) and offers no change, and a check it
    posts anyway is refused alike for a principal that exists and one that does not."""
    reader = make_user("reader", json.dumps(_identity("kms:GetKeyPolicy")))
    partner("bob")
    client = console(reader)
    tab = client.get(url("key-policy", key), {"view": "json"})
    assert tab.status_code == 200
    assert "data-validate-url" not in page(tab) and url("key-policy-validate", key) not in page(tab)
    assert "your access does not allow kms:PutKeyPolicy on this key" in page(tab)
    assert "Review changes" not in page(tab) and " readonly" in page(tab)  # read-only: no change offered
    assert audit_events("kmsconsole:ValidateKeyPolicy") == []
    refusals = []
    for principal in ("arn:aws:iam::444455556666:user/bob", "arn:aws:iam::444455556666:user/ghost"):
        draft = policy_of(ROOT, allow(principal, "kms:Decrypt"))
        check = client.post(url("key-policy-validate", key), {"policy": draft})
        assert check.status_code == 403 and "kms:PutKeyPolicy" in check.json()["error"]
        refusals.append(check.json())
    assert refusals[0] == refusals[1]
    assert [event.decision for event in audit_events("kmsconsole:ValidateKeyPolicy")] == ["denied", "denied"]


def test_a_key_administrator_checks_drafts_inline_reviews_and_saves(
    console: Console, make_user: Callable[..., Persona]
) -> None:
    """A key administrator the key policy names (no IAM policy at all: kms:PutKeyPolicy comes from the policy)
    keeps the whole editor: the live check marks a principal that does not exist where it is named, and a valid
    draft goes through the review to the save."""
    alice = make_user("alice")
    key = console_shaped_key(administrators=[alice.arn], users=[])
    client = console(alice)
    tab = client.get(url("key-policy", key), {"view": "json"})
    assert tab.status_code == 200
    assert f'data-validate-url="{url("key-policy-validate", key)}"' in page(tab)
    assert "policy-read-only" not in page(tab)
    document = json.loads(key.policy)
    ghost = f"arn:aws:iam::{ACCOUNT}:user/ghost"
    document["Statement"].append(allow(ghost, "kms:Decrypt", sid="Ghost"))
    draft = json.dumps(document, indent=2)
    result = client.post(url("key-policy-validate", key), {"policy": draft}).json()
    assert result["valid"] is False
    (error,) = result["errors"]
    assert f"{ghost} does not exist" in error["message"]
    assert error["line"] == next(n for n, line in enumerate(draft.splitlines(), 1) if ghost in line)
    document["Statement"][-1] = allow(alice.arn, "kms:DescribeKey", sid="Describe")
    valid = json.dumps(document, indent=2)
    assert client.post(url("key-policy-validate", key), {"policy": valid}).json()["valid"] is True
    review = client.post(url("key-policy-review", key), {"policy": valid})
    assert review.status_code == 200 and "Review the changes" in page(review)
    saved = client.post(url("key-policy-save", key), {"policy": valid})
    assert saved.status_code == 302
    assert state(key)[0] == valid
    decisions = [event.decision for event in audit_events("kmsconsole:ValidateKeyPolicy")]
    assert decisions == ["allowed", "allowed", "allowed"]


def _identity(*actions: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
    }
