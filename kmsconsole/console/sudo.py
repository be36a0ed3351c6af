"""Sudo mode: a console action that changes who can do what asks for the password again unless it was given in
the last KMS_SUDO_SECONDS. A stolen session cookie then cannot disable keys, schedule deletion, change key or
identity policies, grants, group membership, access keys, or the tags and aliases that ABAC conditions
(aws:ResourceTag, kms:ResourceAliases, kms:RequestAlias) decide by."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

SUDO_AT = "kms_sudo_at"
# A form posted without sudo, kept for the page it came from so the confirmation does not lose what was typed.
KEPT_FORM = "kms_sudo_kept_form"
# Never kept: the CSRF token (a new page has its own) and anything that could be a password.
_NEVER_KEPT = frozenset({"csrfmiddlewaretoken", "password"})
# A draft larger than this is not kept (the session is stored in the database; a policy is at most ~10 KiB).
_KEPT_MAX_CHARS = 64 * 1024

View = TypeVar("View", bound=Callable[..., HttpResponse])


def sudo_fresh(request: HttpRequest) -> bool:
    confirmed = int(request.session.get(SUDO_AT, 0))
    return confirmed > 0 and time.time() - confirmed <= settings.KMS_SUDO_SECONDS


def grant_sudo(request: HttpRequest) -> None:
    request.session[SUDO_AT] = int(time.time())


def safe_next(request: HttpRequest, candidate: str | None, fallback: str) -> str:
    """A path on this site to return to; anything else (another host, a scheme) becomes `fallback`.

    Only the path and query of an allowed URL are kept, so the path itself must not name another host: from
    `http://<this host>//evil.example/x` it is `//evil.example/x`, which a browser reads as a protocol-relative URL
    (and `/\\evil.example` likewise)."""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parts = urlsplit(candidate)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if path.startswith("/") and url_has_allowed_host_and_scheme(path, allowed_hosts=set()):
            return path
    return fallback


def _keep_form(request: HttpRequest) -> bool:
    fields = {name: values for name, values in request.POST.lists() if name not in _NEVER_KEPT}
    if sum(len(value) for values in fields.values() for value in values) > _KEPT_MAX_CHARS:
        return False
    request.session[KEPT_FORM] = {"path": request.path, "fields": fields}
    return True


def kept_form(request: HttpRequest) -> QueryDict | None:
    """The form this page posted before the password confirmation, once (it leaves the session here)."""
    kept = request.session.get(KEPT_FORM)
    if not isinstance(kept, dict) or kept.get("path") != request.path:
        return None
    del request.session[KEPT_FORM]
    data = QueryDict(mutable=True)
    for name, values in kept.get("fields", {}).items():
        data.setlist(name, [str(value) for value in values])
    return data


def _to_confirmation(request: HttpRequest, *, keep_form: bool) -> HttpResponse:
    if keep_form and _keep_form(request):
        # The form's own page (its GET) shows the kept draft; submitting it again then saves.
        back = request.path
    else:
        came_from = request.headers.get("HX-Current-URL") or request.META.get("HTTP_REFERER")
        back = safe_next(request, came_from, request.path)
    target = f"{reverse('console:sudo')}?{urlencode({'next': back})}"
    if request.headers.get("HX-Request"):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return HttpResponseRedirect(target)


def _sudo_guard(view: View, *, keep_form: bool) -> View:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method in ("GET", "HEAD", "OPTIONS") or sudo_fresh(request):
            return view(request, *args, **kwargs)
        return _to_confirmation(request, keep_form=keep_form)

    return wrapped  # type: ignore[return-value]


def sudo_required(view: View) -> View:
    """Unsafe requests to `view` need a fresh password confirmation; without one the browser is sent to the
    confirmation page, which returns to the page the action came from. Nothing is changed until then."""
    return _sudo_guard(view, keep_form=False)


def sudo_required_keeping_form(view: View) -> View:
    """`sudo_required` for a view whose GET shows the form it posts (an editor): the posted fields are kept in
    the session, the confirmation returns to the form, and the view fills it from `kept_form()`."""
    return _sudo_guard(view, keep_form=True)
