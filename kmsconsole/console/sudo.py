"""Sudo mode: a destructive console action asks for the password again unless it was given in the last
KMS_SUDO_SECONDS. Stolen session cookies then cannot disable keys, schedule deletion, change policies, revoke
grants or mint access keys."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

SUDO_AT = "kms_sudo_at"

View = TypeVar("View", bound=Callable[..., HttpResponse])


def sudo_fresh(request: HttpRequest) -> bool:
    confirmed = int(request.session.get(SUDO_AT, 0))
    return confirmed > 0 and time.time() - confirmed <= settings.KMS_SUDO_SECONDS


def grant_sudo(request: HttpRequest) -> None:
    request.session[SUDO_AT] = int(time.time())


def safe_next(request: HttpRequest, candidate: str | None, fallback: str) -> str:
    """A path on this site to return to; anything else (another host, a scheme) becomes `fallback`."""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parts = urlsplit(candidate)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return fallback


def sudo_required(view: View) -> View:
    """Unsafe requests to `view` need a fresh password confirmation; without one the browser is sent to the
    confirmation page, which returns to the page the action came from. Nothing is changed until then."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method in ("GET", "HEAD", "OPTIONS") or sudo_fresh(request):
            return view(request, *args, **kwargs)
        came_from = request.headers.get("HX-Current-URL") or request.META.get("HTTP_REFERER")
        back = safe_next(request, came_from, request.path)
        target = f"{reverse('console:sudo')}?{urlencode({'next': back})}"
        if request.headers.get("HX-Request"):
            response = HttpResponse(status=204)
            response["HX-Redirect"] = target
            return response
        return HttpResponseRedirect(target)

    return wrapped  # type: ignore[return-value]
