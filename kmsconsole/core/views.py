"""The root URL: the KMS endpoint for POST (and for any request an AWS SDK would send, with X-Amz-Target: it is told
in AWS's words that only POST is accepted), the console's overview for GET (and HEAD; anything else is 405)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from kmsconsole.awskms.views import kms_endpoint
from kmsconsole.console.views.overview import overview


# The KMS endpoint authenticates every request with SigV4, not with cookies, so CSRF does not apply to it.
@csrf_exempt
def root(request: HttpRequest) -> HttpResponse:
    if request.method == "POST" or request.headers.get("X-Amz-Target"):
        return kms_endpoint(request)
    return overview(request)


@csrf_exempt
def kms_only(request: HttpRequest) -> HttpResponse:
    return kms_endpoint(request)
