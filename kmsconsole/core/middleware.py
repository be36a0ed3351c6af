"""Give every HTTP request a request id, echoed as x-amzn-RequestId (the header botocore reads)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from kmsconsole.core.client_address import client_address
from kmsconsole.core.context import Interface, RequestMeta

_USER_AGENT_MAX = 512


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = str(uuid.uuid4())
        request.request_id = request_id  # type: ignore[attr-defined]
        response = self.get_response(request)
        response.setdefault("x-amzn-RequestId", request_id)
        return response


def client_ip(request: HttpRequest) -> str:
    """The address the request came from: the peer, or behind the trusted proxies the client they name
    (kmsconsole.core.client_address; X-Forwarded-For from anyone else is ignored)."""
    return client_address(request.META)


def http_request_meta(request: HttpRequest, interface: Interface) -> RequestMeta:
    """Where an HTTP request to the REST API or the console came from, for its audit event."""
    return RequestMeta(
        interface=interface,
        request_id=getattr(request, "request_id", "") or RequestMeta(interface=interface).request_id,
        source_ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:_USER_AGENT_MAX],
        secure_transport=request.is_secure(),
    )
