"""Give every HTTP request a request id, echoed as x-amzn-RequestId (the header botocore reads)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


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
    """The peer address. X-Forwarded-For is not trusted: it is set by the client unless a proxy is configured."""
    return str(request.META.get("REMOTE_ADDR", ""))
