"""How every console view calls the service layer: through `perform()`, as the IAM user the login is linked to,
with interface "console", so a click is authorized by the engine and audited like an SDK call.

Views are thin: parse the form, `run()` or `attempt()` a service, render. A refusal or a bad value from the
service layer becomes a sentence on the page (`Outcome.error`), never a 500.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import wraps
from typing import Any, Generic, TypeVar

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from kmsconsole.api.authentication import user_caller
from kmsconsole.audit.authevents import RELINKED, record_refused
from kmsconsole.console.sudo import decide_first
from kmsconsole.core import errors
from kmsconsole.core.context import Caller, RequestMeta
from kmsconsole.core.middleware import http_request_meta
from kmsconsole.operations import OperationContext, perform
from policies.models import ConsoleIdentity

logger = logging.getLogger(__name__)
DECIDED_NOT_STOPPED = "The action was not stopped before the password was confirmed, so nothing was done."

Value = TypeVar("Value")
View = TypeVar("View", bound=Callable[..., HttpResponse])


def login_caller(login_pk: Any) -> Caller | None:
    """The IAM user a console login is linked to, or None for a login no operator has linked. A link changed in
    the database (to another IAM user) raises KMSInternalException: it fails closed."""
    identity = ConsoleIdentity.objects.select_related("iam_user__account").filter(login_id=login_pk).first()
    if identity is None:
        return None
    identity.check_row()
    return user_caller(identity.iam_user)


def login_presented(user_name: str) -> Caller | None:
    """The IAM user the console login named `user_name` is linked to, for the audit event of a refused sign-in
    (`AuditRecord.presented`): None for a name no login has, a login no operator has linked, or a link that fails
    its integrity check (an event is never filed under an account on a link nobody can vouch for). One query,
    made for every refused sign-in whatever the name, so the page takes as long for a name that exists."""
    identity = (
        ConsoleIdentity.objects.select_related("iam_user__account").filter(login__username=user_name).first()
    )
    if identity is None:
        return None
    try:
        identity.check_row()
    except errors.KmsError:
        return None
    return user_caller(identity.iam_user)


def console_caller(request: HttpRequest) -> Caller | None:
    """The IAM user the signed-in login acts as, or None for a login no operator has linked."""
    cached = getattr(request, "_kms_caller", False)
    if cached is not False:
        return cached  # type: ignore[no-any-return]
    caller = login_caller(request.user.pk)
    request._kms_caller = caller  # type: ignore[attr-defined]
    return caller


def untrusted_login(request: HttpRequest, error: errors.KmsError) -> HttpResponse:
    """A login whose link failed its integrity check: audited (the login's name, never its password), then a page
    that says so. Nothing is done as any principal."""
    # The page below is the answer either way; a failed write is in the server log (record_failure logs it).
    with contextlib.suppress(errors.KmsError):
        record_refused(
            request_meta(request),
            error,
            params={"ConsoleLogin": request.user.get_username() or request.POST.get("username", "")[:150]},
            reason=RELINKED,
        )
    return render(request, "console/login_untrusted.html", status=500)


def request_meta(request: HttpRequest) -> RequestMeta:
    return http_request_meta(request, "console")


def console_view(view: View) -> View:
    """Signed in, and linked to a principal: what every console page needs before it can call a service."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            caller = console_caller(request)
        except errors.KmsError as error:
            return untrusted_login(request, error)
        if caller is None:
            return render(request, "console/unlinked.html", status=403)
        return view(request, *args, **kwargs)

    return wrapped  # type: ignore[return-value]


def run(
    request: HttpRequest,
    operation: str,
    work: Callable[[OperationContext], Value],
    *,
    params: Mapping[str, Any] | None = None,
    audit_response: Callable[[Value], Mapping[str, Any]] | None = None,
) -> Value:
    """Run `work` as `operation` for the signed-in principal; raise the service's KmsError if it fails."""
    caller = console_caller(request)
    if caller is None:
        raise errors.AccessDeniedException("This console login is not linked to an IAM principal.")
    holder: dict[str, Value] = {}
    deciding = decide_first(request)

    def service(ctx: OperationContext) -> Mapping[str, Any]:
        if deciding:  # a sensitive action without a fresh password: decided, not done (console.sudo)
            ctx = replace(ctx, decide_only=True)
        holder["value"] = work(ctx)
        if deciding and not ctx.operation.read_only:
            # A change decided only must stop at its decision (WouldBeAllowed); one that returned did its work
            # without asking the engine on this context, or after it. Fail closed: raised inside the
            # operation's transaction, so whatever it wrote rolls back, and the failure is recorded.
            logger.error("%s returned while only deciding: rolled back", operation)
            raise errors.KMSInternalException(DECIDED_NOT_STOPPED)
        return dict(audit_response(holder["value"])) if audit_response is not None else {}

    perform(operation, caller=caller, meta=request_meta(request), params=dict(params or {}), service=service)
    return holder["value"]


@dataclass(frozen=True)
class Outcome(Generic[Value]):
    """What `attempt()` gives back: the value, or the error in words for the page (and its AWS code)."""

    value: Value | None = None
    error: str = ""
    code: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


# AWS sends some errors with no message at all (on purpose: saying more would help an attacker); a person at the
# console still needs a sentence.
_WORDLESS_ERRORS = {
    "InvalidCiphertextException": "The ciphertext could not be decrypted: it is damaged, was made by another "
    "key, or the encryption context differs from the one used to encrypt it.",
    "KMSInvalidMacException": "The MAC does not match this message under this key and algorithm.",
    "KMSInvalidSignatureException": "The signature does not match this message under this key and algorithm.",
}


def error_text(exc: errors.KmsError) -> str:
    """The service layer's message, phrased for a person. AccessDenied names the principal, action and
    resource, which is exactly what an admin needs to fix the policy."""
    message = exc.message or _WORDLESS_ERRORS.get(exc.code, exc.code)
    if exc.code == "AccessDeniedException":
        return f"Refused. {message}"
    if exc.fault:
        return f"The service could not complete this right now ({exc.code}). Try again in a moment."
    return message


def attempt(
    request: HttpRequest,
    operation: str,
    work: Callable[[OperationContext], Value],
    *,
    params: Mapping[str, Any] | None = None,
    audit_response: Callable[[Value], Mapping[str, Any]] | None = None,
) -> Outcome[Value]:
    """`run()`, with a failure returned as an Outcome for an inline message instead of raised."""
    try:
        return Outcome(value=run(request, operation, work, params=params, audit_response=audit_response))
    except errors.KmsError as exc:
        return Outcome(error=error_text(exc), code=exc.code)
