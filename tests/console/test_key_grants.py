"""The Grants tab: the list, revoking (confirm, sudo) and creating a grant (its token shown once)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from grants.models import Grant
from grants.services.key_operations import OPERATIONS_BY_KEY_TYPE
from policies import services
from policies.models import Account
from tests.conftest import Persona, as_operator
from tests.console.conftest import audit_events
from tests.console.key_tab_helpers import (
    assert_signin_redirect,
    audit_rows_text,
    make_grant,
    make_key,
    snapshot,
    url,
)
from tests.rows import update_sealed

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _propagation_delay(settings: Any) -> None:
    # New grants wait for a worker, so their status reads "propagating".
    settings.KMS_GRANT_PROPAGATION_SECONDS = 30


def create_form(grantee: str, *operations: str, **fields: str) -> dict[str, object]:
    return {"grantee_principal": grantee, "operations": list(operations), **fields}


def test_anonymous_is_sent_to_sign_in(admin: Persona) -> None:
    key = make_key()
    grant = make_grant(key, admin.arn).grant
    client = Client()
    for target in (url("key-grants", key), url("key-grant-create", key), url("key-grant-created", key)):
        assert_signin_redirect(client.get(target))
    assert_signin_redirect(client.post(url("key-grant-create", key), create_form(admin.arn, "Encrypt")))
    assert_signin_redirect(client.post(url("key-grant-revoke", key, grant.grant_id)))
    assert Grant.objects.count() == 1


def test_list_shows_grantee_operations_constraint_and_status(
    admin: Persona, make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    key = make_key()
    app = make_user("app")
    pending = make_grant(
        key,
        app.arn,
        "Encrypt",
        "Decrypt",
        retiring_principal=admin.arn,
        name="orders",
        constraints={"EncryptionContextEquals": {"purpose": "orders", "dept": "ops"}},
    ).grant
    effective = make_grant(key, admin.arn, "GenerateDataKey").grant
    update_sealed(Grant.objects.filter(pk=effective.pk), effective_at=timezone.now())
    response = console(admin).get(url("key-grants", key))
    page = response.content.decode()
    assert response.status_code == 200
    assert app.arn in page and "orders" in page and admin.arn in page
    assert "<code>Encrypt</code>, <code>Decrypt</code>" in page
    assert "Encryption context equals" in page
    assert (
        "<code>dept</code> = <code>ops</code>" in page
        and "<code>purpose</code> = <code>orders</code>" in page
    )
    seconds = round((pending.propagate_after - timezone.now()).total_seconds())
    assert f"propagating (effective in ~{seconds} s)" in page or f"~{seconds + 1} s" in page
    assert "badge effective" in page
    assert url("key-grant-revoke", key, pending.grant_id) in page
    assert audit_events("ListGrants")[-1].decision == "allowed"


def test_subset_constraint_is_shown_in_words(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    make_grant(key, admin.arn, "Decrypt", constraints={"EncryptionContextSubset": {"tenant": "a"}})
    page = console(admin).get(url("key-grants", key)).content.decode()
    assert "Encryption context includes" in page and "<code>tenant</code> = <code>a</code>" in page


def test_overdue_grant_is_shown_as_propagating_now(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    grant = make_grant(key, admin.arn, "Encrypt").grant
    update_sealed(Grant.objects.filter(pk=grant.pk), propagate_after=timezone.now() - timedelta(seconds=5))
    page = console(admin).get(url("key-grants", key)).content.decode()
    assert "propagating (effective in ~0 s)" in page


def test_empty_state(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    page = console(admin).get(url("key-grants", key)).content.decode()
    assert "This key has no grants" in page and "<table" not in page
    assert url("key-grant-create", key) in page


def test_outsider_is_refused_and_nothing_changes(
    admin: Persona, outsider: Persona, console: Callable[..., Client]
) -> None:
    key = make_key()
    grant = make_grant(key, admin.arn, "Encrypt").grant
    client = console(outsider)
    before = snapshot()
    listed = client.get(url("key-grants", key))
    assert listed.status_code == 403 and "Refused." in listed.content.decode()
    assert grant.grant_id[:12] not in listed.content.decode()
    created = client.post(url("key-grant-create", key), create_form(outsider.arn, "Encrypt"))
    assert created.status_code == 403
    revoked = client.post(url("key-grant-revoke", key, grant.grant_id))
    assert revoked.status_code == 403 and "Refused." in revoked.content.decode()
    assert snapshot() == before
    assert [event.decision for event in audit_events("RevokeGrant")] == ["denied"]
    assert not audit_events("CreateGrant")  # refused at DescribeKey, before the form was even read


def test_revoke_asks_to_confirm_then_revokes(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    grant = make_grant(key, admin.arn, "Encrypt").grant
    client = console(admin)
    confirm = client.get(url("key-grant-revoke", key, grant.grant_id))
    page = confirm.content.decode()
    assert confirm.status_code == 200
    assert "Revoke this grant?" in page and grant.grant_id in page
    assert f'action="{url("key-grant-revoke", key, grant.grant_id)}"' in page
    assert Grant.objects.filter(pk=grant.pk).exists()  # looking at the confirmation changes nothing
    response = client.post(url("key-grant-revoke", key, grant.grant_id))
    assert response.status_code == 302 and response["Location"] == url("key-grants", key)
    assert not Grant.objects.filter(pk=grant.pk).exists()
    [event] = audit_events("RevokeGrant")
    assert event.decision == "allowed" and event.request_parameters["GrantId"] == grant.grant_id
    assert "is revoked" in client.get(response["Location"]).content.decode()


def test_revoke_needs_sudo(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    grant = make_grant(key, admin.arn, "Encrypt").grant
    before = snapshot()
    response = console(admin, sudo=False).post(url("key-grant-revoke", key, grant.grant_id))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("console:sudo"))
    assert snapshot() == before
    assert not audit_events("RevokeGrant")


def test_revoking_an_unknown_grant_says_so(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    confirm = console(admin).get(url("key-grant-revoke", key, "f" * 64))
    assert confirm.status_code == 404 and "not a grant of this key" in confirm.content.decode()
    response = console(admin).post(url("key-grant-revoke", key, "not-a-grant-id"))
    assert response.status_code == 400
    assert "Invalid grant ID" in response.content.decode()


@pytest.mark.parametrize(
    ("spec", "usage", "kind", "offered"),
    [
        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "SYMMETRIC", OPERATIONS_BY_KEY_TYPE["SYMMETRIC"]),
        ("HMAC_256", "GENERATE_VERIFY_MAC", "HMAC", OPERATIONS_BY_KEY_TYPE["HMAC"]),
        (
            "RSA_2048",
            "SIGN_VERIFY",
            "ASYMMETRIC",
            {"CreateGrant", "RetireGrant", "DescribeKey", "GetPublicKey", "Sign", "Verify"},
        ),
        (
            "RSA_2048",
            "ENCRYPT_DECRYPT",
            "ASYMMETRIC",
            {"CreateGrant", "RetireGrant", "DescribeKey", "GetPublicKey", "Encrypt", "Decrypt"}
            | {"ReEncryptFrom", "ReEncryptTo"},
        ),
        (
            "ECC_NIST_P384",
            "KEY_AGREEMENT",
            "ASYMMETRIC",
            {"CreateGrant", "RetireGrant", "DescribeKey", "GetPublicKey", "DeriveSharedSecret"},
        ),
    ],
)
def test_create_form_offers_the_operations_of_the_key(
    admin: Persona, console: Callable[..., Client], spec: str, usage: str, kind: str, offered: set[str]
) -> None:
    """Only what a grant on this key may allow: its key type's operations, and an asymmetric key's usage's."""
    key = make_key(key_spec=spec, key_usage=usage)
    page = console(admin).get(url("key-grant-create", key)).content.decode()
    every = set().union(*OPERATIONS_BY_KEY_TYPE.values())
    for operation in every:
        assert (f'value="{operation}"' in page) == (operation in offered), operation
    assert ("Encryption context constraint (optional)" in page) == (kind == "SYMMETRIC")


def test_create_shows_the_token_once(
    admin: Persona, make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    key = make_key()
    app = make_user("app")
    client = console(admin)
    form = create_form(
        app.arn,
        "Encrypt",
        "Decrypt",
        retiring_principal=admin.arn,
        name="orders-app",
        constraint="EncryptionContextSubset",
        context_key_0="purpose",
        context_value_0="orders",
        context_key_1="tenant",
        context_value_1="t-1",
    )
    response = client.post(url("key-grant-create", key), form)
    assert response.status_code == 302 and response["Location"] == url("key-grant-created", key)
    grant = Grant.objects.get(key=key)
    assert grant.grantee_principal == app.arn and grant.retiring_principal == admin.arn
    assert sorted(grant.operations) == ["Decrypt", "Encrypt"] and grant.name == "orders-app"
    assert grant.constraints == {"EncryptionContextSubset": {"purpose": "orders", "tenant": "t-1"}}

    shown = client.get(response["Location"])
    page = shown.content.decode()
    token = page.split('id="new-grant-token">', 1)[1].split("<", 1)[0]
    assert shown.status_code == 200 and len(token) > 64
    assert grant.grant_id in page and 'data-copy="#new-grant-token"' in page
    assert "only time the grant token is shown" in page and "propagation delay" in page
    assert "no-store" in shown["Cache-Control"]

    again = client.get(url("key-grant-created", key), follow=True)
    assert token not in again.content.decode()
    assert token not in client.get(url("key-grants", key)).content.decode()

    [event] = audit_events("CreateGrant")
    assert event.decision == "allowed"
    assert event.response_elements == {"GrantId": grant.grant_id}
    assert event.request_parameters["GranteePrincipal"] == app.arn
    assert token not in audit_rows_text()


def test_grant_for_a_group_is_refused_with_the_service_message(
    admin: Persona, account: Account, console: Callable[..., Client]
) -> None:
    key = make_key()
    group = as_operator(
        "iam:CreateGroup", lambda ctx: services.group_create(ctx=ctx, account=account, group_name="devs")
    )
    before = snapshot()
    response = console(admin).post(url("key-grant-create", key), create_form(group.arn, "Encrypt"))
    page = response.content.decode()
    assert response.status_code == 400
    assert "ARN does not refer to a valid principal" in page and 'role="alert"' in page
    assert f'value="{group.arn}"' in page  # what was typed is kept
    assert snapshot() == before
    assert audit_events("CreateGrant")[-1].error_code == "InvalidArnException"


def test_grant_needs_an_operation(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    response = console(admin).post(url("key-grant-create", key), create_form(admin.arn))
    assert response.status_code == 400
    assert "Choose at least one operation" in response.content.decode()
    assert not Grant.objects.exists() and not audit_events("CreateGrant")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"operations": ["Sign"]}, "Select a valid choice"),
        ({"context_key_0": "purpose", "context_value_0": "x"}, "must equal or include"),
        ({"constraint": "EncryptionContextEquals"}, "Add at least one encryption context pair"),
        ({"constraint": "EncryptionContextEquals", "context_value_0": "x"}, "Enter the key this value"),
        (
            {
                "constraint": "EncryptionContextEquals",
                "context_key_0": "a",
                "context_key_1": "a",
            },
            "already in the constraint",
        ),
        ({"grantee_principal": ""}, "This field is required"),
    ],
)
def test_bad_grant_input_is_refused_inline(
    admin: Persona, console: Callable[..., Client], fields: dict[str, object], message: str
) -> None:
    key = make_key()
    form = {**create_form(admin.arn, "Encrypt"), **fields}
    response = console(admin).post(url("key-grant-create", key), form)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Grant.objects.exists()


def test_created_page_without_a_new_grant_goes_back_to_the_list(
    admin: Persona, console: Callable[..., Client]
) -> None:
    key = make_key()
    response = console(admin).get(url("key-grant-created", key))
    assert response.status_code == 302 and response["Location"] == url("key-grants", key)
