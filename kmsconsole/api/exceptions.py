"""The REST API's one error shape: `{"error": {"code", "message", "detail"}}`, with an HTTP status that means
something (the KMS endpoint sends 400 for every client error; a REST client deserves better)."""

from __future__ import annotations

import logging
from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from kmsconsole.api.authentication import AddressThrottled, TokenRefused, presented_token_id, request_meta
from kmsconsole.audit.authevents import AUTHENTICATE, record_refused, record_throttled
from kmsconsole.audit.recorder import AuditRecord
from kmsconsole.core import errors, ratelimit

logger = logging.getLogger(__name__)

INTERNAL_MESSAGE = "An internal error occurred. Retry the request."

STATUS_BY_CODE = {
    errors.AccessDeniedException.code: status.HTTP_403_FORBIDDEN,
    errors.NotFoundException.code: status.HTTP_404_NOT_FOUND,
    errors.NoSuchEntityException.code: status.HTTP_404_NOT_FOUND,
    errors.AlreadyExistsException.code: status.HTTP_409_CONFLICT,
    errors.EntityAlreadyExistsException.code: status.HTTP_409_CONFLICT,
    errors.ConflictException.code: status.HTTP_409_CONFLICT,
    errors.DeleteConflictException.code: status.HTTP_409_CONFLICT,
    errors.KMSInvalidStateException.code: status.HTTP_409_CONFLICT,
    errors.DisabledException.code: status.HTTP_409_CONFLICT,
}


class FieldValidationError(errors.ValidationException):
    """A ValidationException that knows which fields were wrong (from a serializer or a filter)."""

    def __init__(self, message: str, detail: Any) -> None:
        super().__init__(message)
        self.detail = detail


class UnsupportedMediaTypeError(errors.SerializationException):
    """A body of a media type no parser reads: 415, as DRF answers it outside an operation."""

    http_status = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE


def from_api_exception(exc: exceptions.APIException) -> errors.KmsError:
    """DRF's exceptions raised while an operation runs become ours, so the audit trail records them."""
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return UnsupportedMediaTypeError(str(exc.detail))
    if isinstance(exc, exceptions.ValidationError):
        return FieldValidationError("The request is not valid.", exc.detail)
    if isinstance(exc, exceptions.NotFound):
        return errors.NotFoundException(str(exc.detail))
    if isinstance(exc, exceptions.ParseError):
        return errors.SerializationException(str(exc.detail))
    return errors.ValidationException(str(exc.detail))


def body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "detail": detail}}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, errors.KmsError):
        if exc.fault:
            return Response(body(exc.code, INTERNAL_MESSAGE), status=status.HTTP_500_INTERNAL_SERVER_ERROR)
        http_status = getattr(exc, "http_status", None) or STATUS_BY_CODE.get(
            exc.code, status.HTTP_400_BAD_REQUEST
        )
        return Response(body(exc.code, exc.message, exc.detail), status=http_status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, AddressThrottled):
        return _throttled(exc, context)
    if isinstance(exc, exceptions.NotAuthenticated):
        return _auth_response(exc, "MissingAuthenticationTokenException", context)
    if isinstance(exc, exceptions.AuthenticationFailed):
        return _auth_response(exc, "UnrecognizedClientException", context)
    if isinstance(exc, exceptions.APIException):
        code = {
            exceptions.ValidationError: "ValidationException",
            exceptions.ParseError: "SerializationException",
            exceptions.PermissionDenied: "AccessDeniedException",
            exceptions.NotFound: "NotFoundException",
            exceptions.MethodNotAllowed: "UnsupportedOperationException",
            exceptions.UnsupportedMediaType: "SerializationException",
            exceptions.NotAcceptable: "SerializationException",
            exceptions.Throttled: "ThrottlingException",
        }.get(type(exc), "ValidationException")
        detail = exc.detail if isinstance(exc, exceptions.ValidationError) else None
        message = "The request is not valid." if detail is not None else str(exc.detail)
        return Response(body(code, message, detail), status=exc.status_code)
    logger.exception("Unhandled error in the REST API", exc_info=exc)
    return _internal_error()


def _internal_error() -> Response:
    return Response(
        body("KMSInternalException", INTERNAL_MESSAGE), status=status.HTTP_500_INTERNAL_SERVER_ERROR
    )


def _throttled(exc: AddressThrottled, context: dict[str, Any]) -> Response:
    """429 with Retry-After; audited at most once per address and interval (kmsconsole.core.ratelimit)."""
    request = context.get("request")
    if request is not None:
        record = AuditRecord(
            operation=AUTHENTICATE, meta=request_meta(request), request_parameters=_target(request)
        )
        try:
            record_throttled(record, exc.refusal)
        except errors.KmsError:
            return _internal_error()
    response = Response(body(exc.refusal.code, exc.refusal.message), status=status.HTTP_429_TOO_MANY_REQUESTS)
    response["Retry-After"] = str(exc.refusal.retry_after)
    return response


def _target(request: Request) -> dict[str, Any]:
    return {"Method": request.method, "Path": request.path}


def _auth_response(exc: exceptions.APIException, code: str, context: dict[str, Any]) -> Response:
    request = context.get("request")
    if request is not None:
        # Refused credentials: one audit event (the token's public prefix at most), counted per address.
        meta = request_meta(request)
        ratelimit.note_failed_authentication(meta.source_ip)
        try:
            record_refused(
                meta,
                errors.error_for_code(code, str(exc.detail)),
                params=_target(request),
                credential_id=presented_token_id(request),
                presented=exc.presented if isinstance(exc, TokenRefused) else None,
            )
        except errors.KmsError:
            return _internal_error()
    response = Response(body(code, str(exc.detail)), status=status.HTTP_401_UNAUTHORIZED)
    if request is not None and request.authenticators:
        header = request.authenticators[0].authenticate_header(request)
        if header:
            response["WWW-Authenticate"] = header
    return response


@csrf_exempt  # it changes nothing; Django's CSRF check would answer a session's POST with an HTML 403
def unknown_route(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """A path under /api/ that names no resource (or a malformed id in one): the API's 404, in its own shape.
    Nothing is operated on, so nothing is authorized or audited."""
    return JsonResponse(body("NotFoundException", "No API resource at this path."), status=404)
