"""An event's decision as the reader's account may see it.

Every event is stored once, whole (its `reason` and `decided_by` are chained fields), and read by its caller's
account only (`kmsconsole.api.reads.audit_events`). A request on another account's key was decided by that
account's key policy or grants, and the event names them: a statement of the key policy (its Sid, or its
position) or a grant (its id). The caller's account may not read those (reading a key policy or listing a key's
grants is the key owner's to allow, and AWS gives the caller's account a copy of a cross-account event without the
key policy's details), so every reader of the trail shows such an event with those names replaced by what they
are (`KEY_OWNER_STATEMENT`, `KEY_OWNER_GRANT`): the page, an event's page, the notable events, the REST API and the
exports (`shown_event`, `shown_values`), the charts' groups (`shown_decided_by`) and the "decided by" filter
(`decided_by_matches`), which must not match on what it would not show. What a decision says about the caller's
own account (its identity policies, its root user) stays, and so does everything about requests on the account's
own keys. The stored event is never changed: it keeps the whole decision for the key's owner and the operator
(`audit verify`, the archives), and events written before this rule are shown by it as well.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from django.db.models import Case, CharField, F, Q, Value, When
from django.db.models.expressions import Expression

from kmsconsole.audit.models import AuditEvent

KEY_OWNER_STATEMENT = "a statement in the key owner's key policy"
KEY_OWNER_GRANT = "a grant on the key owner's key"
HIDDEN_LABELS = (KEY_OWNER_STATEMENT, KEY_OWNER_GRANT)

# What `decided_by` may name of the caller's own side whoever owns the key: nothing, the operator, the account's
# own business, or a statement of one of the caller's identity policies (policies.authorization.decided_by: the
# policy's name is an IAM name, so the suffix cannot be forged by a key-policy Sid, which always ends "in the key
# policy"). Anything else is the key owner's, including text this module does not know (fail closed).
_SHOWN_WHOLE = ("", "operator", "own account")
_CALLERS_OWN_PATTERN = (
    r"(?s)^statement .* in the identity policy '[A-Za-z0-9_+=,.@-]+'\Z"  # Python and PostgreSQL
)
_CALLERS_OWN = re.compile(_CALLERS_OWN_PATTERN)
_GRANT_PREFIX = "grant "
# A key-policy statement as the engine describes it (policies.engine.StatementRef.describe, policy "default").
_KEY_STATEMENT_END = " in the key policy"
_DECIDED_BY_LIMIT = AuditEvent._meta.get_field("decided_by").max_length or 0


def on_another_accounts_key(key_arn: str, account_id: str) -> bool:
    """Whether the event's key belongs to an account other than the reader's (events without a key do not)."""
    return bool(key_arn) and f":{account_id}:key/" not in key_arn


def _label(decided_by: str) -> str:
    """What `decided_by` stands as on another account's key: "" when it names only the caller's own side."""
    if decided_by in _SHOWN_WHOLE or _CALLERS_OWN.match(decided_by):
        return ""
    return KEY_OWNER_GRANT if decided_by.startswith(_GRANT_PREFIX) else KEY_OWNER_STATEMENT


def _whole_name(decided_by: str) -> bool:
    """Whether `decided_by` is the whole name the reason quotes, not one cut at the column's length (the reason
    would then keep the rest of the Sid)."""
    if decided_by.startswith(_GRANT_PREFIX):
        return True
    return decided_by.endswith(_KEY_STATEMENT_END) and len(decided_by) < _DECIDED_BY_LIMIT


@dataclass(frozen=True)
class ShownDecision:
    reason: str
    decided_by: str


def shown_decision(*, key_arn: str, reason: str, decided_by: str, account_id: str) -> ShownDecision:
    """The event's reason and decided_by as a reader of `account_id` may see them."""
    label = _label(decided_by) if on_another_accounts_key(key_arn, account_id) else ""
    if not label:
        return ShownDecision(reason, decided_by)
    if decided_by == label:
        return ShownDecision(reason, decided_by)  # already as shown
    if decided_by and _whole_name(decided_by) and decided_by in reason:
        # The engine's sentence names the statement or grant exactly as decided_by does
        # (policies.engine.Decision.explanation); the rest of it is about the caller's own account.
        return ShownDecision(reason.replace(decided_by, label), label)
    outcome = next((word for word in ("allowed", "denied") if reason.startswith(word)), "")
    return ShownDecision(f"{outcome}: decided by {label}" if outcome else "", label)


def shown_event(event: AuditEvent, account_id: str) -> AuditEvent:
    """The event as a reader of `account_id` may see it: a copy where it differs (never saved; events are
    append-only)."""
    shown = shown_decision(
        key_arn=event.key_arn, reason=event.reason, decided_by=event.decided_by, account_id=account_id
    )
    if (shown.reason, shown.decided_by) == (event.reason, event.decided_by):
        return event
    changed = copy.copy(event)
    changed.reason, changed.decided_by = shown.reason, shown.decided_by
    return changed


def shown_values(values: dict[str, Any], account_id: str) -> dict[str, Any]:
    """An exported row (`kmsconsole.audit.export.event_rows`) as a reader of `account_id` may see it. Its hashes are
    the stored event's: only the operator, who holds the chain's key, can check them, against the stored event."""
    shown = shown_decision(
        key_arn=values["key_arn"],
        reason=values["reason"],
        decided_by=values["decided_by"],
        account_id=account_id,
    )
    if (shown.reason, shown.decided_by) == (values["reason"], values["decided_by"]):
        return values
    return {**values, "reason": shown.reason, "decided_by": shown.decided_by}


# --- The same rule in SQL, for the charts and the filter ----------------------------------------------------------


def _another_accounts_key(account_id: str) -> Q:
    return ~Q(key_arn="") & ~Q(key_arn__contains=f":{account_id}:key/")


def _names_a_grant() -> Q:
    return Q(decided_by__startswith=_GRANT_PREFIX)


def _names_a_key_statement() -> Q:
    return ~Q(decided_by__in=_SHOWN_WHOLE) & ~Q(decided_by__regex=_CALLERS_OWN_PATTERN) & ~_names_a_grant()


def shown_decided_by(account_id: str) -> Expression:
    """`decided_by` as a reader of `account_id` sees it, as an SQL expression (the charts group by it)."""
    elsewhere = _another_accounts_key(account_id)
    return Case(
        When(elsewhere & _names_a_grant(), then=Value(KEY_OWNER_GRANT)),
        When(elsewhere & _names_a_key_statement(), then=Value(KEY_OWNER_STATEMENT)),
        default=F("decided_by"),
        output_field=CharField(),
    )


def decided_by_matches(value: str, account_id: str) -> Q:
    """The events whose `decided_by`, as a reader of `account_id` sees it, is `value`: a statement or grant of
    another account's key matches only its label, never its name (a filter that matched names would let the
    reader test guesses at the key owner's Sids and grant ids). An exact value keeps its index."""
    if value in HIDDEN_LABELS:
        names = _names_a_grant() if value == KEY_OWNER_GRANT else _names_a_key_statement()
        return _another_accounts_key(account_id) & names
    matches = Q(decided_by=value)
    if _label(value):
        matches &= ~_another_accounts_key(account_id)
    return matches
