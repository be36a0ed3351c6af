"""The WSGI entry in front of Django's: AWS SDK requests take a short middleware chain.

An AWS SDK request (`POST /` or `POST /kms/` with an `X-Amz-Target` header) is authenticated by SigV4 and
answered in JSON: the console's middleware (sessions, CSRF, authentication, messages, frame and content security
policies, sign-in throttling, session lifetimes) has nothing to do for it, yet cost a fifth of its CPU. Such a
request goes through a Django handler with only the middleware that concern it, in the same order as in
settings.MIDDLEWARE: ForwardedProtoMiddleware (X-Forwarded-Proto only from trusted proxies), SecurityMiddleware
(the TLS redirect and the security headers) and RequestIdMiddleware (the request id, x-amzn-RequestId). The view
is the same (without resolving the URL: both KMS paths lead to it), as are Django's request signals (which manage
database connections) and its error handling; every other request goes through the full stack as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse
from django.urls import ResolverMatch
from django.utils.module_loading import import_string

KMS_MIDDLEWARE = (
    "kmsconsole.core.middleware.ForwardedProtoMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "kmsconsole.core.middleware.RequestIdMiddleware",
)
KMS_PATHS = frozenset({"/", "/kms/"})

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class KmsEndpointHandler(WSGIHandler):
    """Django's WSGI handler with only the middleware that concern an AWS SDK request, and no URL resolution:
    both of its paths (`/`, `/kms/`) lead a POST to `kms_endpoint` (kmsconsole.urls)."""

    def resolve_request(self, request: HttpRequest) -> ResolverMatch:
        match = ResolverMatch(
            _kms_view(), (), {}, url_name="kms-endpoint", route=request.path_info.lstrip("/")
        )
        request.resolver_match = match
        return match

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler = convert_exception_to_response(self._get_response)
        for path in reversed([name for name in settings.MIDDLEWARE if name in KMS_MIDDLEWARE]):
            handler = convert_exception_to_response(import_string(path)(handler))
        self._middleware_chain = handler


def _kms_view() -> Callable[[HttpRequest], HttpResponse]:
    from kmsconsole.core.views import kms_only

    return kms_only  # type: ignore[no-any-return]


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
            return kms(environ, start_response)  # type: ignore[no-any-return]
        return application(environ, start_response)

    return dispatch
