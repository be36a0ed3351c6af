"""Writing audit events, fail closed.

`audited()` wraps one operation: the work and its "allowed" event commit in one transaction, so a failed audit
write undoes the work; a denied or failed operation is rolled back and then recorded in a transaction of its
own. If even that write fails, the caller gets KMSInternalException: no request is answered unrecorded.

An operation that changes nothing (`audited(standalone=True)`: the AWS endpoint's cryptographic operations) runs
outside a transaction, and its event, like every denial and failure, is written on its own through the
process's group commit (`kmsconsole.audit.writer`): the request waits until its event has committed, and fails
with KMSInternalException if it could not be. A request served optimistically from the process caches is the
one exception: if what it relied on changed before its event could be written, nothing is written and `StaleRead`
goes up to the endpoint, which serves the request again (`kmsconsole.generations.cache`).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from kmsconsole.audit.derived import derived_values
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.writer import insert_chained, write_standalone
from kmsconsole.core import errors
from kmsconsole.core.context import ANONYMOUS_ARN, Caller, RequestMeta
from kmsconsole.generations.cache import StaleRead

logger = logging.getLogger(__name__)


@dataclass
class AuditRecord:
    """What an operation learns about itself while it runs, written as one event at the end."""

    operation: str
    meta: RequestMeta
    caller: Caller | None = None
    access_key_id: str = ""
    # The principal the credentials presented belong to, when they were refused before the request was
    # authenticated (a real access key id with a wrong signature, a real login's wrong password): the event goes
    # to that principal's account, whose auditors must see attempts on its credentials, and says whose they were
    # (`presented_note`); the caller stays anonymous. Never set for credentials nobody has: an unknown name stays
    # anonymous, with no account, as before.
    presented: Caller | None = None
    key_arn: str = ""
    request_parameters: dict[str, Any] | None = None
    response_elements: dict[str, Any] | None = None
    # The response elements of the event if the operation fails: what an operation that commits in batches has
    # committed so far (`Operation.commits_in_batches`), kept up to date as it goes, so work already committed is
    # never unrecorded; or what a console page showed beside the failure (a destroyed key's deletion).
    failure_response: dict[str, Any] | None = None
    decision: str = ""
    reason: str = ""
    decided_by: str = ""
    error: errors.KmsError | None = None
    notable: str = ""
    # The per-statement trace of the decision, kept in memory only: shown to callers allowed to see it.
    trace: tuple[str, ...] = ()
    # What the service applied that the request did not say (the default key policy of a CreateKey sent without
    # one), recorded with the response elements whichever interface shaped the response: the trail then holds
    # every policy a key had. Never a secret.
    applied: dict[str, Any] = field(default_factory=dict)

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

    def on_key(self) -> KeyDecision:
        """The key the record is filed under and the decision on it, as they stand (see `file_under`)."""
        return KeyDecision(self.key_arn, self.decision, self.reason, self.decided_by, self.trace)

    def file_under(self, side: KeyDecision) -> None:
        """File the record under `side`'s key, with the decision on that key: an operation on two keys (ReEncrypt)
        records a failure under the key it is about, so the event reaches that key's owner (and no other's) with
        that key's own decision (kmsconsole.audit.scope)."""
        self.key_arn, self.decision, self.reason, self.decided_by, self.trace = (
            side.key_arn,
            side.decision,
            side.reason,
            side.decided_by,
            side.trace,
        )


@dataclass(frozen=True)
class KeyDecision:
    """One key of a request and the authorization decision on it (`AuditRecord.on_key`)."""

    key_arn: str
    decision: str
    reason: str
    decided_by: str
    trace: tuple[str, ...] = ()


def _storable(value: Any) -> Any:
    """The value with NUL characters spelled out: PostgreSQL refuses them in text and jsonb, and an interface that
    lets one through must not make the audit write (and so the request) fail. Whole-number floats become
    integers: jsonb keeps numbers as decimals and gives 1e300 back as an integer, so the chain hash must be
    computed over what the database will give back, or `audit verify` reports an honest event as changed.
    Infinity and NaN, which jsonb refuses (the interfaces refuse them in bodies; this is the last line), are
    spelled as text."""
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                # A lone surrogate ("\ud800" in a JSON body) is valid Python text but not UTF-8, and jsonb
                # refuses it.
                value = value.encode("utf-8", "backslashreplace").decode()
        return value.replace("\x00", "\\u0000") if "\x00" in value else value
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer():
            return int(value)
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


_TEXT_LIMITS = tuple(
    (field.name, field.max_length)
    for field in AuditEvent._meta.get_fields()
    if getattr(field, "max_length", None)
)


def _clamped(values: dict[str, Any]) -> dict[str, Any]:
    """Make every value storable and cut every text to its column's length: a long caller-supplied value (an
    access key id, a Sid in a key policy) must not make the audit write, and so the request, fail."""
    for name, value in values.items():
        values[name] = _storable(value)
    for name, limit in _TEXT_LIMITS:
        value = values.get(name)
        if isinstance(value, str) and len(value) > limit:
            values[name] = value[:limit]
    return values


def presented_note(arn: str) -> str:
    """What an unauthenticated event says of the credentials presented (`AuditRecord.presented`)."""
    return f"The credential presented belonged to {arn}; the request was not authenticated as it."


def _event_values(record: AuditRecord, outcome: str) -> dict[str, Any]:
    caller = record.caller
    error = record.error
    presented = record.presented if caller is None else None
    reason = record.reason
    if presented is not None:
        reason = " ".join(part for part in (reason, presented_note(presented.arn)) if part)
    # An unauthenticated request is filed under the account its credentials belong to (kmsconsole.audit.scope:
    # the caller's side of that account's trail), its caller still anonymous.
    caller_account = caller.account_id if caller else presented.account_id if presented else ""
    values = {
        "event_id": uuid.uuid4(),
        "time": timezone.now(),
        "request_id": record.meta.request_id,
        "interface": record.meta.interface,
        "operation": record.operation,
        "caller_arn": caller.arn if caller else ANONYMOUS_ARN,
        "caller_account": caller_account,
        "access_key_id": (caller.access_key_id if caller else "") or record.access_key_id,
        "source_ip": record.meta.source_ip,
        "user_agent": record.meta.user_agent,
        "key_arn": record.key_arn,
        "request_parameters": record.request_parameters,
        "response_elements": (
            record.response_elements if outcome == AuditEvent.Decision.ALLOWED else record.failure_response
        ),
        "error_code": error.code if error else "",
        "error_message": error.message if error else "",
        "decision": outcome,
        "reason": reason,
        "decided_by": record.decided_by,
        "notable": record.notable,
    }
    # Not chained: derived from the chained fields, for the key owner's side of the trail.
    values.update(derived_values(values))
    return values


def append_event(record: AuditRecord, outcome: str) -> AuditEvent:
    """Append one event to the chain. Must run inside a transaction (the head stays locked until commit)."""
    return insert_chained([_clamped(_event_values(record, outcome))])[0]


def _outcome_for(error: errors.KmsError) -> str:
    # A throttled request is refused by a rule, as a policy refuses: denied, with the rule in the reason.
    if isinstance(error, errors.AccessDeniedException | errors.ThrottlingException):
        return AuditEvent.Decision.DENIED
    return AuditEvent.Decision.FAILED


def _write_alone(record: AuditRecord, outcome: str) -> None:
    try:
        write_standalone(_clamped(_event_values(record, outcome)))
    except StaleRead:
        raise  # nothing was written, nothing answered: the request is served again (kmsconsole.generations)
    except Exception as exc:
        logger.exception("Audit write failed for %s %s", record.operation, record.meta.request_id)
        raise errors.KMSInternalException("The request could not be recorded and was not performed.") from exc


def record_failure(record: AuditRecord, error: errors.KmsError) -> None:
    """Record a request that did not succeed, in its own transaction; fail closed if that write fails."""
    record.error = error
    _write_alone(record, _outcome_for(error))


def record_event(record: AuditRecord) -> None:
    """Record something that succeeded outside an operation (a console sign-in), in its own transaction; fail
    closed if that write fails."""
    _write_alone(record, AuditEvent.Decision.ALLOWED)


class DeferredEvents:
    """The "allowed" events of operations run inside another operation's transaction (`perform(..., deferred=)`),
    kept to be appended together when `events_at_the_end()` closes: see there."""

    def __init__(self) -> None:
        self._values: list[dict[str, Any]] = []

    def add(self, record: AuditRecord) -> None:
        self._values.append(_clamped(_event_values(record, AuditEvent.Decision.ALLOWED)))

    def append(self) -> None:
        if self._values:
            insert_chained(self._values)
            self._values = []


@contextmanager
def events_at_the_end() -> Iterator[DeferredEvents]:
    """Inside a transaction that runs other operations (the deletion of a principal runs one per key it
    rewrites): their events go on the chain together when the block's work is done, not each as it ends.
    Appending an event locks the chain head until the commit, and every change takes that lock last (its event
    is its last write). A transaction that took it in the middle of its work and then wrote more (a key's policy,
    whose generation row a RevokeGrant on that key may hold; a principal's row) could wait for a request that
    held those and waited for the head: PostgreSQL aborts one of them as a deadlock. On an error nothing is
    appended: the transaction rolls back."""
    events = DeferredEvents()
    yield events
    events.append()


class WouldBeAllowed(Exception):
    """Raised where an operation run only to be decided (`OperationContext.decide_only`: a console action waiting
    for the password, `kmsconsole.console.sudo`) reaches its first allowed decision on a change: the transaction
    rolls back and the operation writes no event, because nothing was done (the console records the prompt, one
    `kmsconsole:RequestConfirmation` event); the request is performed, and recorded, once the password is
    confirmed. A refusal before that point is recorded as any refusal is; checks after it run after the password."""

    def __init__(self, operation: str, parameters: dict[str, Any] | None) -> None:
        super().__init__(operation)
        self.operation = operation
        self.parameters = parameters


class NothingToDo(Exception):
    """Raised by a worker's service when the row it came for was already handled (another worker won the claim):
    the transaction rolls back, no event is written, because nothing happened."""


@contextmanager
def audited(
    record: AuditRecord, *, standalone: bool = False, deferred: DeferredEvents | None = None
) -> Iterator[AuditRecord]:
    """Run an operation's work and its audit event as one unit (see the module docstring). `standalone`: the
    work changes nothing, so it runs outside a transaction and its event is written on its own. `deferred`: the
    operation runs inside another's transaction, and its event is appended when that one's
    `events_at_the_end()` block closes."""
    try:
        if standalone:
            yield record
            write_standalone(_clamped(_event_values(record, AuditEvent.Decision.ALLOWED)))
        else:
            with transaction.atomic():
                yield record
                if deferred is None:
                    append_event(record, AuditEvent.Decision.ALLOWED)
                else:
                    deferred.add(record)
    except (NothingToDo, StaleRead, WouldBeAllowed):
        raise
    except errors.KmsError as error:
        record_failure(record, error)
        raise
    except Exception as exc:
        logger.exception("Internal error in %s %s", record.operation, record.meta.request_id)
        internal = errors.KMSInternalException("An internal error occurred. Retry the request.")
        record_failure(record, internal)
        raise internal from exc
    except GeneratorExit:
        raise
    except BaseException:
        # Interrupted (Ctrl-C, SystemExit, a worker's shutdown): recorded as a failure, then let through as it is.
        try:
            record_failure(record, errors.KMSInternalException("The operation was interrupted."))
        except errors.KmsError:
            logger.exception("The interruption of %s could not be recorded", record.operation)
        raise
