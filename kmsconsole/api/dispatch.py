"""`run()`: how every REST API view calls the service layer — through `perform()`, as the authenticated principal,
with interface "api", so the request is authorized by the engine and audited like on every other interface."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from kmsconsole.api.authentication import ApiPrincipal, request_meta
from kmsconsole.api.exceptions import from_api_exception
from kmsconsole.core.context import Caller
from kmsconsole.operations import OperationContext, perform

Value = TypeVar("Value")


def caller_of(request: Request) -> Caller:
    user = request.user
    if not isinstance(user, ApiPrincipal):
        raise exceptions.NotAuthenticated()
    return user.caller


def run(
    request: Request,
    operation: str,
    work: Callable[[OperationContext], Value],
    *,
    params: Mapping[str, Any] | None = None,
    audit_response: Callable[[Value], Mapping[str, Any]] | None = None,
) -> Value:
    """Run `work` as operation `operation` for the request's principal; return what `work` returned.

    `params` go to the audit event (secret members removed by the operation table); `audit_response` picks the
    response elements to record (none by default: list bodies would copy the database into the trail).
    """
    holder: dict[str, Value] = {}

    def service(ctx: OperationContext) -> Mapping[str, Any]:
        refused = getattr(request, "_kms_refused_body", None)
        if refused is not None:
            # The body could not be parsed when the audit parameters were read: fail here, audited, before
            # any work (DRF would now give `work` an empty body, which some operations accept).
            raise from_api_exception(refused)
        try:
            value = work(ctx)
        except exceptions.APIException as exc:
            raise from_api_exception(exc) from exc
        except RequestDataTooBig as exc:
            raise from_api_exception(refused_body(exc)) from exc
        holder["value"] = value
        return dict(audit_response(value)) if audit_response is not None else {}

    perform(
        operation,
        caller=caller_of(request),
        meta=request_meta(request),
        params=dict(params or {}),
        service=service,
    )
    return holder["value"]


def validated(serializer_class: type, data: Any) -> dict[str, Any]:
    """Validate an input serializer (inside `run`, so a bad request is audited too)."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def refused_body(exc: Exception) -> exceptions.APIException:
    """Django refuses a body over DATA_UPLOAD_MAX_MEMORY_SIZE before any parser runs; it is a bad request too."""
    if isinstance(exc, exceptions.APIException):
        return exc
    return exceptions.ParseError(
        f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
    )


def body(request: Request, declared: type[serializers.Serializer[Any]]) -> dict[str, Any]:
    """The JSON body as audit parameters: the members `declared` (the operation's input) takes, as sent; any others
    (the input refuses them) as one OTHER_PARAMETERS entry, how many, their names and values not recorded: the
    trail records what was asked, and a refused body of 900 junk members made a 460 KB event. A body that is not an
    object is recorded as it came. A body the parser refuses is remembered, so `run` fails the operation with that
    error, audited."""
    try:
        data = request.data
    except (exceptions.ParseError, exceptions.UnsupportedMediaType, RequestDataTooBig) as exc:
        request._kms_refused_body = refused_body(exc)  # type: ignore[attr-defined]
        return {"Body": "(refused by the parser)"}
    if not isinstance(data, Mapping):
        return {"Body": data}
    fields = declared().fields
    params = {name: value for name, value in data.items() if name in fields}
    others = len(data) - len(params)
    if others:
        params[OTHER_PARAMETERS] = f"{others} other member{'s' if others > 1 else ''}"
    return params


def created(
    request: Request,
    operation: str,
    work: Callable[[OperationContext], Any],
    declared: type[serializers.Serializer[Any]],
    audit_response: Callable[[Any], Mapping[str, Any]],
) -> Response:
    """A create whose parameters are its body alone: the operation run, its body recorded as `declared` takes it
    (`body`), answered 201 with what `work` returned."""
    return Response(
        run(request, operation, work, params=body(request, declared), audit_response=audit_response),
        status=201,
    )


# The one entry an audit event's parameters summarise what a request carried beyond what its operation takes.
OTHER_PARAMETERS = "(other parameters)"
