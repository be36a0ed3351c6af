"""Inline identity policies in the console: view, create, replace, delete, and the editor's live check."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.test import Client

from policies.models import IamUser, IdentityPolicy
from tests.conftest import Persona
from tests.console.conftest import audit_events
from tests.console.principals_support import (
    ACCOUNT,
    POLICY,
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
OWNERS = {"user": "outsider", "role": "app", "group": "devs"}


def owner_of(kind: str) -> None:
    if kind == "role":
        seed_role("app")
    elif kind == "group":
        seed_group("devs")


@pytest.mark.parametrize("kind", ["user", "role", "group"])
def test_admin_creates_an_inline_policy(
    kind: str, console: Console, admin: Persona, outsider: Persona
) -> None:
    owner_of(kind)
    client = console(admin)
    form_page = client.get(url("identity-policy-create", ACCOUNT, kind, OWNERS[kind]))
    assert form_page.status_code == 200 and 'name="policy_name"' in text(form_page)
    response = client.post(
        url("identity-policy-create", ACCOUNT, kind, OWNERS[kind]),
        {"policy_name": "encrypt", "policy": POLICY},
    )
    assert response.status_code == 302
    assert response["Location"] == url("identity-policy", ACCOUNT, kind, OWNERS[kind], "encrypt")
    stored = IdentityPolicy.objects.get(**{f"{kind}__name": OWNERS[kind], "name": "encrypt"})
    assert stored.document == POLICY
    event = audit_events(f"iam:Put{kind.capitalize()}Policy")[-1]
    assert (event.caller_arn, event.decision) == (admin.arn, "allowed")
    assert f"Saved policy encrypt on {kind} {OWNERS[kind]}." in text(client.get(response["Location"]))


def test_the_editor_shows_the_document_in_the_shared_editor_markup(console: Console, admin: Persona) -> None:
    page = text(console(admin).get(url("identity-policy", ACCOUNT, "user", "admin", "policy-0")))
    validate = url("identity-policy-validate")
    assert f'<div data-policy-editor data-kind="identity" data-validate-url="{validate}">' in page
    assert '<textarea id="id_policy" name="policy"' in page
    assert "js/policy-editor.js" in page and "css/policy-editor.css" in page
    assert "&quot;Action&quot;: &quot;*&quot;" in page  # the admin's Allow-all document, escaped
    assert audit_events("iam:GetUserPolicy", decision="allowed")


def test_admin_replaces_a_policy(console: Console, admin: Persona, outsider: Persona) -> None:
    seed_policy(IamUser.objects.get(name="outsider"), "encrypt")
    replacement = POLICY.replace("kms:Encrypt", "kms:Decrypt")
    response = console(admin).post(
        url("identity-policy", ACCOUNT, "user", "outsider", "encrypt"), {"policy": replacement}
    )
    assert response.status_code == 302
    assert IdentityPolicy.objects.get(user__name="outsider", name="encrypt").document == replacement
    assert last_event("iam:PutUserPolicy").interface == "console"


def test_a_malformed_document_is_a_400_kept_as_typed(
    console: Console, admin: Persona, outsider: Persona
) -> None:
    seed_policy(IamUser.objects.get(name="outsider"), "encrypt")
    before = principals_state()
    broken = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Encrypt"'
    response = console(admin).post(
        url("identity-policy", ACCOUNT, "user", "outsider", "encrypt"), {"policy": broken}
    )
    assert response.status_code == 400
    page = text(response)
    assert 'id="policy-error" role="alert">' in page and "(line 1, column " in page
    assert "{&quot;Version&quot;: &quot;2012-10-17&quot;, &quot;Statement&quot;" in page
    assert principals_state() == before
    assert last_event("iam:PutUserPolicy").error_code == "MalformedPolicyDocumentException"


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        (
            {"policy_name": "has space", "policy": POLICY},
            "policy-name-error",
            "The specified value for policyName",
        ),
        ({"policy_name": "ok", "policy": "not json"}, "policy-error", ""),
        (
            {"policy_name": "policy-0", "policy": POLICY},
            "policy-name-error",
            "This user already has a policy named",
        ),
    ],
)
def test_bad_new_policy_is_a_400_and_replaces_nothing(
    form: dict[str, str], field: str, words: str, console: Console, admin: Persona
) -> None:
    before = principals_state()
    response = console(admin).post(url("identity-policy-create", ACCOUNT, "user", "admin"), form)
    assert response.status_code == 400
    assert f'id="{field}" role="alert">{words}' in text(response)
    assert f'value="{form["policy_name"]}"' in text(response)
    assert principals_state() == before


def test_outsider_cannot_read_write_or_delete_policies(
    console: Console, outsider: Persona, admin: Persona
) -> None:
    before = principals_state()
    client = console(outsider)
    responses = [
        client.get(url("identity-policy", ACCOUNT, "user", "admin", "policy-0")),
        client.post(url("identity-policy", ACCOUNT, "user", "admin", "policy-0"), {"policy": POLICY}),
        client.post(
            url("identity-policy-create", ACCOUNT, "user", "outsider"),
            {"policy_name": "mine", "policy": POLICY},
        ),
        client.get(url("identity-policy-delete", ACCOUNT, "user", "admin", "policy-0")),
        client.post(url("identity-policy-delete", ACCOUNT, "user", "admin", "policy-0")),
    ]
    assert [response.status_code for response in responses] == [403] * 5
    assert all("Refused." in text(response) for response in responses)
    assert '"Action": "*"' not in text(responses[0]) and "&quot;Action&quot;" not in text(responses[0])
    assert principals_state() == before
    for operation in ("iam:GetUserPolicy", "iam:PutUserPolicy", "iam:DeleteUserPolicy"):
        assert audit_events(operation, caller_arn=outsider.arn, decision="denied")


def test_admin_deletes_a_policy_after_confirming(console: Console, admin: Persona) -> None:
    group = seed_group("devs")
    seed_policy(group, "team")
    client = console(admin)
    confirm = client.get(url("identity-policy-delete", ACCOUNT, "group", "devs", "team"))
    assert confirm.status_code == 200 and "Delete policy team?" in text(confirm)
    assert IdentityPolicy.objects.filter(group=group).exists()  # asking changes nothing
    response = client.post(url("identity-policy-delete", ACCOUNT, "group", "devs", "team"))
    assert response.status_code == 302 and response["Location"] == url("group", ACCOUNT, "devs")
    assert not IdentityPolicy.objects.filter(group=group).exists()
    assert audit_events("iam:DeleteGroupPolicy", caller_arn=admin.arn, decision="allowed")


def test_unknown_policy_is_404(console: Console, admin: Persona) -> None:
    response = console(admin).get(url("identity-policy", ACCOUNT, "user", "admin", "nope"))
    assert response.status_code == 404 and "The user policy with name nope cannot be found." in text(response)


# The editor's live check.


def test_validate_returns_the_check_as_json(console: Console, admin: Persona) -> None:
    client = console(admin)
    valid = client.post(url("identity-policy-validate"), {"policy": POLICY})
    assert valid.status_code == 200 and valid.json()["valid"] is True
    broken = client.post(
        url("identity-policy-validate"),
        json.dumps({"policy": '{\n  "Version": "2012-10-17",\n  "Statement": [\n'}),
        content_type="application/json",
    )
    body = broken.json()
    assert broken.status_code == 200 and body["valid"] is False
    assert body["errors"] and {"line", "column", "message"} <= set(body["errors"][0])
    event = last_event("kmsconsole:ValidateIdentityPolicy")
    assert (event.interface, event.caller_arn, event.decision) == ("console", admin.arn, "allowed")
    assert IdentityPolicy.objects.filter(name="policy-0").count() == 1  # nothing saved


@pytest.mark.parametrize("body", [b'{"policy": 5}', b"not json", b"[1, 2]"])
def test_validate_says_when_the_body_is_not_what_the_editor_sends(
    console: Console, admin: Persona, body: bytes
) -> None:
    response = console(admin).post(url("identity-policy-validate"), body, content_type="application/json")
    assert response.status_code == 400
    assert 'a text member "policy"' in response.json()["error"]  # not "Policy document is empty"
    assert last_event("kmsconsole:ValidateIdentityPolicy").decision == "failed"


def test_validate_is_refused_without_permission(console: Console, outsider: Persona) -> None:
    response = console(outsider).post(url("identity-policy-validate"), {"policy": POLICY})
    assert response.status_code == 403
    assert response.json()["error"].startswith("Refused.")
    assert last_event("kmsconsole:ValidateIdentityPolicy").decision == "denied"


def test_validate_needs_post(console: Console, admin: Persona) -> None:
    assert console(admin).get(url("identity-policy-validate")).status_code == 405
