"""Give every HTTP request a request id, echoed as x-amzn-RequestId (the header botocore reads)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from kmsconsole.core.client_address import client_address, from_untrusted_peer
from kmsconsole.core.context import Interface, RequestMeta

_USER_AGENT_MAX = 512


class ForwardedProtoMiddleware:
    """X-Forwarded-Proto, which KMS_TRUSTED_PROXY makes Django believe (SECURE_PROXY_SSL_HEADER: secure transport,
    aws:SecureTransport, the HTTPS redirect), is dropped from a request whose peer is not one of the proxies of
    KMS_TRUSTED_PROXY_ADDRESSES, when any are named: a client that reaches the server directly cannot claim HTTPS.
    First in the middleware, before SecurityMiddleware asks whether the request is secure."""

    _HEADER = "HTTP_X_FORWARDED_PROTO"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._HEADER in request.META and from_untrusted_peer(request.META):
            # A copy without it: the WSGI environ keeps the header as it arrived, which is what a SigV4 signature
            # that covers it was made over (kmsconsole.awskms.views reads the headers from the environ).
            request.META = {name: value for name, value in request.META.items() if name != self._HEADER}
        return self.get_response(request)


# The header that carries the request id, on every interface's answers.
REQUEST_ID_HEADER = "x-amzn-RequestId"


def fresh_request_id(request: HttpRequest) -> str:
    """A new id for `request`, kept on it (`request.request_id`): its audit event and the answer's header name it."""
    request_id = str(uuid.uuid4())
    request.request_id = request_id  # type: ignore[attr-defined]
    return request_id


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = fresh_request_id(request)
        response = self.get_response(request)
        response.setdefault(REQUEST_ID_HEADER, request_id)
        return response


def with_request_id(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """`response` carrying the request's id, as RequestIdMiddleware sets it on whatever passes through it; for an
    answer made before the middleware ran (Django's handler400 when SecurityMiddleware, ahead of it, refuses the
    Host header), a fresh one."""
    response.setdefault(REQUEST_ID_HEADER, getattr(request, "request_id", "") or fresh_request_id(request))
    return response


class RequestIdLogFilter(logging.Filter):
    """Gives every log record a `request_id` for the log format (settings.LOGGING): the id of the request the
    record carries (Django's request loggers pass it as `request`), "-" for a record of no request. A request
    logged before RequestIdMiddleware gave it an id (a Host header SecurityMiddleware refuses, logged before
    handler400 answers) is given its id here, kept on the request, so the answer's x-amzn-RequestId is the id the
    log shows: an operator can find any id a caller quotes. Only the id: the record's request (its headers carry
    signatures and session tokens) is never formatted."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if isinstance(request, HttpRequest):
            record.request_id = getattr(request, "request_id", "") or fresh_request_id(request)
        elif not hasattr(record, "request_id"):
            record.request_id = "-"
        return True


def client_ip(request: HttpRequest) -> str:
    """The address the request came from: the peer, or behind the trusted proxies the client they name
    (kmsconsole.core.client_address; X-Forwarded-For from anyone else is ignored)."""
    return client_address(request.META)


def http_request_meta(request: HttpRequest, interface: Interface) -> RequestMeta:
    """Where an HTTP request to the REST API or the console came from, for its audit event."""
    return RequestMeta(
        interface=interface,
        request_id=getattr(request, "request_id", "") or fresh_request_id(request),
        source_ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:_USER_AGENT_MAX],
        secure_transport=request.is_secure(),
    )
