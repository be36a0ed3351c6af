"""An operator with write access to the database (issue 10, "Storage attacker"): swapping two keys' sealed
material rows, or copying one key's material into another's row, does not give anyone the other key's use —
the material is sealed under the root key with its key id and material id as associated data, so it no longer
opens, and the request fails closed with an internal error that says nothing about the material. Editing or
deleting an audit event is named by `manage.py audit verify`."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.core.management import call_command
from django.core.management.base import CommandError

from keys.models import KeyMaterial
from kmsconsole.audit.models import AuditEvent
from tests.conftest import Persona

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
