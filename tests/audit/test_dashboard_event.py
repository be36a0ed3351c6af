"""An event's page: everything recorded, the decision in plain words (from real decisions of the engine), and
links to the key, the principal and the key policy version in force at that moment."""

from __future__ import annotations

import base64
import contextlib
import html
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import NoReverseMatch, reverse

from keys.models import Key
from keys.services.key_policy import key_policy_put
from keys.services.lifecycle import key_create, key_disable
from kmsconsole.api.authentication import user_caller
from kmsconsole.audit.explain import explain, parse_decided_by
from kmsconsole.audit.models import AuditEvent
from kmsconsole.awskms import model
from kmsconsole.awskms.handlers import run_handler
from kmsconsole.core import errors
from kmsconsole.core.context import RequestMeta
from kmsconsole.operations import perform
from policies import services
from policies.models import IamUser
from tests.audit.dashboard_support import add
from tests.conftest import ALLOW_ALL, Persona, as_operator
from tests.grants.conftest import allow
from tests.grants.conftest import policy as key_policy

pytestmark = pytest.mark.django_db

ACCOUNT = "111122223333"
ALLOWED = "allowed by statement 'Allow use of the key' in the key policy"
# The admin manages every key (so the lockout check passes); nothing delegates to IAM policies.
ADMINS = allow(f"arn:aws:iam::{ACCOUNT}:user/admin", "kms:*", sid="Key administrators")
IAM_NOT_COUNTED = (
    "denied: the key policy does not let IAM policies grant access, so the identity policy 'dev-access' "
    "did not count"
)


@pytest.fixture
def people(make_user: Callable[..., Persona], admin: Persona) -> dict[str, Persona]:
    alice = make_user("alice")
    user = IamUser.objects.get(name="alice")
    as_operator(
        "iam:PutUserPolicy",
        lambda ctx: services.identity_policy_put(
            ctx=ctx, owner=user, policy_name="dev-access", document=ALLOW_ALL
        ),
    )
    return {"alice": alice, "bob": make_user("bob"), "admin": admin}


def create_key(policy: str) -> Key:
    return as_operator("CreateKey", lambda ctx: key_create(ctx=ctx, policy=policy, description="t"))


def encrypt(persona: Persona, key: Key) -> AuditEvent:
    """Encrypt as the persona, the way the KMS endpoint runs it; returns the event it wrote."""
    user = IamUser.objects.get(account__account_id=ACCOUNT, name=persona.name)
    raw = {
        "KeyId": key.arn,
        "Plaintext": base64.b64encode(b"secret").decode(),
        "EncryptionContext": {"tenant": "42"},
    }
    with contextlib.suppress(errors.KmsError):  # a refusal is an event too
        perform(
            "Encrypt",
            caller=user_caller(user),
            meta=RequestMeta(interface="kms", source_ip="10.1.2.3"),
            params=raw,
            service=lambda ctx: run_handler("Encrypt", ctx, model.parse_input("Encrypt", raw)),
        )
    return AuditEvent.objects.order_by("-seq").first()  # type: ignore[return-value]


def page(client: Client, event: AuditEvent) -> str:
    response = client.get(f"/console/audit/events/{event.event_id}/")
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def link_if_routed(view_name: str, *args: Any, **kwargs: Any) -> str | None:
    try:
        return reverse(view_name, args=args or None, kwargs=kwargs or None)
    except NoReverseMatch:
        return None


def test_allowed_by_a_key_policy_statement(
    console: Callable[..., Client], people: dict[str, Persona]
) -> None:
    key = create_key(
        key_policy(
            ADMINS,
            allow(people["alice"].arn, "kms:Encrypt", sid="Allow use of the key"),
        )
    )
    event = encrypt(people["alice"], key)
    assert (event.decision, event.reason) == ("allowed", ALLOWED)
    body = page(console(people["admin"]), event)
    assert ALLOWED in body
    assert "Key policy in force" in body and "version 1" in body
    # Everything recorded: the parameters (the plaintext never was), the source, the chain position.
    assert '"tenant": "42"' in body and "Plaintext" not in body
    assert "10.1.2.3" in body and f"#{event.seq}" in body and event.hash in body
    if (key_page := link_if_routed("console:key", str(key.key_id))) is not None:
        assert f'href="{key_page}"' in body
    if (user_page := link_if_routed("console:user", account_id=ACCOUNT, name="alice")) is not None:
        assert f'href="{user_page}"' in body


def test_denied_by_no_statement(console: Callable[..., Client], people: dict[str, Persona]) -> None:
    key = create_key(key_policy(ADMINS))
    event = encrypt(people["bob"], key)
    expected = (
        f"denied: no statement in the key policy allows arn:aws:iam::{ACCOUNT}:user/bob to perform kms:Encrypt, "
        "and no grant does"
    )
    assert (event.decision, event.reason) == ("denied", expected)
    body = page(console(people["admin"]), event)
    assert expected in body
    assert "Nothing allowed it: add a key-policy statement for this principal" in body


def test_denied_because_iam_policies_do_not_count(
    console: Callable[..., Client], people: dict[str, Persona]
) -> None:
    key = create_key(key_policy(ADMINS))
    event = encrypt(people["alice"], key)
    assert (event.decision, event.reason) == ("denied", IAM_NOT_COUNTED)
    body = page(console(people["admin"]), event)
    assert IAM_NOT_COUNTED in body
    assert "Identity policies only count when the key policy lets them" in body


def test_allowed_then_failed_and_the_policy_version_at_that_moment(
    console: Callable[..., Client], people: dict[str, Persona]
) -> None:
    key = create_key(
        key_policy(ADMINS, allow(people["alice"].arn, "kms:Encrypt", sid="Allow use of the key"))
    )
    first = encrypt(people["alice"], key)
    as_operator(
        "PutKeyPolicy",
        lambda ctx: key_policy_put(
            ctx=ctx,
            key_id=str(key.key_id),
            policy=key_policy(ADMINS, allow(people["alice"].arn, "kms:Encrypt", sid="Allow use of the key")),
        ),
    )
    change = AuditEvent.objects.get(operation="PutKeyPolicy")
    as_operator("DisableKey", lambda ctx: key_disable(ctx=ctx, key_id=str(key.key_id)))
    failed = encrypt(people["alice"], key)
    assert failed.decision == "failed" and failed.error_code == "DisabledException"

    client = console(people["admin"])
    assert "version 1" in page(client, first)
    body = page(client, failed)
    assert "version 2" in body
    assert f"{ALLOWED}, but the request then failed (DisabledException: {key.arn} is disabled.)" in body
    changed = page(client, change)
    assert "Key policy it set" in changed
    assert changed.index("version 1") < changed.index("version 2"), "decided under v1, set v2"


@pytest.mark.parametrize(
    ("fields", "summary"),
    [
        (
            {"decision": "failed", "reason": "", "decided_by": "", "error_code": "ValidationException",
             "error_message": "bad"},
            "the request failed before any permission was checked (ValidationException: bad)",
        ),
        (
            {"decision": "denied", "reason": "", "decided_by": "", "error_code": "AccessDeniedException",
             "error_message": "User: x is not authorized to act as the integrated service s"},
            "denied: User: x is not authorized to act as the integrated service s",
        ),
        (
            {"decision": "failed", "reason": "", "decided_by": "", "error_code": "KMSInternalException",
             "error_message": ""},
            "the request failed before any permission was checked (KMSInternalException)",
        ),
    ],
)  # fmt: skip
def test_explanations_without_a_decision(fields: dict[str, str], summary: str) -> None:
    explanation = explain(add(**fields))
    assert explanation.summary == summary
    if fields["error_code"] == "KMSInternalException":
        assert "may be retried" in explanation.details[0]


@pytest.mark.parametrize(
    ("text", "kind", "parts"),
    [
        ("statement 'Allow use of the key' in the key policy", "key policy", ("'Allow use of the key'", "")),
        ("statement #2 in the identity policy 'dev-access'", "identity policy", ("#2", "dev-access")),
        ("grant 0f1e2d", "grant", ("", "")),
        ("operator", "operator", ("", "")),
        ("missing: a key-policy allow for the caller's account", "missing", ("", "")),
        ("", "", ("", "")),
    ],
)
def test_decided_by_is_taken_apart(text: str, kind: str, parts: tuple[str, str]) -> None:
    decided = parse_decided_by(text)
    assert (decided.kind, (decided.statement, decided.policy_name)) == (kind, parts)
    assert decided.grant_id == ("0f1e2d" if kind == "grant" else "")
