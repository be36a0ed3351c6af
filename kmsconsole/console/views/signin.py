"""Signing in and out of the console, each one audit event (kmsconsole.audit.authevents).

Django's LoginView does the work (django-axes refuses locked-out user names and addresses before the password is
checked; kmsconsole.console.signin_lockout); these views add the audit trail. An event names the IAM user the
login acts as when there is one, and always the user name that was tried, never the password. A lockout is
audited like any throttled request: at most once per address, account the name belongs to (or "unknown") and
interval, with the count of those left out.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse

from kmsconsole.audit.authevents import (
    SIGN_IN,
    SIGN_OUT,
    record_authenticated,
    record_refused,
    record_throttled,
)
from kmsconsole.audit.recorder import AuditRecord
from kmsconsole.console.dispatch import (
    console_caller,
    login_caller,
    login_presented,
    request_meta,
    untrusted_login,
)
from kmsconsole.core import errors, ratelimit
from kmsconsole.core.context import Caller
from kmsconsole.core.jsonbody import text_problem

logger = logging.getLogger(__name__)

_USER_NAME_MAX = 150  # Django's username length: anything longer was never a user name
WRONG_PASSWORD = "The user name and password did not match an active console login."  # noqa: S105 - a message


def _tried(form: AuthenticationForm) -> dict[str, Any]:
    return {"UserName": str(form.data.get("username", ""))[:_USER_NAME_MAX]}


def _lookup_name(form: AuthenticationForm) -> str:
    """The user name to look a refused sign-in's login up by: the form's cleaned value, "" when the field itself
    was refused (a NUL character, a lone surrogate, too long), which no login can have and no query may be sent."""
    name = form.cleaned_data.get("username") if hasattr(form, "cleaned_data") else None
    if not isinstance(name, str) or not name or text_problem(name):
        return ""
    return name


class SignInView(auth_views.LoginView):
    template_name = "core/signin.html"
    redirect_authenticated_user = True

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        """The password was right. The login's link is checked and the sign-in recorded before the session
        exists: a link changed in the database, or an event that cannot be written, signs nobody in."""
        try:
            caller = login_caller(form.get_user().pk)
            record_authenticated(
                request_meta(self.request),
                operation=SIGN_IN,
                caller=caller,
                params=_tried(form),
                reason="The password was verified."
                if caller
                else "The password was verified; the login is linked to no IAM principal.",
            )
        except errors.KmsError as error:
            return untrusted_login(self.request, error)
        return super().form_valid(form)

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        request = self.request
        meta = request_meta(request)
        tried = _tried(form)
        try:
            # A real login's refusal goes to its account's trail (the caller stays anonymous); looked up for every
            # refused name that could be one, so the answer and its timing do not tell names apart.
            presented = login_presented(name) if (name := _lookup_name(form)) else None
            if getattr(request, "axes_locked_out", False):
                # One ledger entry per address and account named, so one account's lockouts never hide another's.
                whose = presented.account_id if presented is not None else "unknown"
                refusal = ratelimit.Throttled(
                    "Too many failed sign-ins.",
                    subject=f"signin:{ratelimit.address_key(meta.source_ip)}:{whose}",
                    reason="Throttled: too many failed sign-ins for this user name from this address, or for any "
                    "user name from this address (django-axes).",
                    retry_after=int(settings.AXES_COOLOFF_TIME.total_seconds()),
                )
                record_throttled(
                    AuditRecord(operation=SIGN_IN, meta=meta, request_parameters=tried, presented=presented),
                    refusal,
                )
            else:
                record_refused(
                    meta,
                    errors.AccessDeniedException(WRONG_PASSWORD),
                    operation=SIGN_IN,
                    params=tried,
                    reason=WRONG_PASSWORD,
                    presented=presented,
                )
        except errors.KmsError:
            # Nobody was signed in, so nothing is undone; the page below answers, the server log has the write.
            logger.error("A refused sign-in could not be recorded in the audit trail")
        return super().form_invalid(form)


def record_sign_out(request: HttpRequest, reason: str) -> None:
    """Record that the signed-in login's session ends. Never stops the sign-out: ending a session is the safe
    outcome even when the event cannot be written (the failure is logged)."""
    caller: Caller | None
    try:
        caller = console_caller(request)
    except errors.KmsError:
        caller = None  # a relinked login: the event names the login only
    try:
        record_authenticated(
            request_meta(request),
            operation=SIGN_OUT,
            caller=caller,
            params={"UserName": request.user.get_username()},
            reason=reason,
        )
    except errors.KmsError:
        logger.error("A console sign-out could not be recorded in the audit trail")


class SignOutView(auth_views.LogoutView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            record_sign_out(request, "Signed out.")
        return super().post(request, *args, **kwargs)
