"""The Cryptographic configuration tab's "Try this key" panel: Encrypt and Decrypt as the signed-in principal,
authorized by the engine and audited without the text. A key administrator who is not a key user is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings

from keys.default_policies import console_key_policy
from kmsconsole.audit.models import AuditEvent
from tests.conftest import Persona
from tests.console.conftest import audit_events
from tests.console.key_tab_helpers import assert_signin_redirect, audit_rows_text, make_key, url

pytestmark = pytest.mark.django_db

TEXT = "attack at dawn, bring snacks"


@pytest.fixture
def people(admin: Persona, make_user: Callable[..., Persona]) -> dict[str, Persona]:
    return {"admin": admin, "key-admin": make_user("key-admin"), "key-user": make_user("key-user")}


@pytest.fixture
def key(people: dict[str, Persona]) -> Any:
    policy = console_key_policy(
        account_id=settings.KMS_ACCOUNT_ID,
        key_spec="SYMMETRIC_DEFAULT",
        key_usage="ENCRYPT_DECRYPT",
        administrators=[people["admin"].arn, people["key-admin"].arn],
        users=[people["key-user"].arn],
    )
    return make_key("try me", policy=policy)


def encrypt(client: Any, key: Any, text: str = TEXT, context: str = "purpose=test") -> Any:
    return client.post(
        url("key-try-encrypt", key),
        {
            "encrypt-plaintext": text,
            "encrypt-encryption_context": context,
            "encrypt-algorithm": "SYMMETRIC_DEFAULT",
        },
    )


def test_a_key_user_encrypts_and_decrypts(
    console: Callable[..., Any], people: dict[str, Any], key: Any
) -> None:
    client = console(people["key-user"])
    page = client.get(url("key-crypto", key))
    assert page.status_code == 200 and b"Try this key" in page.content
    encrypted = encrypt(client, key)
    assert encrypted.status_code == 200, encrypted.content
    ciphertext = encrypted.context["ciphertext"]
    decrypted = client.post(
        url("key-try-decrypt", key),
        {
            "decrypt-ciphertext": ciphertext,
            "decrypt-encryption_context": "purpose=test",
            "decrypt-algorithm": "SYMMETRIC_DEFAULT",
        },
    )
    assert decrypted.status_code == 200 and decrypted.context["decrypted"] == TEXT
    wrong_context = client.post(
        url("key-try-decrypt", key),
        {
            "decrypt-ciphertext": ciphertext,
            "decrypt-encryption_context": "purpose=other",
            "decrypt-algorithm": "SYMMETRIC_DEFAULT",
        },
    )
    assert wrong_context.status_code == 400
    assert "encryption context differs" in wrong_context.context["try_error"]
    assert wrong_context.context.get("decrypted") is None
    assert [e.decision for e in audit_events("Encrypt")] == ["allowed"]
    assert [e.decision for e in audit_events("Decrypt")] == ["allowed", "failed"]
    assert TEXT not in audit_rows_text()


def test_a_key_administrator_who_is_not_a_key_user_is_refused(
    console: Callable[..., Any], people: dict[str, Any], key: Any
) -> None:
    refused = encrypt(console(people["key-admin"]), key)
    assert refused.status_code == 403
    assert "Refused." in refused.context["try_error"] and "kms:Encrypt" in refused.context["try_error"]
    assert "ciphertext" not in refused.context
    assert [e.decision for e in audit_events("Encrypt")] == ["denied"]


def test_bad_input_is_an_inline_error_and_nothing_is_called(
    console: Callable[..., Any], people: dict[str, Any], key: Any
) -> None:
    client = console(people["key-user"])
    events = AuditEvent.objects.count()
    too_long = encrypt(client, key, text="x" * 4097)
    assert too_long.status_code == 400 and "the limit is 4096" in too_long.content.decode()
    bad_context = encrypt(client, key, context="no equals sign")
    assert bad_context.status_code == 400 and "Line 1 is not name=value" in bad_context.content.decode()
    not_base64 = client.post(
        url("key-try-decrypt", key),
        {"decrypt-ciphertext": "%%%", "decrypt-algorithm": "SYMMETRIC_DEFAULT"},
    )
    assert not_base64.status_code == 400 and "not base64" in not_base64.content.decode()
    # Only the tab's own reads (DescribeKey) were recorded: no Encrypt or Decrypt was attempted.
    assert not AuditEvent.objects.filter(seq__gt=events, operation__in=["Encrypt", "Decrypt"]).exists()


def test_anonymous_is_sent_to_sign_in(client: Any, key: Any) -> None:
    assert_signin_redirect(encrypt(client, key))
