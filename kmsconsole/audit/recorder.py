"""Writing audit events, fail closed.

`audited()` wraps one operation: the work and its "allowed" event commit in one transaction, so a failed audit
write undoes the work; a denied or failed operation is rolled back and then recorded in a transaction of its
own. If even that write fails, the caller gets KMSInternalException: no request is answered unrecorded.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from kmsconsole.audit.chain import GENESIS_HASH, head_mac, link_hash
from kmsconsole.audit.models import AuditChainHead, AuditEvent
from kmsconsole.core import errors
from kmsconsole.core.context import ANONYMOUS_ARN, Caller, RequestMeta

logger = logging.getLogger(__name__)


@dataclass
class AuditRecord:
    """What an operation learns about itself while it runs, written as one event at the end."""

    operation: str
    meta: RequestMeta
    caller: Caller | None = None
    access_key_id: str = ""
    key_arn: str = ""
    request_parameters: dict[str, Any] | None = None
    response_elements: dict[str, Any] | None = None
    decision: str = ""
    reason: str = ""
    decided_by: str = ""
    error: errors.KmsError | None = None
    notable: str = ""
    # The per-statement trace of the decision, kept in memory only: shown to callers allowed to see it.
    trace: tuple[str, ...] = ()

    def authorized(
        self, *, allowed: bool, reason: str, decided_by: str = "", trace: tuple[str, ...] = ()
    ) -> None:
        """Record the authorization decision (called by the service layer's authorize())."""
        self.decision = AuditEvent.Decision.ALLOWED if allowed else AuditEvent.Decision.DENIED
        self.reason = reason
        self.decided_by = decided_by
        self.trace = trace

    @property
    def has_decision(self) -> bool:
        return bool(self.decision)


def _storable(value: Any) -> Any:
    """The value with NUL characters spelled out: PostgreSQL refuses them in text and jsonb, and an interface that
    lets one through must not make the audit write (and so the request) fail. Whole-number floats become
    integers: jsonb keeps numbers as decimals and gives 1e300 back as an integer, so the chain hash must be
    computed over what the database will give back, or `audit verify` reports an honest event as changed."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            # A lone surrogate ("\ud800" in a JSON body) is valid Python text but not UTF-8, and jsonb refuses it.
            value = value.encode("utf-8", "backslashreplace").decode()
        return value.replace("\x00", "\\u0000")
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


def _clamped(values: dict[str, Any]) -> dict[str, Any]:
    """Make every value storable and cut every text to its column's length: a long caller-supplied value (an
    access key id, a Sid in a key policy) must not make the audit write, and so the request, fail."""
    for name, value in values.items():
        values[name] = _storable(value)
    for field in AuditEvent._meta.get_fields():
        limit = getattr(field, "max_length", None)
        value = values.get(field.name)
        if limit and isinstance(value, str) and len(value) > limit:
            values[field.name] = value[:limit]
    return values


def _event_values(record: AuditRecord, outcome: str) -> dict[str, Any]:
    caller = record.caller
    error = record.error
    return {
        "event_id": uuid.uuid4(),
        "time": timezone.now(),
        "request_id": record.meta.request_id,
        "interface": record.meta.interface,
        "operation": record.operation,
        "caller_arn": caller.arn if caller else ANONYMOUS_ARN,
        "caller_account": caller.account_id if caller else "",
        "access_key_id": (caller.access_key_id if caller else "") or record.access_key_id,
        "source_ip": record.meta.source_ip,
        "user_agent": record.meta.user_agent,
        "key_arn": record.key_arn,
        "request_parameters": record.request_parameters,
        "response_elements": record.response_elements if outcome == AuditEvent.Decision.ALLOWED else None,
        "error_code": error.code if error else "",
        "error_message": error.message if error else "",
        "decision": outcome,
        "reason": record.reason,
        "decided_by": record.decided_by,
        "notable": record.notable,
    }


def _locked_head() -> AuditChainHead:
    try:
        with transaction.atomic():
            return AuditChainHead.objects.select_for_update().get_or_create(
                pk=1, defaults={"last_seq": 0, "last_hash": GENESIS_HASH}
            )[0]
    except IntegrityError:
        # Another process created the head between our read and insert; it exists now.
        return AuditChainHead.objects.select_for_update().get(pk=1)


def append_event(record: AuditRecord, outcome: str) -> AuditEvent:
    """Append one event to the chain. Must run inside a transaction (the head stays locked until commit)."""
    values = _clamped(_event_values(record, outcome))
    head = _locked_head()
    values["seq"] = head.last_seq + 1
    values["prev_hash"] = head.last_hash
    values["hash"] = link_hash(head.last_hash, values)
    event = AuditEvent.objects.create(**values)
    head.last_seq = values["seq"]
    head.last_hash = values["hash"]
    head.head_mac = head_mac(head.last_seq, head.last_hash)
    head.save(update_fields=["last_seq", "last_hash", "head_mac"])
    return event


def _outcome_for(error: errors.KmsError) -> str:
    if isinstance(error, errors.AccessDeniedException):
        return AuditEvent.Decision.DENIED
    return AuditEvent.Decision.FAILED


def record_failure(record: AuditRecord, error: errors.KmsError) -> None:
    """Record a request that did not succeed, in its own transaction; fail closed if that write fails."""
    record.error = error
    try:
        with transaction.atomic():
            append_event(record, _outcome_for(error))
    except Exception as exc:
        logger.exception("Audit write failed for %s %s", record.operation, record.meta.request_id)
        raise errors.KMSInternalException("The request could not be recorded and was not performed.") from exc


class NothingToDo(Exception):
    """Raised by a worker's service when the row it came for was already handled (another worker won the claim):
    the transaction rolls back, no event is written, because nothing happened."""


@contextmanager
def audited(record: AuditRecord) -> Iterator[AuditRecord]:
    """Run an operation's work and its audit event as one unit (see the module docstring)."""
    try:
        with transaction.atomic():
            yield record
            append_event(record, AuditEvent.Decision.ALLOWED)
    except NothingToDo:
        raise
    except errors.KmsError as error:
        record_failure(record, error)
        raise
    except Exception as exc:
        logger.exception("Internal error in %s %s", record.operation, record.meta.request_id)
        internal = errors.KMSInternalException("An internal error occurred. Retry the request.")
        record_failure(record, internal)
        raise internal from exc
