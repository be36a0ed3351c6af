"""Django's last-resort answer to an exception nothing else handled (`handler500`), in each interface's own shape.

Every KMS failure a service raises is answered and audited by the endpoint itself. What escapes it is a fault
outside any service: typically the database going away (a restart, a failover) while a request authenticates or
reads its caches. An AWS SDK must then get what AWS sends for a server fault, `KMSInternalException` as JSON with
HTTP 500 (which every SDK retries), never the console's HTML page; the REST API gets its JSON error body; the
console keeps its page in words. The traceback goes to the server log (django.request), never to the caller.
Nothing is recorded in the audit trail here: the request was not performed, and the trail may be unreachable.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from kmsconsole.api.exceptions import INTERNAL_MESSAGE, body
from kmsconsole.awskms.views import error_response
from kmsconsole.core import errors

_KMS_PATHS = ("/", "/kms/")


def server_error(request: HttpRequest) -> HttpResponse:
    if request.method == "POST" and request.path in _KMS_PATHS and request.headers.get("X-Amz-Target"):
        return error_response(errors.KMSInternalException(INTERNAL_MESSAGE))
    if request.path.startswith("/api/"):
        return JsonResponse(body(errors.KMSInternalException.code, INTERNAL_MESSAGE), status=500)
    return defaults.server_error(request)
