"""Sudo mode: a console action that changes who can do what asks for the password again unless it was given in
the last KMS_SUDO_SECONDS. A stolen session cookie then cannot disable keys, schedule deletion, change key or
identity policies, grants, group membership, access keys, or the tags and aliases that ABAC conditions
(aws:ResourceTag, kms:ResourceAliases, kms:RequestAlias) decide by.

Without a fresh confirmation, `sudo_required` first lets the engine decide the caller's permission for the request
(`decide_first`): a refused caller is answered at once, with the refusal's one audit event, and is never asked for
a password that could not help. A request that would be allowed stops at its first allowed decision, with nothing
done (`WouldBeAllowed`; checks a service makes after that decision run only after the password); the prompt is
one `REQUEST_CONFIRMATION` event, the fields the view names (`keep`) wait in the session (`PENDING`), and the
confirmation then performs exactly that request (`take_pending`, `replay`, marked confirmed for that one request):
what was typed is neither lost nor typed again. A change that returns while only deciding fails closed in
`kmsconsole.console.dispatch.run`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.urls import resolve, reverse
from django.utils.datastructures import MultiValueDict
from django.utils.http import url_has_allowed_host_and_scheme

from kmsconsole.audit.authevents import record_authenticated
from kmsconsole.audit.recorder import WouldBeAllowed
from kmsconsole.core import errors

SUDO_AT = "kms_sudo_at"
# The one request waiting for the password (a newer one replaces it).
PENDING = "kms_sudo_pending"
# How long a request waits for the password. The confirmation also checks the login and the id the prompt was
# shown with: a request is completed only for the login that sent it, from the prompt it led to, within minutes
# (whoever confirms later may not be the person who typed it).
PENDING_MAX_SECONDS = 10 * 60
# A request larger than this is not kept (the session is stored in the database; a key policy is at most 32 KB).
_KEPT_MAX_CHARS = 64 * 1024
# The confirmation page has its own CSRF token, and the request's was checked when it was posted.
_CSRF_FIELD = "csrfmiddlewaretoken"
# A field whose name says it may hold a password or a secret is never stored; a request that posts one (with a
# value) is not kept at all, since completing it without that field would be another request.
_SECRET_NAME_PARTS = ("password", "secret", "plaintext", "token")
NOT_KEPT = (
    "This action cannot wait for your password (it carries a file, a secret or too much text): once you have "
    "confirmed, submit it again."
)
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Set on a request while `sudo_required` lets the engine decide it before the password (`decide_first`).
_DECIDING = "_kms_sudo_deciding"
# Set on the request the confirmation replays: its password was just typed for exactly this request, whatever
# KMS_SUDO_SECONDS says (0 asks every time; the replay must not ask again).
_CONFIRMED = "_kms_sudo_confirmed"
# The prompt issued for a request that would be allowed: one audit event each (no change made), so a stolen
# session probing what it could do shows in the trail.
REQUEST_CONFIRMATION = "kmsconsole:RequestConfirmation"
UNRECORDED_PROMPT = "The request could not be recorded in the audit trail, so it was not kept. Try again."
# Every view `sudo_required` protects (the tests run each one without a confirmation).
SUDO_VIEWS: list[Callable[..., HttpResponse]] = []

View = TypeVar("View", bound=Callable[..., HttpResponse])


def sudo_fresh(request: HttpRequest) -> bool:
    """The password was confirmed in the last KMS_SUDO_SECONDS (never when it is 0: every action asks)."""
    confirmed = int(request.session.get(SUDO_AT, 0))
    seconds = settings.KMS_SUDO_SECONDS
    return seconds > 0 and confirmed > 0 and time.time() - confirmed <= seconds


def grant_sudo(request: HttpRequest) -> None:
    request.session[SUDO_AT] = int(time.time())


def decide_first(request: HttpRequest) -> bool:
    """Whether the console's operations in this request are only to be decided (`OperationContext.decide_only`):
    the request is a sensitive action posted without a fresh confirmation."""
    return bool(getattr(request, _DECIDING, False))


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


@dataclass(frozen=True)
class Pending:
    """A request waiting for the password: where it was posted, its fields (never a CSRF token or a secret), and
    what the engine decided it is (the operation and its audited parameters, shown on the prompt)."""

    id: str
    login: Any
    at: float
    path: str
    path_info: str
    query: str
    fields: dict[str, list[str]]
    operation: str
    parameters: dict[str, Any]

    def summary(self) -> list[tuple[str, str, bool]]:
        """The parameters as the prompt lists them, each in full (never cut: what is done is what is shown), and
        whether it is long (shown in a scrollable block)."""
        return [(name, text, "\n" in text or len(text) > _SHORT) for name, text in _shown(self.parameters)]


_SHORT = 120


def _shown(parameters: dict[str, Any]) -> list[tuple[str, str]]:
    shown = []
    for name, value in parameters.items():
        if isinstance(value, str):
            text = value
            with contextlib.suppress(ValueError):  # a JSON document (a policy) is laid out to be read
                parsed = json.loads(value)
                if isinstance(parsed, dict | list):
                    text = json.dumps(parsed, indent=2)
        else:
            text = json.dumps(value, indent=2, default=str) if isinstance(value, dict | list) else str(value)
        shown.append((name, text))
    return shown


def _kept_name(name: str, keep: tuple[str, ...]) -> bool:
    return any(name == kept or (kept.endswith("*") and name.startswith(kept[:-1])) for kept in keep)


def _keepable_fields(request: HttpRequest, keep: tuple[str, ...]) -> dict[str, list[str]] | None:
    """The posted fields to keep: only those the view names (`sudo_required(keep=...)`, so a field added later,
    a secret perhaps, is never stored by default). None when the request cannot be kept whole: a file, a body that
    is not a form, a field with a value the view does not name (completing it without that field would be another
    request), too large."""
    if request.FILES or request.content_type not in _FORM_TYPES:
        return None
    fields: dict[str, list[str]] = {}
    for name, values in request.POST.lists():
        if name == _CSRF_FIELD:
            continue
        if _kept_name(name, keep):
            fields[name] = values
        elif any(values):
            return None
    if (
        sum(len(name) + sum(len(value) for value in values) for name, values in fields.items())
        > _KEPT_MAX_CHARS
    ):
        return None
    return fields


def _keep(request: HttpRequest, allowed: WouldBeAllowed, keep: tuple[str, ...]) -> str | None:
    """Keep the request for the confirmation to complete; its id, or None when it cannot be kept."""
    request.session.pop(PENDING, None)
    fields = _keepable_fields(request, keep)
    if fields is None:
        return None
    pending_id = secrets.token_urlsafe(16)
    request.session[PENDING] = {
        "id": pending_id,
        "login": request.user.pk,
        "at": time.time(),
        "path": request.path,
        "path_info": request.path_info,
        "query": request.META.get("QUERY_STRING", ""),
        "fields": fields,
        "operation": allowed.operation,
        "parameters": allowed.parameters or {},
    }
    return pending_id


def pending_for(request: HttpRequest, pending_id: str | None) -> Pending | None:
    """The request waiting for the password if it is the one `pending_id` (from the prompt) names, was sent by this
    login and is recent enough; None otherwise. Reading leaves it in the session (the prompt shows it)."""
    kept = request.session.get(PENDING)
    if not pending_id or not isinstance(kept, dict):
        return None
    try:
        pending = Pending(**kept)
    except TypeError:  # a session written by another version: nothing to complete
        return None
    if not secrets.compare_digest(str(pending.id), pending_id):
        return None
    if pending.login != request.user.pk or time.time() - pending.at > PENDING_MAX_SECONDS:
        return None
    return pending


def take_pending(request: HttpRequest, pending_id: str | None) -> Pending | None:
    """`pending_for`, and the session forgets the request whatever the answer: it is completed once at most."""
    pending = pending_for(request, pending_id)
    request.session.pop(PENDING, None)
    return pending


def replay(request: HttpRequest, pending: Pending) -> HttpResponse:
    """Perform the kept request within `request` (the confirmation's POST, which passed its own CSRF check, as the
    kept one did when it was posted): the same view, path, query and fields, the same session and login. Its answer
    is the view's own (a redirect on success, the form with its error otherwise)."""
    again = copy.copy(request)
    again.path, again.path_info = pending.path, pending.path_info
    posted = QueryDict(mutable=True)
    for name, values in pending.fields.items():
        posted.setlist(name, [str(value) for value in values])
    # The body is the kept fields, never the confirmation's own (which carries the password).
    body = posted.urlencode().encode()
    posted._mutable = False
    again.META = {
        **request.META,
        "PATH_INFO": pending.path_info,
        "QUERY_STRING": pending.query,
        "CONTENT_TYPE": _FORM_TYPES[0],
        "CONTENT_LENGTH": str(len(body)),
    }
    again.content_type, again.content_params = _FORM_TYPES[0], {}
    again._body = body  # type: ignore[attr-defined]
    again.GET = QueryDict(pending.query)
    again._post, again._files = posted, MultiValueDict()  # type: ignore[attr-defined]
    setattr(again, _CONFIRMED, True)
    setattr(again, _DECIDING, False)
    match = resolve(pending.path_info)
    again.resolver_match = match
    return match.func(again, *match.args, **match.kwargs)  # type: ignore[no-any-return]


def _record_prompt(request: HttpRequest, allowed: WouldBeAllowed) -> None:
    """One audit event for the prompt: the operation awaited and its recorded parameters, decision allowed, no
    change made. Raises KmsError when it cannot be written."""
    from kmsconsole.console.dispatch import console_caller, request_meta  # dispatch imports this module

    record_authenticated(
        request_meta(request),
        operation=REQUEST_CONFIRMATION,
        caller=console_caller(request),
        params={"AwaitedOperation": allowed.operation, "AwaitedParameters": allowed.parameters or {}},
        reason=f"{allowed.operation} would be allowed; the password was asked before it is done (nothing done).",
    )


def _to_confirmation(request: HttpRequest, allowed: WouldBeAllowed, keep: tuple[str, ...]) -> HttpResponse:
    came_from = request.headers.get("HX-Current-URL") or request.META.get("HTTP_REFERER")
    back = safe_next(request, came_from, request.path)
    query = {"next": back}
    try:
        _record_prompt(request, allowed)
    except errors.KmsError:  # unrecorded, nothing is kept (fail closed); the recorder logged the write
        request.session.pop(PENDING, None)
        messages.error(request, UNRECORDED_PROMPT)
        return _redirect(request, back)
    pending_id = _keep(request, allowed, keep)
    if pending_id is not None:
        query["action"] = pending_id
    else:
        messages.warning(request, NOT_KEPT)
    return _redirect(request, f"{reverse('console:sudo')}?{urlencode(query)}")


def _redirect(request: HttpRequest, target: str) -> HttpResponse:
    if request.headers.get("HX-Request"):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return HttpResponseRedirect(target)


def sudo_required(*, keep: tuple[str, ...] = ()) -> Callable[[View], View]:
    """Unsafe requests to the view need a fresh password confirmation. Without one, the engine decides the request
    first: refused (or failing for another reason), the view answers as it always does, nothing asked; allowed,
    nothing is done, one RequestConfirmation event is recorded, the request is kept and the browser goes to the
    confirmation, which then completes it.

    `keep`: the posted fields the confirmation may store and replay (a name, or a prefix ending in `*`); any
    other field posted with a value makes the request one that cannot wait (it is submitted again after)."""

    def decorate(view: View) -> View:
        return _protected(view, tuple(keep))

    return decorate


def _protected(view: View, keep: tuple[str, ...]) -> View:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method in ("GET", "HEAD", "OPTIONS") or getattr(request, _CONFIRMED, False):
            return view(request, *args, **kwargs)
        if sudo_fresh(request):
            return view(request, *args, **kwargs)
        setattr(request, _DECIDING, True)
        try:
            return view(request, *args, **kwargs)
        except WouldBeAllowed as allowed:
            return _to_confirmation(request, allowed, keep)
        finally:
            setattr(request, _DECIDING, False)

    wrapped.sudo_required = True  # type: ignore[attr-defined]  # copied onto outer wrappers by functools.wraps
    SUDO_VIEWS.append(wrapped)
    return wrapped  # type: ignore[return-value]
