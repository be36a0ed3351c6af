"""Authenticating a KMS request: SigV4 against the caller's stored secret, plus session tokens."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from kmsconsole.audit.recorder import AuditRecord
from kmsconsole.awskms import sigv4
from kmsconsole.core import errors
from kmsconsole.core.context import Caller
from kmsconsole.core.rootkey import root_keys
from policies.selectors import credentials_for, session_token_key
from policies.session_tokens import session_token_rehash

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
    # A refusal from here on is of a real principal's access key: its event goes to that account's trail, the
    # caller still anonymous (AuditRecord.presented). Known from the lookup just made (the process's credential
    # cache on the hot path): no query, and the answer to the client is the same.
    record.presented = credentials.caller
    token = request.headers.get("x-amz-security-token", "")
    token_key = None
    if credentials.is_temporary:
        # Under any readable root key: a session made before a rotation works until its key is retired.
        token_key = session_token_key(token, credentials.session_token_digest) if token else None
        if token_key is None:
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
    if token_key is not None and token_key.key_id != root_keys().current.key_id:
        # Authenticated with a token under a previous key: hash it under the current one now (never fails the
        # request; its own audit write may find the credentials' generation moved, and serve it again).
        session_token_rehash(credentials.caller, token)
    return credentials.caller
