"""An operator with write access to the database (issue 10, "Storage attacker"): swapping two keys' sealed
material rows, or copying one key's material into another's row, does not give anyone the other key's use —
the material is sealed under the root key with its key id and material id as associated data, so it no longer
opens, and the request fails closed with an internal error that says nothing about the material. Editing or
deleting an audit event is named by `manage.py audit verify`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from grants.models import Grant
from keys.models import Key, KeyMaterial
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core.rowmac import row_mac, verify_row_mac
from policies import services
from policies.models import (
    AccessKey,
    Account,
    ConsoleIdentity,
    IamGroup,
    IamUser,
    IdentityPolicy,
    RoleSession,
)
from tests.conftest import ALLOW_ALL, Persona, as_operator

pytestmark = pytest.mark.django_db(transaction=True)


def material(key_id: str) -> KeyMaterial:
    return KeyMaterial.objects.get(key__key_id=key_id, is_current=True)


def failure(call: Callable[[], Any]) -> dict[str, Any]:
    with pytest.raises(ClientError) as raised:
        call()
    return {
        **raised.value.response["Error"],
        "status": raised.value.response["ResponseMetadata"]["HTTPStatusCode"],
    }


def test_swapped_material_rows_do_not_open(kms_client: Callable[..., Any], admin: Persona) -> None:
    kms = kms_client(admin)
    first = kms.create_key()["KeyMetadata"]["KeyId"]
    second = kms.create_key()["KeyMetadata"]["KeyId"]
    a, b = material(first), material(second)
    # The attacker swaps the sealed bytes of the two rows (or copies one over the other).
    KeyMaterial.objects.filter(pk=a.pk).update(sealed=bytes(b.sealed))
    KeyMaterial.objects.filter(pk=b.pk).update(sealed=bytes(a.sealed))
    for key_id in (first, second):
        error = failure(lambda k=key_id: kms.encrypt(KeyId=k, Plaintext=b"attack at dawn"))
        assert (error["Code"], error["status"]) == ("KMSInternalException", 500)
        assert "seal" not in error["Message"].lower() and "material" not in error["Message"].lower()
    failed = AuditEvent.objects.filter(operation="Encrypt").values_list("decision", "error_code")
    assert set(failed) == {("failed", "KMSInternalException")}


def test_material_copied_into_another_key_does_not_decrypt_its_ciphertexts(
    kms_client: Callable[..., Any], admin: Persona
) -> None:
    kms = kms_client(admin)
    victim = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=victim, Plaintext=b"the victim's secret")["CiphertextBlob"]
    mine = kms.create_key()["KeyMetadata"]["KeyId"]
    # Copy the victim's sealed material into a key the attacker controls, then ask that key to decrypt.
    KeyMaterial.objects.filter(pk=material(mine).pk).update(sealed=bytes(material(victim).sealed))
    error = failure(lambda: kms.decrypt(CiphertextBlob=blob, KeyId=mine))
    assert error["Code"] in ("IncorrectKeyException", "KMSInternalException")
    assert (
        kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"the victim's secret"
    )  # the victim's key still works


def test_an_edited_or_deleted_audit_event_is_named(kms_client: Callable[..., Any], admin: Persona) -> None:
    kms = kms_client(admin)
    for _ in range(3):
        kms.generate_random(NumberOfBytes=8)
    call_command("audit", "verify", stdout=StringIO())
    victim = AuditEvent.objects.filter(operation="GenerateRandom").order_by("seq")[1]
    AuditEvent.objects.filter(pk=victim.pk).update(decision="denied")
    with pytest.raises(CommandError, match=f"#{victim.seq}.*contents were changed"):
        call_command("audit", "verify", stdout=StringIO())
    AuditEvent.objects.filter(pk=victim.pk).update(decision="allowed")
    call_command("audit", "verify", stdout=StringIO())
    AuditEvent.objects.filter(pk=victim.pk).delete()
    with pytest.raises(CommandError, match=f"#{victim.seq + 1}"):
        call_command("audit", "verify", stdout=StringIO())


# Row MACs (kmsconsole.core.rowmac): every row authorization or cryptography reads carries an HMAC under the root
# key over its protected columns. A database writer who changes a column cannot recompute it: the next request
# that relies on the row fails closed with KMSInternalException (audited as failed), never with the new value.

INTEGRITY = "The stored state of this resource failed its integrity check."


def fails_closed(call: Callable[[], Any]) -> None:
    error = failure(call)
    assert (error["Code"], error["status"], error["Message"]) == ("KMSInternalException", 500, INTEGRITY)


def user_row(persona: Persona) -> IamUser:
    return IamUser.objects.get(name=persona.name)


def test_the_encoding_is_unambiguous() -> None:
    assert row_mac("k", "ab", "c") != row_mac("k", "a", "bc")
    assert row_mac("k", ["a", "b"]) != row_mac("k", "a", "b")
    assert row_mac("k", None) != row_mac("k", "None") != row_mac("k", "")
    assert row_mac("k", b"\x01") != row_mac("k", "01")
    assert verify_row_mac(row_mac("k", 1, "x"), "k", 1, "x")
    assert not verify_row_mac(row_mac("k", 1, "x"), "k", 2, "x")


def test_an_access_key_reassigned_to_another_user_fails_closed(
    kms_client: Callable[..., Any], admin: Persona, outsider: Persona
) -> None:
    mallory = kms_client(outsider)
    AccessKey.objects.filter(access_key_id=outsider.access_key_id).update(user=user_row(admin))
    fails_closed(lambda: mallory.create_key())
    fails_closed(lambda: mallory.list_keys())
    assert not Key.objects.exists()
    failed = AuditEvent.objects.filter(access_key_id=outsider.access_key_id).values_list(
        "decision", "error_code"
    )
    assert set(failed) == {("failed", "KMSInternalException")}
    kms_client(admin).list_keys()  # the honest key still works


def test_an_inactive_access_key_set_active_fails_closed(
    kms_client: Callable[..., Any], account: Account, admin: Persona
) -> None:
    as_operator(
        "iam:UpdateAccessKey",
        lambda ctx: services.access_key_set_status(
            ctx=ctx, account=account, access_key_id=admin.access_key_id, status="Inactive"
        ),
    )
    kms = kms_client(admin)
    assert failure(lambda: kms.list_keys())["Code"] == "UnrecognizedClientException"
    AccessKey.objects.filter(access_key_id=admin.access_key_id).update(status="Active")
    fails_closed(lambda: kms.list_keys())


def test_a_role_session_extended_or_reowned_fails_closed(
    kms_client: Callable[..., Any], role_session: Callable[..., Persona]
) -> None:
    session = role_session("app", ALLOW_ALL, seconds=900)
    kms = kms_client(session)
    kms.list_keys()
    RoleSession.objects.update(expires_at=timezone.now() + timedelta(days=365))
    fails_closed(lambda: kms.list_keys())


def test_a_key_policy_rewritten_in_the_database_fails_closed(
    kms_client: Callable[..., Any], admin: Persona, outsider: Persona
) -> None:
    key_id = kms_client(admin).create_key()["KeyMetadata"]["KeyId"]
    mallory = kms_client(outsider)
    assert failure(lambda: mallory.encrypt(KeyId=key_id, Plaintext=b"x"))["Code"] == "AccessDeniedException"
    opened = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": outsider.arn}, "Action": "kms:*", "Resource": "*"}
            ],
        }
    )
    Key.objects.filter(key_id=key_id).update(policy=opened)
    fails_closed(lambda: mallory.encrypt(KeyId=key_id, Plaintext=b"x"))
    fails_closed(lambda: mallory.describe_key(KeyId=key_id))
    Key.objects.filter(key_id=key_id).update(state="Disabled", policy=Key.objects.get(key_id=key_id).policy)
    fails_closed(lambda: kms_client(admin).encrypt(KeyId=key_id, Plaintext=b"x"))


def test_an_identity_policy_document_swapped_fails_closed(
    kms_client: Callable[..., Any], random_user: Persona
) -> None:
    kms = kms_client(random_user)
    kms.generate_random(NumberOfBytes=8)
    assert failure(lambda: kms.create_key())["Code"] == "AccessDeniedException"
    IdentityPolicy.objects.filter(user=user_row(random_user)).update(document=ALLOW_ALL)
    fails_closed(lambda: kms.create_key())
    fails_closed(lambda: kms.generate_random(NumberOfBytes=8))
    assert not Key.objects.exists()


def test_a_user_added_to_a_group_in_the_database_fails_closed(
    kms_client: Callable[..., Any], account: Account, outsider: Persona, admin: Persona
) -> None:
    group = as_operator(
        "iam:CreateGroup", lambda ctx: services.group_create(ctx=ctx, account=account, group_name="admins")
    )
    as_operator(
        "iam:PutGroupPolicy",
        lambda ctx: services.identity_policy_put(ctx=ctx, owner=group, policy_name="all", document=ALLOW_ALL),
    )
    as_operator(
        "iam:AddUserToGroup",
        lambda ctx: services.group_add_user(ctx=ctx, account=account, group_name="admins", user_name="admin"),
    )
    kms_client(admin).create_key()  # an honest membership works
    mallory = kms_client(outsider)
    assert failure(lambda: mallory.list_keys())["Code"] == "AccessDeniedException"
    IamGroup.members.through.objects.create(iamgroup=group, iamuser=user_row(outsider))
    fails_closed(lambda: mallory.list_keys())
    # Removing a membership (e.g. from a group whose policy denies) is detected the same way.
    IamGroup.members.through.objects.filter(iamuser=user_row(admin)).delete()
    fails_closed(lambda: kms_client(admin).list_keys())


def test_a_grant_widened_in_the_database_fails_closed(
    kms_client: Callable[..., Any], admin: Persona, outsider: Persona, settings: Any
) -> None:
    settings.KMS_GRANT_PROPAGATION_SECONDS = 0
    owner = kms_client(admin)
    key_id = owner.create_key()["KeyMetadata"]["KeyId"]
    owner.create_grant(KeyId=key_id, GranteePrincipal=outsider.arn, Operations=["Encrypt"])
    mallory = kms_client(outsider)
    blob = mallory.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    Grant.objects.filter(key__key_id=key_id).update(operations=["Encrypt", "Decrypt", "CreateGrant"])
    fails_closed(lambda: mallory.decrypt(CiphertextBlob=blob))
    fails_closed(lambda: mallory.encrypt(KeyId=key_id, Plaintext=b"x"))


def test_a_console_login_relinked_to_another_user_fails_closed(admin: Persona, outsider: Persona) -> None:
    from tests.console.conftest import console_login_for

    client = Client(raise_request_exception=False)
    client.force_login(console_login_for(outsider))
    assert client.get(reverse("console:keys")).status_code == 403  # the outsider may not list keys
    ConsoleIdentity.objects.filter(iam_user=user_row(outsider)).update(iam_user=user_row(admin))
    response = client.get(reverse("console:keys"))
    assert response.status_code == 500
    assert b"admin" not in response.content


@pytest.mark.parametrize("change", ["owner", "unrevoked", "extended"])
def test_an_api_token_reowned_unrevoked_or_extended_fails_closed(
    admin: Persona, make_user: Callable[..., Persona], change: str
) -> None:
    """A database writer holding any token (even a revoked or expired one) must not make it another user's or make
    it live again: its row MAC binds the token to its owner, expiry and revocation."""
    from kmsconsole.api.models import ApiToken
    from kmsconsole.api.tokens import api_token_revoke
    from tests.api.conftest import client_with, token_for

    make_user("carol")
    plaintext = token_for(Account.objects.get(), "carol")
    token = ApiToken.objects.get(principal__name="carol")
    api = client_with(plaintext)
    assert api.get("/api/v1/users").status_code == 403  # carol may not list users
    rows = ApiToken.objects.filter(pk=token.pk)
    if change == "owner":
        rows.update(principal=user_row(admin))
    elif change == "unrevoked":
        as_operator("kmsconsole:RevokeApiToken", lambda ctx: api_token_revoke(ctx=ctx, token_id=token.pk))
        assert api.get("/api/v1/users").status_code == 401
        rows.update(revoked_at=None)
    else:
        rows.update(expires_at=timezone.now() - timedelta(seconds=1))
        assert api.get("/api/v1/users").status_code == 401
        rows.update(expires_at=timezone.now() + timedelta(days=3650))
    response = api.get("/api/v1/users")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UnrecognizedClientException"
