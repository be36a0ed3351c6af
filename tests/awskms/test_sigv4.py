"""The pure SigV4 verifier against requests signed by botocore itself (no server, no database)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kmsconsole.awskms import sigv4

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"


def signed(
    body: bytes = b'{"NumberOfBytes": 8}',
    *,
    secret: str = SECRET,
    region: str = "us-east-1",
    service: str = "kms",
    url: str = "http://127.0.0.1:8000/",
) -> sigv4.IncomingRequest:
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.GenerateRandom"},
    )
    SigV4Auth(Credentials(KEY_ID, secret), service, region).add_auth(request)
    prepared = request.prepare()
    return sigv4.IncomingRequest(
        method="POST",
        path="/" if url.endswith(":8000/") else "/kms/",
        query_string="",
        headers={k.lower(): v for k, v in prepared.headers.items()} | {"host": "127.0.0.1:8000"},
        body=body,
    )


def verify(request: sigv4.IncomingRequest, secret: str = SECRET) -> sigv4.Authorization:
    auth = sigv4.parse_authorization(request.headers["authorization"])
    amz_date, moment = sigv4.request_time(request.headers)
    sigv4.check_scope(auth, amz_date=amz_date, region="us-east-1", service="kms")
    sigv4.check_clock_skew(moment, datetime.now(UTC), timedelta(minutes=15))
    sigv4.verify_signature(request, auth, secret=secret, amz_date=amz_date)
    return auth


def test_a_request_signed_by_botocore_verifies() -> None:
    auth = verify(signed())
    assert auth.access_key_id == KEY_ID
    assert "host" in auth.signed_headers and "x-amz-target" in auth.signed_headers


def test_the_kms_path_verifies_too() -> None:
    verify(signed(url="http://127.0.0.1:8000/kms/"))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: sigv4.IncomingRequest(r.method, r.path, r.query_string, r.headers, b'{"NumberOfBytes": 9}'),
        lambda r: sigv4.IncomingRequest(
            r.method, r.path, r.query_string, {**r.headers, "x-amz-target": "TrentService.Decrypt"}, r.body
        ),
        lambda r: sigv4.IncomingRequest(r.method, "/other", r.query_string, r.headers, r.body),
        lambda r: sigv4.IncomingRequest(r.method, r.path, "a=b", r.headers, r.body),
    ],
    ids=["body", "signed-header", "path", "query"],
)
def test_any_change_to_a_signed_part_breaks_the_signature(tamper) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(sigv4.SigV4Error) as raised:
        verify(tamper(signed()))
    assert raised.value.code == "InvalidSignatureException"
    assert raised.value.message == sigv4.SIGNATURE_MISMATCH


def test_the_wrong_secret_is_an_invalid_signature_and_the_message_holds_no_secret() -> None:
    with pytest.raises(sigv4.SigV4Error) as raised:
        verify(signed(), secret="x" * 40)
    assert raised.value.code == "InvalidSignatureException"
    assert SECRET not in raised.value.message and "x" * 40 not in raised.value.message


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=" + "a" * 64,
            "Authorization header requires 'Credential' parameter.",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20240101/us-east-1/kms/aws4_request, Signature="
            + "a" * 64,
            "Authorization header requires 'SignedHeaders' parameter.",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20240101/us-east-1/kms/aws4_request, SignedHeaders=host",
            "Authorization header requires 'Signature' parameter.",
        ),
        ("AWS4-HMAC-SHA1 Credential=x", "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA1'"),
        (
            f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20240101/us-east-1, SignedHeaders=host, Signature="
            + "a" * 64,
            "Credential should be of the form <AccessKeyId>/<Date>/<Region>/<Service>/aws4_request.",
        ),
    ],
)
def test_incomplete_authorization_headers(header: str, message: str) -> None:
    with pytest.raises(sigv4.SigV4Error) as raised:
        sigv4.parse_authorization(header)
    assert raised.value.code == "IncompleteSignatureException"
    assert raised.value.message == message


def test_scope_must_name_this_region_and_service() -> None:
    request = signed(region="eu-west-1")
    auth = sigv4.parse_authorization(request.headers["authorization"])
    amz_date, _ = sigv4.request_time(request.headers)
    with pytest.raises(
        sigv4.SigV4Error, match=re.escape("Credential should be scoped to a valid region, not 'eu-west-1'.")
    ):
        sigv4.check_scope(auth, amz_date=amz_date, region="us-east-1", service="kms")
    request = signed(service="s3")
    auth = sigv4.parse_authorization(request.headers["authorization"])
    with pytest.raises(
        sigv4.SigV4Error, match=re.escape("Credential should be scoped to correct service: 'kms'.")
    ):
        sigv4.check_scope(auth, amz_date=amz_date, region="us-east-1", service="kms")


def test_clock_skew_window_is_fifteen_minutes_each_way() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    window = timedelta(minutes=15)
    sigv4.check_clock_skew(now - window, now, window)
    sigv4.check_clock_skew(now + window, now, window)
    with pytest.raises(sigv4.SigV4Error) as expired:
        sigv4.check_clock_skew(now - window - timedelta(seconds=1), now, window)
    assert expired.value.code == "InvalidSignatureException"
    assert expired.value.message == (
        "Signature expired: 20260101T114459Z is now earlier than 20260101T114500Z (20260101T120000Z - 15 min.)"
    )
    with pytest.raises(sigv4.SigV4Error, match=r"^Signature not yet current: 20260101T121501Z"):
        sigv4.check_clock_skew(now + window + timedelta(seconds=1), now, window)


def test_missing_date_header_is_incomplete() -> None:
    with pytest.raises(sigv4.SigV4Error) as raised:
        sigv4.request_time({})
    assert raised.value.code == "IncompleteSignatureException"


def test_a_signed_header_missing_from_the_request_is_refused() -> None:
    request = signed()
    headers = {k: v for k, v in request.headers.items() if k != "x-amz-target"}
    stripped = sigv4.IncomingRequest(request.method, request.path, "", headers, request.body)
    with pytest.raises(sigv4.SigV4Error, match="listed in SignedHeaders but is not in the request"):
        verify(stripped)


def test_headers_that_decide_the_request_must_be_signed() -> None:
    request = signed()
    auth = sigv4.parse_authorization(request.headers["authorization"])
    sigv4.check_signed_headers(auth, request.headers)  # botocore signs them all
    narrow = sigv4.Authorization(auth.access_key_id, auth.scope_date, auth.region, auth.service, ("host", "x-amz-date"),
                                 auth.signature)  # fmt: skip
    with pytest.raises(sigv4.SigV4Error) as raised:
        sigv4.check_signed_headers(narrow, request.headers)
    assert raised.value.code == "IncompleteSignatureException"
    assert raised.value.message == "Header 'x-amz-target' must be signed (listed in SignedHeaders)."
    with pytest.raises(sigv4.SigV4Error, match="x-kms-via-service"):
        sigv4.check_signed_headers(
            auth, {**request.headers, "x-kms-via-service": "ec2.us-east-1.amazonaws.com"}
        )
    only_host = sigv4.Authorization(auth.access_key_id, auth.scope_date, auth.region, auth.service, ("host",),
                                    auth.signature)  # fmt: skip
    with pytest.raises(sigv4.SigV4Error, match="x-amz-date"):
        sigv4.check_signed_headers(only_host, {"host": "h", "x-amz-date": "20260101T000000Z"})


def test_the_derived_signing_key_is_reused_but_never_for_another_secret() -> None:
    """The day's signing key is derived once per secret; a rotated secret gets its own, so a request signed with
    the old secret fails once the stored secret has changed (and the old one still verifies its own requests).
    The cache holds digests of secrets, never a secret."""
    sigv4._SIGNING_KEYS.clear()
    request = signed()
    verify(request)
    [entry] = sigv4._SIGNING_KEYS
    derived = sigv4._SIGNING_KEYS[entry]
    verify(request)
    assert list(sigv4._SIGNING_KEYS) == [entry] and sigv4._SIGNING_KEYS[entry] is derived  # reused
    with pytest.raises(sigv4.SigV4Error):
        verify(request, secret=SECRET + "rotated")
    assert len(sigv4._SIGNING_KEYS) == 2
    assert all(
        SECRET.encode() not in part for key in sigv4._SIGNING_KEYS for part in key if isinstance(part, bytes)
    )
    assert all(SECRET not in part for key in sigv4._SIGNING_KEYS for part in key if isinstance(part, str))
    verify(request)
