"""AWS Signature Version 4 verification of an `Authorization` header (pure Python, no Django).

The server side of what botocore's SigV4Auth does: rebuild the canonical request from what arrived, derive the
signing key from the caller's secret, and compare signatures in constant time. Errors carry the AWS error name
and message; nothing here ever includes the secret or the signature in a message.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote

ALGORITHM = "AWS4-HMAC-SHA256"
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_WHITESPACE = re.compile(r"\s+")
_ACCESS_KEY_ID = re.compile(r"^[A-Z0-9]{16,128}$")

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)


class SigV4Error(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _incomplete(message: str) -> SigV4Error:
    return SigV4Error("IncompleteSignatureException", message)


def _invalid(message: str) -> SigV4Error:
    return SigV4Error("InvalidSignatureException", message)


@dataclass(frozen=True)
class Authorization:
    """The parsed `Authorization` header."""

    access_key_id: str
    scope_date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.scope_date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True)
class IncomingRequest:
    """What the verifier needs from an HTTP request. `headers` keys are lower-case."""

    method: str
    path: str
    query_string: str
    headers: Mapping[str, str]
    body: bytes


def parse_authorization(header: str) -> Authorization:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(f"Unsupported AWS 'algorithm': '{algorithm[:40]}'")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, value = item.strip().partition("=")
        if sep:
            parts[name.strip()] = value.strip()
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not parts.get(name)]
    if missing:
        raise _incomplete(" ".join(f"Authorization header requires '{name}' parameter." for name in missing))
    credential = parts["Credential"].split("/")
    if len(credential) != 5 or credential[4] != "aws4_request" or not all(credential):
        raise _incomplete(
            "Credential should be of the form <AccessKeyId>/<Date>/<Region>/<Service>/aws4_request."
        )
    access_key_id, scope_date, region, service, _ = credential
    if not _ACCESS_KEY_ID.match(access_key_id):
        raise SigV4Error(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    signed_headers = tuple(parts["SignedHeaders"].split(";"))
    signature = parts["Signature"]
    if not re.fullmatch(r"[0-9a-f]{64}", signature):
        raise _incomplete("Signature should be 64 lower-case hexadecimal characters.")
    return Authorization(access_key_id, scope_date, region, service, signed_headers, signature)


def credential_access_key_id(header: str) -> str | None:
    """The access key id an Authorization header names, unchecked (None when it names none): a hint only."""
    start = header.find("Credential=")
    end = header.find("/", start)
    if start < 0 or end < 0:
        return None
    candidate = header[start + len("Credential=") : end].strip()
    return candidate if _ACCESS_KEY_ID.match(candidate) else None


_AMZ_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z\Z", re.ASCII)


def request_time(headers: Mapping[str, str]) -> tuple[str, datetime]:
    amz_date = headers.get("x-amz-date", "")
    if not amz_date:
        raise _incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    try:
        # The basic format, parsed without strptime (the slowest step of a request's SigV4 check).
        match = _AMZ_DATE.match(amz_date)
        if match is None:
            raise ValueError(amz_date)
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise _incomplete(
            f"X-Amz-Date must be in the ISO8601 basic format yyyyMMdd'T'HHmmss'Z', not '{amz_date[:40]}'."
        ) from exc
    return amz_date, moment


def check_scope(auth: Authorization, *, amz_date: str, region: str, service: str) -> None:
    if auth.scope_date != amz_date[:8]:
        raise _invalid(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{auth.scope_date[:16]}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    if auth.region != region:
        raise _invalid(f"Credential should be scoped to a valid region, not '{auth.region[:40]}'.")
    if auth.service != service:
        raise _invalid(f"Credential should be scoped to correct service: '{service}'.")
    if "host" not in auth.signed_headers:
        raise _invalid("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")


# Headers that change what a request does: a signature that leaves them out could be replayed with other
# values (another X-Amz-Target for the same body, say). Every x-amz-* and x-kms-* header that is present must
# be signed, and these must be present and signed. (AWS itself only insists on host; SDKs sign them all.)
ALWAYS_SIGNED = ("host", "x-amz-date")
SIGNED_PREFIXES = ("x-amz-", "x-kms-")


def check_signed_headers(auth: Authorization, headers: Mapping[str, str]) -> None:
    """Refuse a signature that does not cover the headers that decide what the request is."""
    signed = set(auth.signed_headers)
    present = {name for name in headers if name.startswith(SIGNED_PREFIXES)}
    unsigned = sorted((set(ALWAYS_SIGNED) | present) - signed)
    if unsigned:
        raise _incomplete(f"Header '{unsigned[0][:64]}' must be signed (listed in SignedHeaders).")


def check_clock_skew(moment: datetime, now: datetime, max_skew: timedelta) -> None:
    """Refuse requests signed too long ago (replays) or too far in the future, with AWS's messages."""
    fmt = _AMZ_DATE_FORMAT
    if moment < now - max_skew:
        minutes = int(max_skew.total_seconds() // 60)
        raise _invalid(
            f"Signature expired: {moment.strftime(fmt)} is now earlier than {(now - max_skew).strftime(fmt)} "
            f"({now.strftime(fmt)} - {minutes} min.)"
        )
    if moment > now + max_skew:
        minutes = int(max_skew.total_seconds() // 60)
        raise _invalid(
            f"Signature not yet current: {moment.strftime(fmt)} is still later than "
            f"{(now + max_skew).strftime(fmt)} ({now.strftime(fmt)} + {minutes} min.)"
        )


def _canonical_query(query_string: str) -> str:
    pairs = parse_qsl(query_string, keep_blank_values=True)
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(pairs))


def canonical_request(request: IncomingRequest, signed_headers: tuple[str, ...]) -> str:
    header_lines = []
    for name in signed_headers:
        value = request.headers.get(name)
        if value is None:
            raise _invalid(f"The header '{name[:64]}' is listed in SignedHeaders but is not in the request.")
        header_lines.append(f"{name}:{_WHITESPACE.sub(' ', value.strip())}\n")
    return "\n".join(
        [
            request.method,
            quote(request.path or "/", safe="/~"),
            _canonical_query(request.query_string),
            "".join(header_lines),
            ";".join(signed_headers),
            hashlib.sha256(request.body).hexdigest(),
        ]
    )


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signing_key(secret: str, auth: Authorization) -> bytes:
    """The day's signing key. Derived once per secret, day, region and service, as AWS SDKs do (four HMACs saved
    per request), and kept under a digest of the secret, never the secret itself: the entry of a rotated or
    deleted access key is never used again (its secret is refused before it is looked up here) and holds only a
    key that expires with its day."""
    cache_key = (hashlib.sha256(secret.encode()).digest(), auth.scope_date, auth.region, auth.service)
    derived = _SIGNING_KEYS.get(cache_key)
    if derived is None:
        derived = _hmac(f"AWS4{secret}".encode(), auth.scope_date)
        derived = _hmac(derived, auth.region)
        derived = _hmac(derived, auth.service)
        derived = _hmac(derived, "aws4_request")
        if len(_SIGNING_KEYS) >= _MAX_SIGNING_KEYS:
            _SIGNING_KEYS.clear()  # a new day, or many keys: start over rather than track ages
        _SIGNING_KEYS[cache_key] = derived
    return derived


_SIGNING_KEYS: dict[tuple[bytes, str, str, str], bytes] = {}
_MAX_SIGNING_KEYS = 1024


def verify_signature(request: IncomingRequest, auth: Authorization, *, secret: str, amz_date: str) -> None:
    """Raise InvalidSignatureException unless the signature matches (constant-time comparison)."""
    if sorted(auth.signed_headers) != list(auth.signed_headers):
        raise _invalid("SignedHeaders must be sorted and lower-case.")
    digest = hashlib.sha256(canonical_request(request, auth.signed_headers).encode()).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{amz_date}\n{auth.scope}\n{digest}"
    expected = hmac.new(signing_key(secret, auth), string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, auth.signature):
        raise _invalid(SIGNATURE_MISMATCH)
