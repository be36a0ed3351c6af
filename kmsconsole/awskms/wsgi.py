"""The WSGI entry in front of Django's: AWS SDK requests take a short path.

An AWS SDK request (`POST /` or `POST /kms/` with an `X-Amz-Target` header) is authenticated by SigV4 and
answered in JSON: the console's middleware (sessions, CSRF, authentication, messages, frame and content security
policies, sign-in throttling, session lifetimes) has nothing to do for it, yet cost a fifth of its CPU, and
Django's generic handler around the view (URL resolution, view and template-response middleware, per-database
ATOMIC_REQUESTS checks, the request signals' dispatch) another 6 % of its instructions. Such a request is answered by
`KmsEndpointHandler`: Django's own request and response objects, only the middleware that concern it, in the
same order as in settings.MIDDLEWARE and each wrapped in Django's exception-to-response conversion as Django
wraps it: ForwardedProtoMiddleware (X-Forwarded-Proto only from trusted proxies), SecurityMiddleware (the TLS
redirect and the security headers) and RequestIdMiddleware (the request id, x-amzn-RequestId); then the view,
wrapped the same way (an exception it lets out reaches Django's handler500, which answers the KMS endpoint's
paths in AWS's JSON: kmsconsole.core.errorpages).
Every other request goes through the full stack as before.

What Django's request signals do for a request is done here directly, at the same two moments, by calling those
of Django's own receivers that are connected: `close_old_connections` (broken database connections, and those
past CONN_MAX_AGE, are closed when the request starts and when the server closes its response) and, under DEBUG,
`reset_queries`; the cache connections and the URLconf that the others reset concern nothing this path uses. A
receiver Django disconnected (its test client does, around a request) is not called. The signals are still sent,
as Django sends them, whenever a receiver other than Django's own is connected (`_direct_receivers`).

Tools that instrument Django by patching `WSGIHandler` or `BaseHandler.get_response` (APM agents) do not see
these requests; a tool that listens to the request signals does.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.cache import close_caches
from django.core.handlers.base import reset_urlconf
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIRequest
from django.db import close_old_connections, reset_queries
from django.http import HttpRequest, HttpResponse
from django.utils.log import log_response
from django.utils.module_loading import import_string

KMS_MIDDLEWARE = (
    "kmsconsole.core.middleware.ForwardedProtoMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "kmsconsole.core.middleware.RequestIdMiddleware",
)
# Where an AWS SDK finds the endpoint: `endpoint_url` of the server, or of `/kms` (botocore sends that path as given,
# with or without its slash).
KMS_PATHS = frozenset({"/", "/kms", "/kms/"})
# The receivers Django itself connects to the request signals, by identity as Django keys its receivers (a
# receiver need not be hashable); these functions live as long as Django.
_DJANGOS_RECEIVERS = frozenset(map(id, (reset_queries, close_old_connections, close_caches, reset_urlconf)))
# Of those, the ones that concern nothing on this path: the cache connections and the URLconf.
_NOT_HERE = frozenset(map(id, (close_caches, reset_urlconf)))

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Receiver = Callable[..., Any]


def _direct_receivers(signal: signals.Signal) -> list[Receiver] | None:
    """The receivers of `signal` to call directly, or None when one that is not Django's own listens (a monitoring
    library, say): the signal is then sent. Asked at each request: receivers connect and disconnect at any time."""
    found: list[Receiver] = []
    for entry in signal.receivers:
        receiver = entry[1]  # (lookup key, receiver or a weak reference to it, ...)
        if isinstance(receiver, weakref.ReferenceType):
            receiver = receiver()
        if receiver is None or id(receiver) in _NOT_HERE:
            continue
        if id(receiver) not in _DJANGOS_RECEIVERS:
            return None
        if receiver is not reset_queries or settings.DEBUG:
            found.append(receiver)
    return found


def _request_signal(signal: signals.Signal, **kwargs: Any) -> None:
    direct = _direct_receivers(signal)
    if direct is None:
        signal.send(sender=KmsEndpointHandler, **kwargs)
        return
    for receiver in direct:
        receiver(sender=KmsEndpointHandler, **kwargs)


def _answer(request: HttpRequest) -> HttpResponse:
    from kmsconsole.awskms.views import kms_endpoint

    return kms_endpoint(request)


class _Answered:
    """The response body as the WSGI server iterates it; closing it ends the request as Django's response would
    (the request's resources, then the end-of-request work)."""

    __slots__ = ("_content", "_request")

    def __init__(self, content: bytes, request: HttpRequest) -> None:
        self._content, self._request = content, request

    def __iter__(self) -> Iterator[bytes]:
        yield self._content

    def close(self) -> None:
        with contextlib.suppress(Exception):  # as Django's response ignores its closers' errors
            self._request.close()
        _request_signal(signals.request_finished)


class KmsEndpointHandler:
    """The WSGI application for AWS SDK requests: both of its paths (`/`, `/kms/`) lead a POST to `kms_endpoint`
    (kmsconsole.urls), through the middleware of KMS_MIDDLEWARE."""

    def __init__(self) -> None:
        handler: Callable[[HttpRequest], HttpResponse] = convert_exception_to_response(_answer)
        for path in reversed([name for name in settings.MIDDLEWARE if name in KMS_MIDDLEWARE]):
            handler = convert_exception_to_response(import_string(path)(handler))
        self._chain = handler

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        _request_signal(signals.request_started, environ=environ)
        request = WSGIRequest(environ)
        response = self._chain(request)
        if response.status_code >= 400:
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        headers = [
            *response.items(),
            *(("Set-Cookie", c.output(header="")) for c in response.cookies.values()),
        ]
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        return _Answered(response.content, request)


def is_kms_request(environ: dict[str, Any]) -> bool:
    return (
        environ.get("REQUEST_METHOD") == "POST"
        and bool(environ.get("HTTP_X_AMZ_TARGET"))
        and environ.get("PATH_INFO") in KMS_PATHS
    )


def with_kms_fast_path(application: WSGIApp) -> WSGIApp:
    """`application`, with AWS SDK requests answered by a `KmsEndpointHandler`."""
    kms = KmsEndpointHandler()

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if is_kms_request(environ):
            return kms(environ, start_response)
        return application(environ, start_response)

    return dispatch
