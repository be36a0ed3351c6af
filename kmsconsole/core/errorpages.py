"""Django's last-resort answers, in each interface's own shape: to an exception nothing else handled
(`handler500`), and to a request Django refuses as suspicious before any view sees it (`handler400`: a Host header
not in ALLOWED_HOSTS, which SecurityMiddleware's HTTPS redirect and CSRF check meet, too many fields...).

Every KMS failure a service raises is answered and audited by the endpoint itself. What escapes it is a fault
outside any service: typically the database going away (a restart, a failover) while a request authenticates or
reads its caches. An AWS SDK must then get what AWS sends for a server fault, `KMSInternalException` as JSON with
HTTP 500 (which every SDK retries), never the console's HTML page; the REST API gets its JSON error body; the
console keeps its page in words. The traceback goes to the server log (django.request), never to the caller.
Each answer carries the request's id (x-amzn-RequestId), a fresh one when Django answered before
RequestIdMiddleware ran (a Host header SecurityMiddleware refuses).
Nothing is recorded in the audit trail here: the request was not performed, and the trail may be unreachable.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from kmsconsole.api.exceptions import INTERNAL_MESSAGE, body
from kmsconsole.awskms.views import error_response
from kmsconsole.awskms.wsgi import KMS_PATHS
from kmsconsole.core import errors
from kmsconsole.core.middleware import with_request_id

# Not the exception's own text: Django's names the refused Host header, which is the caller's to know already.
REFUSED_MESSAGE = "The request was refused: its Host header or its form is not acceptable."


def _is_kms(request: HttpRequest) -> bool:
    return (
        request.method == "POST" and request.path in KMS_PATHS and bool(request.headers.get("X-Amz-Target"))
    )


def server_error(request: HttpRequest) -> HttpResponse:
    return with_request_id(request, _server_error(request))


def _server_error(request: HttpRequest) -> HttpResponse:
    if _is_kms(request):
        return error_response(errors.KMSInternalException(INTERNAL_MESSAGE))
    if request.path.startswith("/api/"):
        return JsonResponse(body(errors.KMSInternalException.code, INTERNAL_MESSAGE), status=500)
    return defaults.server_error(request)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A path nothing answers at. An AWS SDK request (it names its operation in X-Amz-Target) is told in AWS's JSON
    where the endpoint is, so botocore shows that rather than "An error occurred (404)"; the REST API answers its
    own 404s; everything else gets the console's page."""
    if request.headers.get("X-Amz-Target"):
        return with_request_id(request, error_response(errors.UnknownOperationException(WRONG_PATH_MESSAGE)))
    return defaults.page_not_found(request, exception)


WRONG_PATH_MESSAGE = "There is no KMS endpoint at this path: send AWS KMS requests to / or /kms/."


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    return with_request_id(request, _bad_request(request, exception))


def _bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_kms(request):
        return error_response(errors.ValidationException(REFUSED_MESSAGE))
    if request.path.startswith("/api/"):
        return JsonResponse(body(errors.ValidationException.code, REFUSED_MESSAGE), status=400)
    return defaults.bad_request(request, exception)
