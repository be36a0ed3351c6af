"""The AWS KMS endpoint: `POST /` (and `/kms/`) with `X-Amz-Target: TrentService.<Operation>`.

Order of checks: read the body, authenticate (SigV4), find the operation, decode and validate the JSON body
against the service model, then `perform()` it (authorization, the work, the audit event). Every failure is
answered the way AWS answers (`{"__type", "message"}`) and is audited; nothing here returns HTML or a bare 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from keys.crypto.symmetric import BLOB_VERSION as SYMMETRIC_BLOB_VERSION
from keys.crypto.symmetric import KEY_ID_BYTES
from keys.selectors import prefetch_scopes
from keys.services.access import ACCESS_READS, may_read_rules_of
from kmsconsole.audit.authevents import admit_presented, record_throttled
from kmsconsole.audit.recorder import AuditRecord, record_failure
from kmsconsole.awskms import model, sigv4
from kmsconsole.awskms.authentication import authenticate
from kmsconsole.awskms.handlers import HANDLERS, run_handler
from kmsconsole.core import errors, ratelimit
from kmsconsole.core.context import Caller, RequestMeta
from kmsconsole.core.jsonbody import body_problem
from kmsconsole.core.middleware import client_ip
from kmsconsole.generations.cache import GenerationSnapshot, StaleRead, current_guard, request_snapshot
from kmsconsole.generations.scopes import iam_scope
from kmsconsole.operations import OPERATIONS, OperationContext, perform, redact, secret_fields
from policies.authorization import may_see_explanations
from policies.selectors import cached_account_of

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.1"
EXPLAIN_REQUEST_HEADER = "X-Kms-Explain"
# The trace as a JSON array of strings (ASCII-escaped, so it is a valid header value).
EXPLANATION_HEADER = "X-Kms-Explanation"
# Set by an integrated service calling on a principal's behalf (see grants.selectors.integrated_service_values).
VIA_SERVICE_HEADER = "X-Kms-Via-Service"
_EXPLAIN, _VIA_SERVICE = EXPLAIN_REQUEST_HEADER.lower(), VIA_SERVICE_HEADER.lower()
TARGET_PREFIX = "TrentService."
_OPERATION_NAME = re.compile(r"^[A-Za-z0-9]{1,64}$")


# One encoder for every response (json.dumps builds a new one per call when given any option).
_RESPONSE_JSON = json.JSONEncoder(separators=(",", ":"))


def response_json(body: dict[str, Any]) -> bytes:
    """`body` as compact JSON, its top-level blob members (model.Base64Text) spliced in as they are: escaping a
    4 KiB blob's 5,600 characters one at a time cost the JSON encoder a fortieth of an Encrypt's CPU."""
    encode = _RESPONSE_JSON.encode
    members = (
        f'{encode(name)}:"{value}"' if type(value) is model.Base64Text else f"{encode(name)}:{encode(value)}"
        for name, value in body.items()
    )
    return f"{{{','.join(members)}}}".encode()


def _json_response(body: dict[str, Any] | None, status: int = 200) -> HttpResponse:
    content = b"" if body is None else response_json(body)
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


def _decode_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a request, refused (SerializationException) if it holds what no KMS member can and the
    audit trail cannot store: NaN/Infinity, numbers that overflow, NUL characters, lone surrogates, deep nesting
    (kmsconsole.core.jsonbody)."""
    if not body.strip():
        return {}
    try:
        decoded = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: thousands of nested brackets exhaust the decoder's stack; still just a bad body.
        raise errors.SerializationException("The request body is not valid JSON.") from exc
    problem = body_problem(decoded)
    if problem is not None:
        raise errors.SerializationException(problem)
    if not isinstance(decoded, dict):
        raise _not_an_object(decoded)
    return decoded


_JSON_VALUE_NAMES = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
}


def _not_an_object(decoded: Any) -> errors.SerializationException:
    """A body that is JSON but not an object: SerializationException, as AWS answers (400), saying what came; a
    list in AWS's words."""
    if isinstance(decoded, list):
        return errors.SerializationException("Start of list found where not expected.")
    # json.loads makes nothing else; the fallback only keeps the sentence whole.
    found = _JSON_VALUE_NAMES.get(type(decoded), "another JSON value")
    return errors.SerializationException(
        f"The request body is {found}, not a JSON object: send the operation's parameters as one ({{}} for none)."
    )


def _decoded(body: bytes) -> tuple[dict[str, Any] | None, errors.KmsError | None]:
    try:
        return _decode_body(body), None
    except errors.KmsError as refusal:
        return None, refusal


def _prefetch(snapshot: GenerationSnapshot, headers: dict[str, str], document: dict[str, Any]) -> None:
    """Tell the snapshot which generations this request will likely check (the caller's account, the key), so
    they are read in one query. Only a hint: judged from what is cached, validated by nothing here."""
    access_key_id = sigv4.credential_access_key_id(headers.get("authorization", ""))
    account_id = cached_account_of(access_key_id) if access_key_id else None
    if account_id is not None:
        snapshot.want(iam_scope(account_id))
    key_id = document.get("KeyId")
    if not isinstance(key_id, str):
        key_id = ciphertext_key_id(document.get("CiphertextBlob"))
    if key_id:
        snapshot.want(*prefetch_scopes(key_id, account_id=account_id))


def ciphertext_key_id(blob: Any) -> str | None:
    """The key id in the header of a base64 symmetric ciphertext (unauthenticated: a prefetch hint only)."""
    if not isinstance(blob, str) or len(blob) < _HEADER_CHARS:
        return None
    try:
        head = base64.b64decode(blob[:_HEADER_CHARS], validate=True)
    except (binascii.Error, ValueError):
        return None
    # Padding inside the first characters ("AQ==AAAA...") decodes to fewer bytes than a header holds.
    if len(head) < 1 + KEY_ID_BYTES or head[0] != SYMMETRIC_BLOB_VERSION:
        return None
    return str(uuid.UUID(bytes=head[1 : 1 + KEY_ID_BYTES]))


# Base64 characters that hold a symmetric ciphertext's version byte and key id (18 bytes).
_HEADER_CHARS = 24

# The headers a WSGI environ holds without the HTTP_ prefix.
_UNPREFIXED_HEADERS = {"CONTENT_TYPE": "content-type", "CONTENT_LENGTH": "content-length"}


def lowercase_headers(environ: dict[str, Any]) -> dict[str, str]:
    """A request's headers by lower-case name, which is how SigV4 names them: what `request.headers` holds,
    without building its case-insensitive mapping and lower-casing it again (2 % of an Encrypt's instructions)."""
    headers = {}
    for name, value in environ.items():
        if name.startswith("HTTP_"):
            headers[name[5:].replace("_", "-").lower()] = value
        elif name in _UNPREFIXED_HEADERS:
            headers[_UNPREFIXED_HEADERS[name]] = value
    return headers


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


class _Attempts:
    """What a request does once however often it is served (an optimistic attempt, then one that reads first):
    reading the body, and counting it against the rate limits. A retry reuses the first attempt's outcome, so a
    request served twice is read once, spends one unit of quota and counts as one failure."""

    __slots__ = ("_body", "_checks", "_failure_noted", "_request", "headers")

    def __init__(self, request: HttpRequest) -> None:
        self._request = request
        # As they arrived (the environ): what SigV4 signatures are made over, even a header the middleware hides
        # from the rest of the request (kmsconsole.core.middleware.ForwardedProtoMiddleware).
        self.headers = lowercase_headers(getattr(request, "environ", request.META))
        self._body: bytes | errors.KmsError | None = None
        self._checks: dict[tuple[str, ...], errors.KmsError | None] = {}
        self._failure_noted = False

    def body(self) -> bytes:
        if self._body is None:
            try:
                self._body = _read_body(self._request)
            except errors.KmsError as refusal:
                self._body = refusal
        return _or_raise(self._body)

    def check_address(self, address: str) -> None:
        self._once(("address", address), lambda: ratelimit.check_address(address))

    def spend_quota(self, account_id: str, operation: str) -> None:
        self._once(("quota", account_id, operation), lambda: ratelimit.spend_quota(account_id, operation))

    def _once(self, key: tuple[str, ...], check: Callable[[], None]) -> None:
        if key not in self._checks:
            self._checks[key] = _outcome_of(check)
        _or_raise(self._checks[key])

    def note_failed_authentication(self, address: str) -> None:
        if not self._failure_noted:
            self._failure_noted = True
            ratelimit.note_failed_authentication(address)


T = TypeVar("T")


def _outcome_of(check: Callable[[], None]) -> errors.KmsError | None:
    try:
        check()
    except errors.KmsError as refusal:
        return refusal
    return None


def _or_raise(outcome: T | errors.KmsError) -> T:
    if isinstance(outcome, errors.KmsError):
        raise outcome
    return outcome


def kms_endpoint(request: HttpRequest) -> HttpResponse:
    attempts = _Attempts(request)
    target = attempts.headers.get("x-amz-target", "")
    _, _, raw_name = target.partition(".")
    operation = OPERATIONS.get(raw_name)
    if operation is not None and operation.cacheable:
        # The cryptographic operations read what they need from the process caches, taken at their word and
        # checked by the request's audit write (kmsconsole.generations.cache); if something they relied on
        # changed, nothing was written or answered, and the request is served again after reading the
        # generations first. A trace (X-Kms-Explain) is decided on after the write, so it reads them first.
        optimistic = attempts.headers.get(_EXPLAIN, "").strip() != "1"
        if optimistic:
            try:
                with request_snapshot(optimistic=True) as snapshot:
                    return _serve(request, target, raw_name, snapshot, attempts)
            except StaleRead:
                # Logged so that operators can see churn: each such request did its work twice (a key or
                # principal whose generation moves often makes its callers pay for it).
                logger.info(
                    "%s %s: what it took from the caches changed before its audit event was written; served again",
                    raw_name,
                    getattr(request, "request_id", ""),
                )
        with request_snapshot() as snapshot:
            return _serve(request, target, raw_name, snapshot, attempts)
    return _serve(request, target, raw_name, None, attempts)


def _serve(
    request: HttpRequest,
    target: str,
    raw_name: str,
    snapshot: GenerationSnapshot | None,
    attempts: _Attempts,
) -> HttpResponse:
    headers = attempts.headers
    meta = RequestMeta(
        interface="kms",
        request_id=getattr(request, "request_id", ""),
        source_ip=client_ip(request),
        user_agent=headers.get("user-agent", ""),
        secure_transport=request.is_secure(),
        explain_requested=headers.get(_EXPLAIN, "").strip() == "1",
        via_service=headers.get(_VIA_SERVICE, "").strip()[:128],
    )
    record = AuditRecord(operation=raw_name if _OPERATION_NAME.match(raw_name) else "(invalid)", meta=meta)
    try:
        # An address that failed authentication too often is refused before any work (a dict lookup here).
        attempts.check_address(meta.source_ip)
        if request.method != "POST":
            raise errors.UnknownOperationException("The KMS endpoint accepts only POST requests.")
        body = attempts.body()
        # Decoded before authentication (to prefetch what the request will check), refused after it as before.
        document, refusal = _decoded(body)
        if snapshot is not None and document is not None:
            _prefetch(snapshot, headers, document)
        caller: Caller = authenticate(
            sigv4.IncomingRequest(
                method=request.method or "POST",
                path=request.path,
                query_string=request.META.get("QUERY_STRING", ""),
                headers=headers,
                body=body,
            ),
            record=record,
            now=timezone.now(),
            max_skew=timedelta(seconds=settings.KMS_SIGV4_MAX_SKEW_SECONDS),
        )
        record.caller = caller
        name = _operation_name(target)
        if refusal is not None:
            raise refusal
        # The caller's account quota for cryptographic operations (in memory: no round trip).
        attempts.spend_quota(caller.account_id, name)
        # Only the operation's own members are kept (and audited); AWS ignores unknown members too.
        raw_params = model.modeled_members(name, document or {})
        record.request_parameters = redact(raw_params, secret_fields(OPERATIONS[name])[0])
        params = model.parse_input(name, raw_params)
    except errors.KmsError as error:
        return _recorded_error(record, error, attempts)

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

    A trace quotes the key policy and the key's tags, so it is never shown for another account's key
    (kmsconsole:Explain in the caller's own identity policies says nothing about what the key owner lets it read),
    nor for a key whose policy or tags the caller may not read.
    """
    key_account = record.key_arn.split(":")[4] if record.key_arn.count(":") >= 5 else caller.account_id
    if (
        record.meta.explain_requested
        and record.trace
        and key_account == caller.account_id
        and may_see_explanations(caller)
        and _may_read_what_the_trace_quotes(record, caller)
    ):
        response[EXPLANATION_HEADER] = json.dumps(
            list(record.trace), ensure_ascii=True, separators=(",", ":")
        )
    return response


def _may_read_what_the_trace_quotes(record: AuditRecord, caller: Caller) -> bool:
    """A trace on a key quotes its policy and the values of its tags, and notes the caller's grants on it: shown
    only to a caller who may read all three (kms:GetKeyPolicy, kms:ListResourceTags and kms:ListGrants on the key,
    decided as those requests would be). Asked only when a trace was asked for."""
    if not record.key_arn:
        return True
    question = OperationContext(
        operation=OPERATIONS["GetKeyPolicy"],
        caller=caller,
        meta=record.meta,
        audit=AuditRecord(operation="GetKeyPolicy", meta=record.meta),  # a question: recorded nowhere
    )
    return may_read_rules_of(question, record.key_arn, reads=ACCESS_READS)


def _recorded_error(record: AuditRecord, error: errors.KmsError, attempts: _Attempts) -> HttpResponse:
    try:
        if isinstance(error, ratelimit.Throttled):
            if current_guard():
                # A throttled request may be answered with no event, so with no check of what an optimistic
                # attempt took from the caches (who the caller is): answer it after reading them first.
                raise StaleRead()
            # Recorded at most once per address or account and interval: a flood of refusals is no flood of
            # audit writes.
            record_throttled(record, error)
            return error_response(error)
        if record.caller is None:
            # Unsigned, badly signed, unknown credentials, or refused before authentication: counted per address.
            attempts.note_failed_authentication(record.meta.source_ip)
            if record.presented is not None and current_guard():
                # A refused real access key may be answered with no event (admit_presented), so with no check of
                # the cached credentials it was refused against: answer it after reading them first.
                raise StaleRead()
            if not admit_presented(record):
                return error_response(error)
        record_failure(record, error)
    except errors.KmsError as audit_error:
        return error_response(audit_error)
    return error_response(error)
