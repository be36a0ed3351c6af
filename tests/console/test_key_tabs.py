"""The Cryptographic configuration tab and the public key download."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.test import Client

from keys.crypto import KeySpec, KeyUsage, key_algorithms
from tests.conftest import Persona
from tests.console.conftest import audit_events
from tests.console.key_tab_helpers import assert_signin_redirect, make_key, url

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
