"""Sign-in (throttled by django-axes), and the password confirmation that opens sudo mode."""

from __future__ import annotations

from axes.helpers import get_client_ip_address
from axes.utils import reset as reset_axes_attempts
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from kmsconsole.console.sudo import grant_sudo, safe_next


@sensitive_post_parameters("password")
@never_cache
@login_required
def sudo(request: HttpRequest) -> HttpResponse:
    """Ask for the password again. A wrong one counts toward the sign-in lockout like any failed sign-in."""
    back = safe_next(request, request.POST.get("next") or request.GET.get("next"), reverse("home"))
    error = ""
    if request.method == "POST":
        confirmed = authenticate(
            request, username=request.user.get_username(), password=request.POST.get("password", "")
        )
        if confirmed is not None and confirmed.pk == request.user.pk:
            grant_sudo(request)
            _reset_failures(request)
            return HttpResponseRedirect(back)
        if getattr(request, "axes_locked_out", False):
            return render(request, settings.AXES_LOCKOUT_TEMPLATE, status=settings.AXES_HTTP_RESPONSE_CODE)
        error = "That password is not right. Try again."
    context = {"next": back, "error": error, "sudo_minutes": max(1, settings.KMS_SUDO_SECONDS // 60)}
    return render(request, "console/sudo.html", context, status=400 if error else 200)


def _reset_failures(request: HttpRequest) -> None:
    """A right password here proves what a sign-in proves, so it clears this user name's failures from this
    address as a successful sign-in does (AXES_RESET_ON_SUCCESS): without it, failed confirmations added up across
    the day until one typo locked the user out of the console."""
    address = get_client_ip_address(request)
    if address:  # both, always: never every address's failures for this user name
        reset_axes_attempts(ip=address, username=request.user.get_username())
