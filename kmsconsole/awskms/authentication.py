"""Authenticating a KMS request: SigV4 against the caller's stored secret, plus session tokens."""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta

from django.conf import settings

from kmsconsole.audit.recorder import AuditRecord
from kmsconsole.awskms import sigv4
from kmsconsole.core import errors
from kmsconsole.core.context import Caller
from policies.selectors import credentials_for, session_token_digest

SERVICE = "kms"
INVALID_TOKEN = "The security token included in the request is invalid."  # noqa: S105 - an error message
EXPIRED_TOKEN = "The security token included in the request is expired"  # noqa: S105 - an error message


def authenticate(
    request: sigv4.IncomingRequest, *, record: AuditRecord, now: datetime, max_skew: timedelta
) -> Caller:
    """The verified caller of a request, or the AWS error for why it is not one."""
    header = request.headers.get("authorization")
    if not header:
        raise errors.MissingAuthenticationTokenException("Missing Authentication Token")
    try:
        auth = sigv4.parse_authorization(header)
        record.access_key_id = auth.access_key_id
        amz_date, moment = sigv4.request_time(request.headers)
        sigv4.check_scope(auth, amz_date=amz_date, region=settings.KMS_REGION, service=SERVICE)
        sigv4.check_signed_headers(auth, request.headers)
        sigv4.check_clock_skew(moment, now, max_skew)
    except sigv4.SigV4Error as exc:
        raise errors.error_for_code(exc.code, exc.message) from None

    credentials = credentials_for(auth.access_key_id)
    if credentials is None:
        raise errors.UnrecognizedClientException(INVALID_TOKEN)
    token = request.headers.get("x-amz-security-token", "")
    if credentials.is_temporary:
        if not token or not hmac.compare_digest(
            session_token_digest(token), credentials.session_token_digest
        ):
            raise errors.UnrecognizedClientException(INVALID_TOKEN)
        if credentials.expires_at is not None and credentials.expires_at <= now:
            raise errors.ExpiredTokenException(EXPIRED_TOKEN)
    elif token:
        # A session token with a long-term key is a mismatched credential set.
        raise errors.UnrecognizedClientException(INVALID_TOKEN)
    try:
        sigv4.verify_signature(request, auth, secret=credentials.secret, amz_date=amz_date)
    except sigv4.SigV4Error as exc:
        raise errors.error_for_code(exc.code, exc.message) from None
    return credentials.caller
