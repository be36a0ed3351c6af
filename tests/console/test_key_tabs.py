"""The Cryptographic configuration tab and the public key download; and every tab's header (DescribeKey's answer)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, mlkem, rsa
from django.test import Client
from django.utils import timezone

from grants.models import Grant
from keys.crypto import KeySpec, KeyUsage, key_algorithms
from kmsconsole.audit.models import AuditEvent
from tests.conftest import Persona
from tests.console.conftest import audit_events
from tests.console.key_tab_helpers import assert_signin_redirect, make_grant, make_key, url
from tests.rows import update_sealed

pytestmark = pytest.mark.django_db


def test_anonymous_is_sent_to_sign_in(admin: Persona) -> None:
    key = make_key(key_spec="RSA_2048", key_usage="SIGN_VERIFY")
    for name in ("key-crypto", "key-public-key"):
        assert_signin_redirect(Client().get(url(name, key)))


def test_symmetric_key_shows_its_spec_and_algorithms_and_has_no_public_key(
    admin: Persona, console: Callable[..., Client]
) -> None:
    key = make_key()
    response = console(admin).get(url("key-crypto", key))
    page = response.content.decode()
    assert response.status_code == 200
    assert "SYMMETRIC_DEFAULT" in page and "ENCRYPT_DECRYPT" in page
    for algorithm in key_algorithms(
        KeySpec.SYMMETRIC_DEFAULT, KeyUsage.ENCRYPT_DECRYPT
    ).encryption_algorithms:
        assert str(algorithm) in page
    assert "no public key" in page
    assert url("key-public-key", key) not in page
    assert 'aria-current="page"' in page and url("key-crypto", key) in page  # the tabs, this one current
    [event] = audit_events("DescribeKey")
    assert event.decision == "allowed" and event.key_arn == key.arn
    assert not audit_events("GetPublicKey")


def test_hmac_key_lists_mac_algorithms_and_has_no_public_key(
    admin: Persona, console: Callable[..., Client]
) -> None:
    key = make_key(key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC")
    page = console(admin).get(url("key-crypto", key)).content.decode()
    assert "MAC algorithms" in page and "HMAC_SHA_256" in page
    assert "an HMAC key" in page and "no public key" in page


def test_asymmetric_key_shows_the_public_key_as_pem_with_copy_and_download(
    admin: Persona, console: Callable[..., Client]
) -> None:
    key = make_key(key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY")
    page = console(admin).get(url("key-crypto", key)).content.decode()
    assert "-----BEGIN PUBLIC KEY-----" in page
    assert 'data-copy="#public-key-pem"' in page and 'id="public-key-pem"' in page
    assert url("key-public-key", key) in page
    assert "ECDSA_SHA_256" in page
    [event] = audit_events("GetPublicKey")
    assert event.decision == "allowed"


@pytest.mark.parametrize(
    ("spec", "usage", "kind"),
    [
        ("RSA_2048", "ENCRYPT_DECRYPT", rsa.RSAPublicKey),
        ("ECC_NIST_P384", "SIGN_VERIFY", ec.EllipticCurvePublicKey),
        ("ML_DSA_65", "SIGN_VERIFY", mldsa.MLDSA65PublicKey),
        ("ML_KEM_768", "ENCAPSULATE_DECAPSULATE", mlkem.MLKEM768PublicKey),
    ],
)
def test_public_key_download_is_a_pem_file_cryptography_loads(
    admin: Persona, console: Callable[..., Client], spec: str, usage: str, kind: type
) -> None:
    key = make_key(key_spec=spec, key_usage=usage)
    response = console(admin).get(url("key-public-key", key))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{key.key_id}-public-key.pem"'
    loaded = serialization.load_pem_public_key(response.content)
    assert isinstance(loaded, kind)
    der = loaded.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert der == bytes(key.public_key_der)
    assert audit_events("GetPublicKey")[-1].decision == "allowed"


@pytest.mark.parametrize(
    ("spec", "usage", "shown"),
    [
        ("ML_DSA_44", "SIGN_VERIFY", ("Signing algorithms", "ML_DSA_SHAKE_256")),
        ("ML_KEM_1024", "ENCAPSULATE_DECAPSULATE", ("Key encapsulation algorithms", "ML_KEM")),
    ],
)
def test_post_quantum_keys_show_their_algorithm_and_public_key(
    admin: Persona, console: Callable[..., Client], spec: str, usage: str, shown: tuple[str, str]
) -> None:
    key = make_key(key_spec=spec, key_usage=usage)
    page = console(admin).get(url("key-crypto", key)).content.decode()
    assert all(text in page for text in shown) and "-----BEGIN PUBLIC KEY-----" in page


def test_symmetric_key_has_no_public_key_to_download(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    response = console(admin).get(url("key-public-key", key))
    assert response.status_code == 400
    assert "has no public key" in response.content.decode()
    assert audit_events("GetPublicKey")[-1].error_code == "UnsupportedOperationException"


def test_outsider_is_refused_the_tab_and_the_download(
    outsider: Persona, console: Callable[..., Client]
) -> None:
    key = make_key(key_spec="RSA_2048", key_usage="SIGN_VERIFY")
    client = console(outsider)
    tab = client.get(url("key-crypto", key))
    assert tab.status_code == 403
    page = tab.content.decode()
    assert "Refused." in page and 'role="alert"' in page
    assert "BEGIN PUBLIC KEY" not in page and "RSASSA" not in page
    download = client.get(url("key-public-key", key))
    assert download.status_code == 403
    assert b"BEGIN PUBLIC KEY" not in download.content
    assert [event.decision for event in audit_events("DescribeKey")] == ["denied"]
    assert [event.decision for event in audit_events("GetPublicKey")] == ["denied"]


def test_unknown_key_is_not_found(admin: Persona, console: Callable[..., Client]) -> None:
    response = console(admin).get("/console/keys/00000000-0000-4000-8000-000000000000/crypto/")
    assert response.status_code == 404
    assert 'role="alert"' in response.content.decode()


# The header: what DescribeKey answers, only where DescribeKey would be allowed ---------------------------------------

HEADER_TABS = [
    "key-aliases",
    "key-tags",
    "key-grants",
    "key-rotation",
    "key-policy",
    "key-policy-versions",
    "key-access",
]
# Every tab's own read, and nothing that allows DescribeKey (a key policy decision the default policy leaves to IAM).
TAB_READS = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["kms:List*", "kms:GetKeyRotationStatus", "kms:GetKeyPolicy", "kmsconsole:*"],
                "Resource": "*",
            }
        ],
    }
)


def header(page: str) -> str:
    """The key header of a tab's page: from the page head to the tabs."""
    return page.split('<div class="page-head">', 1)[1].split('<nav class="tabs"', 1)[0]


@pytest.mark.parametrize("tab", HEADER_TABS)
def test_a_tab_shows_the_keys_description_and_state_only_where_describe_key_would_be_allowed(
    tab: str, console: Callable[..., Client], make_user: Callable[..., Persona]
) -> None:
    key = make_key("the payroll master key")
    reader = make_user("tab-reader", TAB_READS)
    client = console(reader)
    refused = client.get(url(tab, key))
    assert refused.status_code == 200
    page = refused.content.decode()
    assert "the payroll master key" not in page and 'class="badge Enabled"' not in header(page)
    assert f"<h1>{key.key_id}</h1>" in header(page)  # the header names the key by its id only
    # A grant for DescribeKey allows it (DescribeKey is grantable): the header is shown.
    grant = make_grant(key, reader.arn, "DescribeKey").grant
    update_sealed(Grant.objects.filter(pk=grant.pk), effective_at=timezone.now())
    allowed = header(client.get(url(tab, key)).content.decode())
    assert "the payroll master key" in allowed and 'class="badge Enabled"' in allowed
    # Decided inside the tab's own operation: no DescribeKey event, refused or allowed; and the tab's own events
    # keep their own decisions (allowed, by what allowed the tab's read, never by the grant for DescribeKey).
    assert not AuditEvent.objects.filter(operation="DescribeKey", caller_arn=reader.arn).exists()
    events = list(AuditEvent.objects.filter(caller_arn=reader.arn).order_by("seq"))
    operations = [event.operation for event in events]
    assert operations and operations == operations[: len(operations) // 2] * 2  # the same events at each load
    assert all(event.decision == "allowed" and event.decided_by for event in events)
    assert all(grant.grant_id not in event.decided_by for event in events)


def test_a_key_whose_stored_policy_the_engine_cannot_read_keeps_its_aliases_tab(
    console: Callable[..., Client], make_user: Callable[..., Persona]
) -> None:
    """ListAliases is IAM's to decide, so the tab is shown; the DescribeKey question on such a key is a refusal
    (as the request would be), not an internal error for the whole tab."""
    from keys.models import Key

    key = make_key("a key from an older engine")
    update_sealed(
        Key.objects.filter(pk=key.pk), policy='{"Version": "2012-10-17", "Statement": "not a list"}'
    )
    response = console(make_user("alias-reader", TAB_READS)).get(url("key-aliases", key))
    assert response.status_code == 200
    assert "a key from an older engine" not in header(response.content.decode())


def test_the_admins_tabs_keep_their_header(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key("the payroll master key")
    client = console(admin)
    for tab in HEADER_TABS:
        assert "the payroll master key" in header(client.get(url(tab, key)).content.decode()), tab
