"""Injection (THREAT_MODEL.md §3 XSS, §10 SQL): what a principal stores or sends is data on every page and in
every query.

- Markup stored in every field that takes free text (a key's description, tag keys and values, a key policy's Sid,
  an encryption context and a user agent in the audit trail), or typed into a form that echoes it, is rendered
  escaped on every console page that can show it, and no page gains anything a strict CSP would block.
- SQL-shaped strings (quotes, comment markers, LIKE wildcards, backslashes, placeholders) through the console's key
  search, the audit trail's filters, the REST API's search and `kmsconsole.core.prepared` (which binds parameters
  itself) match only themselves, as text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import get_resolver
from rest_framework.test import APIClient

from grants.models import Grant
from grants.services.creation import grant_create
from keys.models import Key
from keys.services import lifecycle, tags
from kmsconsole.audit.models import AuditEvent
from kmsconsole.console.sudo import SUDO_AT
from kmsconsole.core import errors
from kmsconsole.core.prepared import fetch_all
from kmsconsole.generations.models import Generation
from tests.api.conftest import token_for
from tests.conftest import Persona, as_operator
from tests.console.conftest import console_login_for
from tests.console.test_auth import csp_problems
from tests.rows import update_sealed
from tests.security.test_no_side_door import World, fill, routes

MARKUP = '<script>alert("xss")</script><img src=x onerror=alert(1)>'
ESCAPED = "&lt;script&gt;alert(&quot;xss&quot;)&lt;/script&gt;"
# What would be live markup if any page failed to escape it.
RAW = ("<script>alert", "<img src=x")


def signed_in(persona: Persona) -> Client:
    client = Client()
    client.force_login(console_login_for(persona))
    session = client.session
    session[SUDO_AT] = int(time.time())
    session.save()
    return client


def _policy_with_markup_sid(admin: Persona) -> str:
    root = f"arn:aws:iam::{admin.arn.split(':')[4]}:root"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": root},
                 "Action": "kms:*", "Resource": "*"},
                {"Sid": MARKUP, "Effect": "Allow", "Principal": {"AWS": admin.arn}, "Action": "kms:Encrypt",
                 "Resource": "*"},
            ],
        }
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_injected_markup_is_escaped_on_every_console_page(
    admin: Persona, kms_client: Callable[..., Any], account: Any
) -> None:
    key = as_operator(
        "CreateKey",
        lambda ctx: lifecycle.key_create(ctx=ctx, description=MARKUP, policy=_policy_with_markup_sid(admin)),
    )
    key_id = str(key.key_id)
    as_operator(
        "TagResource",
        lambda ctx: tags.key_tag(ctx=ctx, key_id=key_id, tags=[{"TagKey": MARKUP[:120], "TagValue": MARKUP}]),
    )
    kms = kms_client(admin, user_agent_extra=MARKUP)
    kms.encrypt(KeyId=key_id, Plaintext=b"data", EncryptionContext={"purpose": MARKUP})
    encrypted = AuditEvent.objects.filter(operation="Encrypt").order_by("-seq").first()
    assert encrypted is not None and MARKUP in encrypted.user_agent
    grant = kms.create_grant(KeyId=key_id, GranteePrincipal=admin.arn, Operations=["Encrypt"])
    with pytest.raises(errors.ValidationException):  # refused (Name's pattern), and its audit event shows it
        as_operator(
            "CreateGrant",
            lambda ctx: grant_create(
                ctx=ctx, key_id=key_id, grantee_principal=admin.arn, operations=["Encrypt"], name=MARKUP
            ),
        )
    # A grant named so before names had a pattern: the pages must still escape it.
    update_sealed(Grant.objects.filter(grant_id=grant["GrantId"]), name=MARKUP)
    token_for(account, "admin")
    world = World(
        key=Key.objects.get(pk=key.pk),
        grant_id=grant["GrantId"],
        event_id=str(encrypted.event_id),
        token_id=0,
        victim_access_key=admin.access_key_id,
    )
    browser = signed_in(admin)
    shown = []
    for route, name in routes(get_resolver().url_patterns):
        if not name.startswith("console:") or "export" in name:
            continue
        path = fill(route.replace("<str:user_name>", "admin").replace("<str:name>", "admin"), world)
        response = browser.get(path)
        body = response.content.decode()
        assert response.status_code < 500, path
        assert not any(raw in body for raw in RAW), f"{path}: markup rendered as markup"
        assert not csp_problems(body), path
        if ESCAPED in body:
            shown.append(name)
    # The markup did reach the pages that show these fields (so the checks above looked at it).
    assert {
        "console:keys",
        "console:key",
        "console:key-tags",
        "console:key-policy",
        "console:audit-event",
    } <= set(shown), shown
    # Typed into a form that echoes what was typed: shown back escaped, beside the error.
    typed = browser.post(f"/console/keys/{key_id}/aliases/create/", {"alias_name": MARKUP})
    assert typed.status_code == 400 and not any(raw in typed.content.decode() for raw in RAW)
    assert "&lt;script&gt;" in typed.content.decode()


PAYLOADS = [
    "'",
    "' OR '1'='1",
    "'; DROP TABLE keys_key; --",
    '") OR 1=1 --',
    "%",
    "_",
    "\\",
    "\\'",
    "%s",
    "$1",
    "ключ ∂ 💥",
]


@pytest.fixture
def keys_with_payloads(admin: Persona) -> dict[str, str]:
    """A key per payload whose description is exactly it, and one plain key: description -> key id."""
    made = {}
    for text in [*PAYLOADS, "plain"]:
        key = as_operator("CreateKey", lambda ctx, t=text: lifecycle.key_create(ctx=ctx, description=t))
        made[text] = str(key.key_id)
    return made


def _only_literal_matches(text: str, found: set[str], keys: dict[str, str]) -> None:
    # icontains: every key whose description holds `text` as a substring, and no other.
    expected = {key_id for description, key_id in keys.items() if text.lower() in description.lower()}
    assert found == expected, text


@pytest.mark.django_db
def test_sql_shaped_search_matches_only_itself(admin: Persona, keys_with_payloads: dict[str, str]) -> None:
    browser = signed_in(admin)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(Key.objects.first().account, 'admin')}")  # type: ignore[union-attr]
    for text in PAYLOADS:
        page = browser.get("/console/keys/", {"q": text})
        assert page.status_code == 200, text
        shown = {
            key_id
            for key_id in keys_with_payloads.values()
            if f"/console/keys/{key_id}/" in page.content.decode()
        }
        _only_literal_matches(text, shown, keys_with_payloads)
        listed = api.get("/api/v1/keys", {"search": text, "page_size": 100})
        assert listed.status_code == 200, text
        found = {row["key_id"] for row in listed.json()["results"]}
        # One literal text, as the console's (no longer DRF's search, which split terms on spaces and commas).
        _only_literal_matches(text, found, keys_with_payloads)
    assert Key.objects.count() == len(keys_with_payloads)  # nothing was dropped


@pytest.mark.django_db
def test_sql_shaped_audit_filters_match_only_themselves(
    admin: Persona, kms_client: Callable[..., Any]
) -> None:
    kms = kms_client(admin)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    for text in PAYLOADS:
        kms.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"tenant": text})
    browser = signed_in(admin)
    for text in PAYLOADS:
        page = browser.get("/console/audit/", {"range": "24h", "key": key_id, "context_key": "tenant",
                                               "context_value": text})  # fmt: skip
        assert page.status_code == 200, text
        body = page.content.decode()
        wanted = AuditEvent.objects.get(
            operation="Encrypt", request_parameters__EncryptionContext__tenant=text
        )
        others = AuditEvent.objects.filter(operation="Encrypt").exclude(pk=wanted.pk)
        assert str(wanted.event_id) in body, text
        assert not any(str(event.event_id) in body for event in others), text
        for field in ("principal", "operation", "error_code", "decided_by", "request_id", "notable"):
            filtered = browser.get("/console/audit/", {"range": "24h", field: text})
            assert filtered.status_code in (200, 400), (field, text)
            assert "/console/audit/events/" not in filtered.content.decode(), (
                field,
                text,
            )  # matches no event


@pytest.mark.django_db(transaction=True)
def test_prepared_statements_bind_sql_shaped_values_as_text() -> None:
    assert not connection.in_atomic_block  # the libpq path of kmsconsole.core.prepared on PostgreSQL
    for text in PAYLOADS:
        assert fetch_all(connection, "SELECT %s", [text]) == [(text,)], text
    Generation.objects.create(scope="key:plain", value=7)
    table = Generation._meta.db_table
    for text in PAYLOADS:
        rows = fetch_all(connection, f"SELECT scope, value FROM {table} WHERE scope = %s", [text])  # noqa: S608 - the table name is ours
        assert rows == [], text
    assert Generation.objects.filter(scope="key:plain").exists()
