"""Audit events of authentication itself: console sign-in and sign-out, refused REST credentials, a console login
whose link to its IAM user fails its integrity check, and throttled requests.

These happen before there is a principal to authorize, so they are not operations of `perform()`; they are
written through the same recorder (one chained event each, fail closed). They name the principal when one is
known, otherwise the name that was tried (a user name, an API token's public prefix), never a password, a
token's secret or a signature. A refusal of credentials that belong to a principal (a real login's wrong password,
a real token's wrong secret) names that principal as the one the credentials belonged to and goes to its account's
trail (`AuditRecord.presented`); its caller stays anonymous. The answer to the client is the same either way.
Anyone who knows an access key id, a login name or a token prefix can make such refusals, so they reach the
account's trail through a ledger (`admit_presented`): the first per credential and address, then one per
KMS_THROTTLE_AUDIT_SECONDS with the count of those left out.
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
    presented: Caller | None = None,
    caller: Caller | None = None,
) -> None:
    """Refused credentials (or a throttled request), as a failed or denied event; raises KMSInternalException if
    it cannot be written. `presented`: the principal the refused credentials belong to, if any (recorded if the
    ledger admits it, `admit_presented`). `caller`: the principal the request was authenticated as, if it was (a
    wrong password typed again inside a signed-in session)."""
    record = AuditRecord(
        operation=operation,
        meta=meta,
        caller=caller,
        access_key_id=credential_id,
        request_parameters=params,
        presented=presented,
    )
    record.reason = reason
    if admit_presented(record):
        record_failure(record, error)


def admit_presented(record: AuditRecord) -> bool:
    """Whether the refusal in `record` is to be written. Always, unless it is a refusal of a real principal's
    credentials before authentication (`AuditRecord.presented`, no caller): then only if the ledger admits it
    (kmsconsole.core.ratelimit.presented_admission), its reason then saying how many were left out since the last
    one recorded. The credential is the access key id or token prefix presented, or the login's principal."""
    presented = record.presented
    if presented is None or record.caller is not None:
        return True
    credential = record.access_key_id or presented.arn
    unrecorded = ratelimit.presented_admission(presented.account_id, credential, record.meta.source_ip)
    if unrecorded is None:
        return False
    if unrecorded:
        left_out = (
            f"{unrecorded} more refused attempts with this credential from this address were not recorded since "
            "the last one recorded."
        )
        record.reason = " ".join(part for part in (record.reason, left_out) if part)
    return True


def record_throttled(record: AuditRecord, refusal: ratelimit.Throttled) -> None:
    """A throttled request, if the ledger admits it (at most one event per subject and interval); raises
    KMSInternalException if an admitted event cannot be written."""
    reason = ratelimit.audit_admission(refusal)
    if reason is None:
        return
    record.reason = reason
    record_failure(record, refusal)
