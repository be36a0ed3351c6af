"""Audit events of authentication itself: console sign-in and sign-out, refused REST credentials, a console login
whose link to its IAM user fails its integrity check, and throttled requests.

These happen before there is a principal to authorize, so they are not operations of `perform()`; they are
written through the same recorder (one chained event each, fail closed). They name the principal when one is
known, otherwise the name that was tried (a user name, an API token's public prefix), never a password, a
token's secret or a signature.
"""

from __future__ import annotations

from typing import Any

from kmsconsole.audit.recorder import AuditRecord, record_event, record_failure
from kmsconsole.core import errors, ratelimit
from kmsconsole.core.context import Caller, RequestMeta

SIGN_IN = "kmsconsole:ConsoleSignIn"
SIGN_OUT = "kmsconsole:ConsoleSignOut"
# The password typed again to open sudo mode (the console's confirmation before changes of who can do what).
CONFIRM_PASSWORD = "kmsconsole:ConfirmPassword"  # noqa: S105 - an operation name
# A request whose credentials were refused (or could not be trusted) before any operation began.
AUTHENTICATE = "kmsconsole:Authenticate"
# Every name above: what the trail records besides the operations (kmsconsole.operations.OPERATIONS).
AUTHENTICATION_EVENTS = (SIGN_IN, SIGN_OUT, CONFIRM_PASSWORD, AUTHENTICATE)
RELINKED = (
    "The console login's link to its IAM user failed its integrity check (changed outside the service)."
)


def record_authenticated(
    meta: RequestMeta, *, operation: str, caller: Caller | None, params: dict[str, Any], reason: str
) -> None:
    """A sign-in or sign-out that happened."""
    record = AuditRecord(operation=operation, meta=meta, caller=caller, request_parameters=params)
    record.reason = reason
    record_event(record)


def record_refused(
    meta: RequestMeta,
    error: errors.KmsError,
    *,
    operation: str = AUTHENTICATE,
    params: dict[str, Any] | None = None,
    credential_id: str = "",
    reason: str = "",
) -> None:
    """Refused credentials (or a throttled request), as a failed or denied event; raises KMSInternalException if
    it cannot be written."""
    record = AuditRecord(
        operation=operation, meta=meta, access_key_id=credential_id, request_parameters=params
    )
    record.reason = reason
    record_failure(record, error)


def record_throttled(record: AuditRecord, refusal: ratelimit.Throttled) -> None:
    """A throttled request, if the ledger admits it (at most one event per subject and interval); raises
    KMSInternalException if an admitted event cannot be written."""
    reason = ratelimit.audit_admission(refusal)
    if reason is None:
        return
    record.reason = reason
    record_failure(record, refusal)
