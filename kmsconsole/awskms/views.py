"""The AWS KMS endpoint: `POST /` (and `/kms/`) with `X-Amz-Target: TrentService.<Operation>`.

Order of checks: read the body, authenticate (SigV4), find the operation, decode and validate the JSON body
against the service model, then `perform()` it (authorization, the work, the audit event). Every failure is
answered the way AWS answers (`{"__type", "message"}`) and is audited; nothing here returns HTML or a bare 500.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from kmsconsole.audit.recorder import AuditRecord, record_failure
from kmsconsole.awskms import model, sigv4
from kmsconsole.awskms.authentication import authenticate
from kmsconsole.awskms.handlers import HANDLERS, run_handler
from kmsconsole.core import errors
from kmsconsole.core.context import Caller, RequestMeta
from kmsconsole.core.middleware import client_ip
from kmsconsole.operations import OPERATIONS, perform, redact, secret_fields
from policies.authorization import may_see_explanations

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.1"
EXPLAIN_REQUEST_HEADER = "X-Kms-Explain"
# The trace as a JSON array of strings (ASCII-escaped, so it is a valid header value).
EXPLANATION_HEADER = "X-Kms-Explanation"
# Set by an integrated service calling on a principal's behalf (see grants.selectors.integrated_service_values).
VIA_SERVICE_HEADER = "X-Kms-Via-Service"
TARGET_PREFIX = "TrentService."
_OPERATION_NAME = re.compile(r"^[A-Za-z0-9]{1,64}$")


def _json_response(body: dict[str, Any] | None, status: int = 200) -> HttpResponse:
    content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    return HttpResponse(content, status=status, content_type=CONTENT_TYPE)


def error_response(error: errors.KmsError) -> HttpResponse:
    response = _json_response({"__type": error.code, error.message_field: error.message}, status=error.status)
    response["x-amzn-ErrorType"] = error.code
    return response


def _operation_name(target: str) -> str:
    """The operation named by X-Amz-Target, or raise UnknownOperationException."""
    prefix, _, name = target.partition(".")
    if (
        f"{prefix}." != TARGET_PREFIX
        or not _OPERATION_NAME.match(name)
        or not model.is_modeled_operation(name)
    ):
        raise errors.UnknownOperationException("")
    if name not in OPERATIONS or name not in HANDLERS:
        raise errors.UnsupportedOperationException(f"{name} is not supported by this KMS.")
    return name


def _refuse_constant(name: str) -> Any:
    raise errors.SerializationException(f"{name} is not a valid JSON number.")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


# The deepest KMS request shape is a few levels deep; anything far deeper is an attack on the code that walks it
# (NUL checks, model validation, redaction, the audit write all recurse).
MAX_JSON_DEPTH = 32


def _check_depth(value: Any) -> None:
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise errors.SerializationException(
                f"The request body is nested more than {MAX_JSON_DEPTH} levels deep."
            )
        if isinstance(item, dict):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)


def _decode_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a request. NaN/Infinity and NUL characters are refused here: no KMS member can hold
    them, and they cannot be stored in the audit trail (PostgreSQL's jsonb refuses NUL)."""
    if not body.strip():
        return {}
    try:
        decoded = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: thousands of nested brackets exhaust the decoder's stack; still just a bad body.
        raise errors.SerializationException("The request body is not valid JSON.") from exc
    _check_depth(decoded)
    if not isinstance(decoded, dict):
        raise errors.SerializationException("Start of list found where not expected.")
    if _has_nul(decoded):
        raise errors.SerializationException("The request contains a NUL character.")
    return decoded


def _read_body(request: HttpRequest) -> bytes:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    too_large = errors.ValidationException(
        f"The request body is larger than the {settings.KMS_MAX_REQUEST_BYTES} bytes this endpoint accepts."
    )
    if length > settings.KMS_MAX_REQUEST_BYTES:
        raise too_large
    body = request.read(settings.KMS_MAX_REQUEST_BYTES + 1)
    if len(body) > settings.KMS_MAX_REQUEST_BYTES:
        raise too_large
    return body


def kms_endpoint(request: HttpRequest) -> HttpResponse:
    target = request.headers.get("X-Amz-Target", "")
    _, _, raw_name = target.partition(".")
    meta = RequestMeta(
        interface="kms",
        request_id=getattr(request, "request_id", ""),
        source_ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", ""),
        secure_transport=request.is_secure(),
        explain_requested=request.headers.get(EXPLAIN_REQUEST_HEADER, "").strip() == "1",
        via_service=request.headers.get(VIA_SERVICE_HEADER, "").strip()[:128],
    )
    record = AuditRecord(operation=raw_name if _OPERATION_NAME.match(raw_name) else "(invalid)", meta=meta)
    try:
        if request.method != "POST":
            raise errors.UnknownOperationException("The KMS endpoint accepts only POST requests.")
        body = _read_body(request)
        caller: Caller = authenticate(
            sigv4.IncomingRequest(
                method=request.method or "POST",
                path=request.path,
                query_string=request.META.get("QUERY_STRING", ""),
                headers={name.lower(): value for name, value in request.headers.items()},
                body=body,
            ),
            record=record,
            now=timezone.now(),
            max_skew=timedelta(seconds=settings.KMS_SIGV4_MAX_SKEW_SECONDS),
        )
        record.caller = caller
        name = _operation_name(target)
        # Only the operation's own members are kept (and audited); AWS ignores unknown members too.
        raw_params = model.modeled_members(name, _decode_body(body))
        record.request_parameters = redact(raw_params, secret_fields(OPERATIONS[name])[0])
        params = model.parse_input(name, raw_params)
    except errors.KmsError as error:
        return _recorded_error(record, error)

    try:
        result = perform(
            name,
            caller=caller,
            meta=meta,
            params=raw_params,
            service=lambda ctx: run_handler(name, ctx, params),
            record=record,
        )
    except errors.KmsError as error:
        # perform() has already written the event (or failed closed with KMSInternalException).
        return _with_explanation(error_response(error), record, caller)
    output = model.serialize_output(name, result)
    return _with_explanation(_json_response(output if output else None), record, caller)


def _with_explanation(response: HttpResponse, record: AuditRecord, caller: Caller) -> HttpResponse:
    """Attach the decision trace when it was asked for and the caller may see it; nobody else ever does.

    A trace quotes the key policy, so it is never shown for another account's key: kmsconsole:Explain in the
    caller's own identity policies says nothing about what the key owner lets it read.
    """
    key_account = record.key_arn.split(":")[4] if record.key_arn.count(":") >= 5 else caller.account_id
    if (
        record.meta.explain_requested
        and record.trace
        and key_account == caller.account_id
        and may_see_explanations(caller)
    ):
        response[EXPLANATION_HEADER] = json.dumps(
            list(record.trace), ensure_ascii=True, separators=(",", ":")
        )
    return response


def _recorded_error(record: AuditRecord, error: errors.KmsError) -> HttpResponse:
    try:
        record_failure(record, error)
    except errors.KmsError as audit_error:
        return error_response(audit_error)
    return error_response(error)
