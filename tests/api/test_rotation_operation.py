"""The REST rotation endpoint picks EnableKeyRotation or DisableKeyRotation from the body: the operation it
authorizes must be the one the service does, whatever JSON spells "enabled"."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keys.models import Key
from keys.services import rotation
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core import errors
from tests.api.conftest import client_with, make_key, token_for
from tests.conftest import as_operator

pytestmark = pytest.mark.django_db

DISABLE_ONLY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["kms:DisableKeyRotation", "kms:GetKeyRotationStatus"],
                "Resource": "*",
            },
            {"Effect": "Deny", "Action": "kms:EnableKeyRotation", "Resource": "*"},
        ],
    }
)


@pytest.mark.parametrize("spelled", ["true", 1, "yes", "on"])
def test_enabled_must_be_a_json_boolean(account: Any, make_user: Any, spelled: object) -> None:
    make_user("rot", DISABLE_ONLY)
    key = make_key()
    api = client_with(token_for(account, "rot"))
    since = AuditEvent.objects.count()
    response = api.put(
        f"/api/v1/keys/{key.key_id}/rotation", {"enabled": spelled, "rotation_period_days": 90}, format="json"
    )
    assert response.status_code == 400, response.content
    assert "JSON boolean" in json.dumps(response.json())
    assert Key.objects.get(pk=key.pk).rotation_enabled is False
    event = AuditEvent.objects.filter(seq__gt=since).get()
    assert (event.operation, event.decision) == ("DisableKeyRotation", "failed")


def test_a_denied_enable_is_refused_and_audited_as_enable(account: Any, make_user: Any) -> None:
    make_user("rot", DISABLE_ONLY)
    key = make_key()
    api = client_with(token_for(account, "rot"))
    response = api.put(f"/api/v1/keys/{key.key_id}/rotation", {"enabled": True}, format="json")
    assert response.status_code == 403, response.content
    assert Key.objects.get(pk=key.pk).rotation_enabled is False
    assert AuditEvent.objects.filter(operation="EnableKeyRotation", decision="denied").exists()


def test_a_rotation_service_refuses_to_run_as_another_operation(account: Any) -> None:
    key = make_key()
    with pytest.raises(errors.KMSInternalException):
        as_operator(
            "DisableKeyRotation", lambda ctx: rotation.key_rotation_enable(ctx=ctx, key_id=str(key.key_id))
        )
    with pytest.raises(errors.KMSInternalException):
        as_operator(
            "EnableKeyRotation", lambda ctx: rotation.key_rotation_disable(ctx=ctx, key_id=str(key.key_id))
        )
    assert Key.objects.get(pk=key.pk).rotation_enabled is False


ASYMMETRIC_AND_HMAC = [("ECC_NIST_P256", "SIGN_VERIFY"), ("HMAC_256", "GENERATE_VERIFY_MAC")]


@pytest.mark.parametrize(("spec", "usage"), ASYMMETRIC_AND_HMAC)
def test_an_asymmetric_or_hmac_key_reads_as_off_and_cannot_be_turned_on(
    account: Any, admin: Any, spec: str, usage: str
) -> None:
    """GET answers what GetKeyRotationStatus answers for such a key (off, no period, no date); turning rotation on
    is still UnsupportedOperationException, and nothing is stored."""
    key = make_key(key_spec=spec, key_usage=usage)
    api = client_with(token_for(account, admin.name))
    response = api.get(f"/api/v1/keys/{key.key_id}/rotation")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "key_id": str(key.key_id),
        "rotation_enabled": False,
        "rotation_period_days": None,
        "next_rotation_at": None,
    }
    response = api.put(f"/api/v1/keys/{key.key_id}/rotation", {"enabled": True}, format="json")
    assert 400 <= response.status_code < 500
    assert "UnsupportedOperationException" in json.dumps(response.json())
    assert Key.objects.get(pk=key.pk).rotation_enabled is False
    event = AuditEvent.objects.filter(operation="EnableKeyRotation").get()
    assert (event.decision, event.error_code) == ("failed", "UnsupportedOperationException")
