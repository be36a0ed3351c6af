"""The Key rotation tab: status, period, next date, turning automatic rotation on and off, rotating now, the history,
and the explanation for keys that cannot rotate."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from django.test import Client

from keys.models import Key, KeyMaterial
from keys.services import rotation
from kmsconsole.audit.models import AuditEvent
from tests.conftest import Persona, as_operator
from tests.console.conftest import audit_events
from tests.console.key_tab_helpers import assert_signin_redirect, make_key, snapshot, url
from tests.rows import update_sealed

pytestmark = pytest.mark.django_db


def rotate_on_demand(key: Key) -> KeyMaterial:
    return as_operator(
        "RotateKeyOnDemand", lambda ctx: rotation.key_rotate_on_demand(ctx=ctx, key_id=str(key.key_id))
    )


def test_anonymous_is_sent_to_sign_in(admin: Persona) -> None:
    key = make_key()
    client = Client()
    assert_signin_redirect(client.get(url("key-rotation", key)))
    for name in ("key-rotation-enable", "key-rotation-disable", "key-rotate-now"):
        assert_signin_redirect(client.post(url(name, key), {"rotation_period_days": "365"}))
    assert not Key.objects.get(pk=key.pk).rotation_enabled


def test_off_by_default_with_the_original_material_in_the_history(
    admin: Persona, console: Callable[..., Client]
) -> None:
    key = make_key()
    response = console(admin).get(url("key-rotation", key))
    page = response.content.decode()
    assert response.status_code == 200
    assert "badge Disabled" in page and "Turn on automatic rotation" in page
    assert f"{rotation.ON_DEMAND_ROTATIONS_PER_KEY} of {rotation.ON_DEMAND_ROTATIONS_PER_KEY}" in page
    assert f'min="{rotation.ROTATION_PERIOD_MIN_DAYS}"' in page
    assert f'max="{rotation.ROTATION_PERIOD_MAX_DAYS}"' in page
    assert "Original material (key created)" in page
    assert key.materials.get().material_id in page
    assert audit_events("GetKeyRotationStatus")[-1].decision == "allowed"
    assert audit_events("ListKeyRotations")[-1].decision == "allowed"


def test_enable_with_a_period_then_disable(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    client = console(admin)
    response = client.post(url("key-rotation-enable", key), {"rotation_period_days": "180"})
    assert response.status_code == 302 and response["Location"] == url("key-rotation", key)
    key.refresh_from_db()
    assert key.rotation_enabled and key.rotation_period_days == 180 and key.next_rotation_at is not None
    [event] = audit_events("EnableKeyRotation")
    assert event.decision == "allowed" and event.request_parameters["RotationPeriodInDays"] == 180
    page = client.get(response["Location"]).content.decode()
    assert "Automatic rotation is on, every 180 days" in page
    assert "Every 180 days" in page and key.next_rotation_at.strftime("%Y-%m-%d") in page
    assert "Turn off automatic rotation" in page

    response = client.post(url("key-rotation-disable", key))
    assert response.status_code == 302
    key.refresh_from_db()
    assert not key.rotation_enabled and key.next_rotation_at is None
    assert audit_events("DisableKeyRotation")[-1].decision == "allowed"


def test_rotate_now_adds_current_material_and_the_history_is_newest_first(
    admin: Persona, console: Callable[..., Client]
) -> None:
    key = make_key()
    first = rotate_on_demand(key)
    client = console(admin)
    response = client.post(url("key-rotate-now", key))
    assert response.status_code == 302
    newest = KeyMaterial.objects.get(key=key, is_current=True)
    assert newest.pk != first.pk and newest.rotation_type == KeyMaterial.RotationType.ON_DEMAND
    [event] = audit_events("RotateKeyOnDemand")
    assert event.decision == "allowed" and event.response_elements["KeyMaterialId"] == newest.material_id
    page = client.get(url("key-rotation", key)).content.decode()
    assert f"key material {newest.material_id} is now current" in page
    assert page.index(newest.material_id) < page.index(first.material_id) < page.index("Original material")
    assert f"{rotation.ON_DEMAND_ROTATIONS_PER_KEY - 2} of {rotation.ON_DEMAND_ROTATIONS_PER_KEY}" in page


@pytest.mark.parametrize("days", ["89", str(rotation.ROTATION_PERIOD_MAX_DAYS + 1), "", "a year"])
def test_a_period_out_of_range_is_refused_inline(
    admin: Persona, console: Callable[..., Client], days: str
) -> None:
    key = make_key()
    before = snapshot()
    response = console(admin).post(url("key-rotation-enable", key), {"rotation_period_days": days})
    page = response.content.decode()
    assert response.status_code == 400
    assert (
        f"Choose a rotation period from {rotation.ROTATION_PERIOD_MIN_DAYS} to "
        f"{rotation.ROTATION_PERIOD_MAX_DAYS} days." in page
    )
    assert f'value="{days}"' in page or not days  # what was typed is kept
    assert snapshot() == before
    assert not audit_events("EnableKeyRotation")


def test_outsider_is_refused_and_nothing_changes(outsider: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    client = console(outsider)
    before = snapshot()
    page = client.get(url("key-rotation", key))
    assert page.status_code == 403 and "Refused." in page.content.decode()
    assert "Rotate now" not in page.content.decode()
    for name in ("key-rotation-enable", "key-rotation-disable", "key-rotate-now"):
        response = client.post(url(name, key), {"rotation_period_days": "365"})
        assert response.status_code == 403 and "Refused." in response.content.decode()
    assert snapshot() == before
    for operation in ("EnableKeyRotation", "DisableKeyRotation", "RotateKeyOnDemand"):
        assert [event.decision for event in audit_events(operation)] == ["denied"]


def test_no_on_demand_rotations_left_disables_the_button_and_the_service_refuses(
    admin: Persona, console: Callable[..., Client]
) -> None:
    key = make_key()
    for _ in range(rotation.ON_DEMAND_ROTATIONS_PER_KEY):
        rotate_on_demand(key)
    client = console(admin)
    page = client.get(url("key-rotation", key)).content.decode()
    assert f"0 of {rotation.ON_DEMAND_ROTATIONS_PER_KEY}" in page
    assert '<button type="submit" disabled>Rotate now</button>' in page
    before = snapshot()
    response = client.post(url("key-rotate-now", key))
    assert response.status_code == 400 and "on-demand rotations limit" in response.content.decode()
    assert snapshot() == before


def test_disabled_key_has_no_controls(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    update_sealed(Key.objects.filter(pk=key.pk), state="Disabled")
    page = console(admin).get(url("key-rotation", key)).content.decode()
    assert "only while the key is enabled" in page
    assert url("key-rotate-now", key) not in page and url("key-rotation-enable", key) not in page


@pytest.mark.parametrize(
    ("spec", "usage", "why"),
    [
        ("RSA_2048", "SIGN_VERIFY", "This is an asymmetric key"),
        ("HMAC_384", "GENERATE_VERIFY_MAC", "HMAC key"),
    ],
)
def test_keys_that_cannot_rotate_explain_why(
    admin: Persona, console: Callable[..., Client], spec: str, usage: str, why: str
) -> None:
    key = make_key(key_spec=spec, key_usage=usage)
    response = console(admin).get(url("key-rotation", key))
    page = response.content.decode()
    assert response.status_code == 200
    assert "apply only to symmetric encryption keys" in page and why in page
    assert url("key-rotate-now", key) not in page and url("key-rotation-enable", key) not in page
    assert 'role="alert"' not in page


KINDS = {
    "symmetric": {},
    "ECC": {"key_spec": "ECC_NIST_P256", "key_usage": "SIGN_VERIFY"},
    "HMAC": {"key_spec": "HMAC_256", "key_usage": "GENERATE_VERIFY_MAC"},
}
DESCRIBE_ONLY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kms:DescribeKey", "Resource": "*"}],
    }
)
ROTATION_STATUS_ONLY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kms:GetKeyRotationStatus", "Resource": "*"}],
    }
)


def _tab_as_seen(client: Client, key: Key) -> tuple[int, str, list[tuple[str, str]]]:
    """What a visit to the tab tells its caller and the trail: the status, the refusal (the key's ARN and id made
    alike) and the console's (operation, decision) events, in order."""
    before = AuditEvent.objects.filter(interface="console").count()
    response = client.get(url("key-rotation", key))
    refusal = " ".join(re.findall(r'role="alert"[^>]*>(.*?)</', response.content.decode(), re.S))
    refusal = refusal.replace(key.arn, "KEY-ARN").replace(str(key.key_id), "KEY-ID")
    events = AuditEvent.objects.filter(interface="console").order_by("seq")[before:]
    return response.status_code, refusal, [(event.operation, event.decision) for event in events]


@pytest.mark.parametrize("rights", ["none", "DescribeKey only"])
def test_a_refused_caller_learns_nothing_of_the_kind_of_key(
    make_user: Callable[..., Persona], console: Callable[..., Client], rights: str
) -> None:
    """GetKeyRotationStatus is authorized first for every key, so a caller who may not read the rotation status
    gets the same answer, and leaves the same events, whether the key is symmetric, ECC or HMAC: which operation
    is refused never depends on the key's type."""
    caller = make_user("caller", *([DESCRIBE_ONLY] if rights == "DescribeKey only" else []))
    client = console(caller)
    seen = {kind: _tab_as_seen(client, make_key(**options)) for kind, options in KINDS.items()}
    assert seen["ECC"] == seen["symmetric"] == seen["HMAC"]
    status, refusal, events = seen["symmetric"]
    assert status == 403 and "kms:GetKeyRotationStatus" in refusal and "kms:DescribeKey" not in refusal
    assert events == [("GetKeyRotationStatus", "denied")]


def _page_as_seen(client: Client, key: Key) -> str:
    """The tab's page with what names this key (its ARN and id) and the per-response CSRF tokens made alike."""
    page = client.get(url("key-rotation", key)).content.decode()
    page = page.replace(key.arn, "KEY-ARN").replace(str(key.key_id), "KEY-ID")
    page = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', 'name="csrfmiddlewaretoken"', page)
    return re.sub(r'"X-CSRFToken": "[^"]*"', '"X-CSRFToken": ""', page)


def test_a_caller_who_may_not_describe_the_key_cannot_tell_a_key_that_cannot_rotate_from_one_turned_off(
    make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    """GetKeyRotationStatus answers "off" alike for a symmetric key with rotation off and for an ECC or HMAC key, so
    a caller allowed it but not DescribeKey gets, for all three, the same page with the same status and the same
    events: the rotation settings, and the history refused as ListKeyRotations refuses it. Only the explanation
    that a key cannot rotate would name its type, and it needs DescribeKey."""
    client = console(make_user("caller", ROTATION_STATUS_ONLY))
    seen = {kind: _tab_as_seen(client, make_key(**options)) for kind, options in KINDS.items()}
    assert seen["ECC"] == seen["HMAC"] == seen["symmetric"]
    status, refusal, events = seen["symmetric"]
    assert status == 200 and "kms:DescribeKey" not in refusal
    assert events == [("GetKeyRotationStatus", "allowed"), ("ListKeyRotations", "denied")]
    pages = {kind: _page_as_seen(client, make_key(**options)) for kind, options in KINDS.items()}
    assert pages["ECC"] == pages["HMAC"] == pages["symmetric"]
    assert "apply only to symmetric encryption keys" not in pages["ECC"]
    assert "Turn on automatic rotation" in pages["ECC"]


def test_a_caller_who_may_describe_the_key_is_told_why_it_cannot_rotate(
    make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    """With DescribeKey allowed too, the ECC and HMAC tabs explain that the key cannot rotate, each after the
    authorized GetKeyRotationStatus and DescribeKey; the symmetric key's tab shows its settings."""
    both = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["kms:GetKeyRotationStatus", "kms:DescribeKey"],
                    "Resource": "*",
                }
            ],
        }
    )
    client = console(make_user("caller", both))
    seen = {kind: _tab_as_seen(client, make_key(**options)) for kind, options in KINDS.items()}
    assert (
        seen["ECC"]
        == seen["HMAC"]
        == (200, "", [("GetKeyRotationStatus", "allowed"), ("DescribeKey", "allowed")])
    )
    status, refusal, events = seen["symmetric"]
    assert status == 200 and "kms:ListKeyRotations" in refusal
    assert events == [("GetKeyRotationStatus", "allowed"), ("ListKeyRotations", "denied")]
    for kind in ("ECC", "HMAC"):
        assert "apply only to symmetric encryption keys" in _page_as_seen(client, make_key(**KINDS[kind]))


@pytest.mark.parametrize("kind", ["symmetric", "ECC"])
def test_a_tampered_key_row_is_an_audited_refusal(
    admin: Persona, console: Callable[..., Client], kind: str
) -> None:
    """A key whose spec was changed without its row MAC (storage tampering) is refused, and the refusal is
    recorded: never an unaudited server error."""
    key = make_key(**KINDS[kind])
    Key.objects.filter(pk=key.pk).update(key_spec="HMAC_512" if kind == "symmetric" else "SYMMETRIC_DEFAULT")
    response = console(admin).get(url("key-rotation", key))
    assert 400 <= response.status_code < 500 or response.status_code == 503
    assert "apply only to symmetric encryption keys" not in response.content.decode()
    [event] = audit_events("GetKeyRotationStatus")
    assert event.decision in ("denied", "failed") and event.error_code
