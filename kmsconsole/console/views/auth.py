"""Sign-in (throttled by django-axes), and the password confirmation that opens sudo mode."""

from __future__ import annotations

import contextlib

from axes.helpers import get_client_ip_address
from axes.utils import reset as reset_axes_attempts
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from kmsconsole.audit.authevents import CONFIRM_PASSWORD, record_authenticated, record_refused
from kmsconsole.console.dispatch import console_caller, request_meta, untrusted_login
from kmsconsole.console.sudo import Pending, grant_sudo, pending_for, replay, safe_next, take_pending
from kmsconsole.core import errors

WRONG_CONFIRMATION = "The password typed to confirm did not match the signed-in login's."
NOT_COMPLETED = (
    "Your password is confirmed, but the action you submitted was not done: it waited too long for the "
    "password, or another action replaced it. Submit it again."
)
UNRECORDED = (
    "The confirmation could not be recorded in the audit trail, so sudo mode stays closed. Try again."
)


@sensitive_post_parameters("password")
@never_cache
@login_required
def sudo(request: HttpRequest) -> HttpResponse:
    """Ask for the password again. A wrong one counts toward the sign-in lockout like any failed sign-in. Each
    confirmation, right or wrong, is one audit event (never the password): sudo mode opens only once it is
    written, and a wrong one is a guess at the password of a session someone may have left open.

    `action` names the request that led here (`console.sudo.sudo_required` kept it): the prompt says what it is,
    and the right password completes it, once, as that login's request."""
    back = safe_next(request, request.POST.get("next") or request.GET.get("next"), reverse("home"))
    action = request.POST.get("action") or request.GET.get("action") or ""
    error = ""
    if request.method == "POST":
        confirmed = authenticate(
            request, username=request.user.get_username(), password=request.POST.get("password", "")
        )
        try:
            caller = console_caller(request)
        except errors.KmsError as untrusted:
            return untrusted_login(request, untrusted)
        meta, params = request_meta(request), {"UserName": request.user.get_username()}
        if confirmed is not None and confirmed.pk == request.user.pk:
            try:
                record_authenticated(
                    meta,
                    operation=CONFIRM_PASSWORD,
                    caller=caller,
                    params=params,
                    reason="The password was confirmed: sudo mode is open.",
                )
            except errors.KmsError:
                # Unrecorded, sudo mode stays closed (fail closed); the recorder logged the write that failed.
                context = _context(request, back, action, UNRECORDED)
                return render(request, "console/sudo.html", context, status=503)
            grant_sudo(request)
            _reset_failures(request)
            pending = take_pending(request, action)
            if pending is not None:
                return replay(request, pending)
            if action:
                messages.warning(request, NOT_COMPLETED)
            return HttpResponseRedirect(back)
        with contextlib.suppress(errors.KmsError):  # the refusal stands either way; the recorder logged it
            record_refused(
                meta,
                errors.AccessDeniedException(WRONG_CONFIRMATION),
                operation=CONFIRM_PASSWORD,
                params=params,
                reason=WRONG_CONFIRMATION,
                # The session authenticated the caller; the password typed again is what was refused. The event
                # names that caller (so its account's auditors see it) and is not bounded by the ledger of
                # refusals of credentials presented by anyone (admit_presented): only the session's holder can
                # make it, and django-axes locks it out.
                caller=caller,
            )
        if getattr(request, "axes_locked_out", False):
            return render(request, settings.AXES_LOCKOUT_TEMPLATE, status=settings.AXES_HTTP_RESPONSE_CODE)
        error = "That password is not right. Try again."
    context = _context(request, back, action, error)
    return render(request, "console/sudo.html", context, status=400 if error else 200)


def _context(request: HttpRequest, back: str, action: str, error: str) -> dict[str, object]:
    pending = pending_for(request, action)
    return {
        "next": back,
        "action": action,
        "pending": pending,
        "policy_diff": _key_policy_diff(request, pending) if request.method == "GET" else None,
        "error": error,
        # 0: the password is asked before every sensitive action (kmsconsole.console.sudo.sudo_fresh).
        "sudo_minutes": max(1, settings.KMS_SUDO_SECONDS // 60) if settings.KMS_SUDO_SECONDS > 0 else 0,
    }


def _key_policy_diff(request: HttpRequest, pending: Pending | None) -> list[tuple[str, str]] | None:
    """A PutKeyPolicy waiting for the password: its document against the key's current policy, read by
    GetKeyPolicy as the caller (authorized and recorded as any read; no diff when it is refused)."""
    if pending is None or pending.operation != "PutKeyPolicy":
        return None
    key_id, document = pending.parameters.get("KeyId"), pending.parameters.get("Policy")
    if not isinstance(key_id, str) or not isinstance(document, str):
        return None
    from kmsconsole.console.views.policy import diff_lines, read_policy  # the policy tab's own read and diff

    current = read_policy(request, key_id)
    if not current.ok or current.value is None:
        return None
    return diff_lines(current.value[1], document, before_label="current policy", after_label="this request")


def _reset_failures(request: HttpRequest) -> None:
    """A right password here proves what a sign-in proves, so it clears this user name's failures from this
    address as a successful sign-in does (AXES_RESET_ON_SUCCESS): without it, failed confirmations added up across
    the day until one typo locked the user out of the console."""
    address = get_client_ip_address(request)
    if address:  # both, always: never every address's failures for this user name
        reset_axes_attempts(ip=address, username=request.user.get_username())
