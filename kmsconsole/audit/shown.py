"""An event's decision as the reader's account may see it.

Every event is stored once, whole (its `reason` and `decided_by` are chained fields), and read by its caller's
account (`kmsconsole.api.reads.audit_events`, scope `caller`) and, on another account's key, by the key's owner
(scope `key-owner`, below; kmsconsole.audit.scope). A request on another account's key was decided by that
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

The key's owner reads the same event from the other side (`Scope.KEY_OWNER`, kmsconsole.audit.scope), and the
rule turns around: the owner sees its own key policy's statements and grants, and everything the request carried
(the caller's ARN and account, source IP, user agent, parameters and response as stored, the error), but not the
caller's account's internals: the identity policies of the caller's account that the decision names (in
`decided_by`, and in the reason as the deciding or the supporting statement, or as the policy that did not count)
are shown as `CALLER_IDENTITY_POLICY`, and the caller's access key id is not shown. Anything in `decided_by` that is
not recognisably the owner's own (a key-policy statement, a grant) or the words every side may see is the caller's
(fail closed), and a reason that would still name an identity policy after the replacement is cut to its outcome.
The same functions take the scope; the charts and the filter use the same rule in SQL.

On the key owner's side, an event whose key is another account's is an allowed ReEncrypt out of the reader's key
(kmsconsole.audit.scope: its chained response names the reader's key as the source). It holds the decision on the
destination (the caller's own key, or a third account's), none of it the reader's: a statement or grant is shown as
`DESTINATION_STATEMENT` or `DESTINATION_GRANT`, an identity policy as `CALLER_IDENTITY_POLICY`, and the reason is cut
to its outcome. The column `AuditEvent.decided_by_caller_policy` (kmsconsole.audit.derived) stores
`hidden_from_key_owner` for the events of the key owner's side, so the filter on `CALLER_IDENTITY_POLICY` finds them
with an index; it still tests the chained `decided_by`.

A request that named no key, only a ciphertext whose key the caller may not be told of (another account's key that
refused it; keys.services.crypto), was answered without the key: AccessDeniedException "... on the resource
associated with this ciphertext ...", or, for a bare KeyId, the NotFoundException the key id got, both recorded as
denials. The caller's side shows such an event as it shows a ciphertext naming no key at all (`undisclosed_to_caller`):
no key ARN, `UNDISCLOSED_REASON`, nothing in `decided_by`, and no filter on a key, a key's account or a "decided by"
label, and no chart of keys, finds it by the key (`hidden_from_caller`). The key owner's side shows it whole.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Case, CharField, F, Q, QuerySet, Value, When
from django.db.models.expressions import Expression

from kmsconsole.audit.marks import shown_notable
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.scope import Scope
from kmsconsole.core.errors import CIPHERTEXT_RESOURCE, UNDISCLOSED_REASON
from policies.engine import MISSING_ALLOW_LABELS

KEY_OWNER_STATEMENT = "a statement in the key owner's key policy"
KEY_OWNER_GRANT = "a grant on the key owner's key"
HIDDEN_LABELS = (KEY_OWNER_STATEMENT, KEY_OWNER_GRANT)
# What the key's owner is shown for an identity policy of the caller's (another) account.
CALLER_IDENTITY_POLICY = "an identity policy of the caller's account"
# What the owner of a ReEncrypt's source key is shown for the destination key's statement or grant (the allowed
# event holds the decision on the destination, another account's key: the caller's, or a third account's).
DESTINATION_STATEMENT = "a statement in the destination key's policy"
DESTINATION_GRANT = "a grant on the destination key"
DESTINATION_LABELS = (DESTINATION_STATEMENT, DESTINATION_GRANT)

# The denials answered with another error than AccessDeniedException, only ever such refusals (every other one of
# these codes is a failure): NotFoundException for a bare KeyId (keys.services.crypto.UndisclosedKeyId), and
# InvalidCiphertextException, how such a refusal was answered before 2026-11-30 (its events, chained, keep it).
_UNDISCLOSED_CODES = ("NotFoundException", "InvalidCiphertextException")

# What `decided_by` may name of the caller's own side whoever owns the key: nothing, the operator, the account's
# own business, what a refusal no Deny decided was missing (fixed words naming nothing of anyone's), or a statement
# of one of the caller's identity policies (policies.engine.Decision.decided_by: the policy's name is an IAM name,
# so the suffix cannot be forged by a key-policy Sid, which always ends "in the key policy"). Anything else is the
# key owner's, including text this module does not know (fail closed).
_SHOWN_WHOLE = ("", "operator", "own account", *MISSING_ALLOW_LABELS)
_CALLERS_OWN_PATTERN = (
    r"(?s)^statement .* in the identity policy '[A-Za-z0-9_+=,.@-]+'\Z"  # Python and PostgreSQL
)
_CALLERS_OWN = re.compile(_CALLERS_OWN_PATTERN)
_GRANT_PREFIX = "grant "
# A key-policy statement as the engine describes it (policies.engine.StatementRef.describe, policy "default").
_KEY_STATEMENT_END = " in the key policy"
# What the key's owner may see in `decided_by` as its own: a statement of a key policy (possibly cut at the column's
# length), unless it is a statement of an identity policy (_CALLERS_OWN), which a Sid cannot forge.
_KEY_STATEMENT_PATTERN = r"(?s)^statement .* in the key policy"  # Python and PostgreSQL
_KEY_STATEMENT = re.compile(_KEY_STATEMENT_PATTERN)
# An identity policy's statement as the engine describes it, and where a reason names one beside the deciding
# statement or grant (policies.engine.Decision.explanation: ALLOWED_CROSS_ACCOUNT, ALLOWED_BY_GRANT).
_IDENTITY_STATEMENT = r"statement (?:'.*'|#\d+) in the identity policy '[A-Za-z0-9_+=,.@-]+'"
_SUPPORT_ACROSS_ACCOUNTS = re.compile(rf"(?s){_IDENTITY_STATEMENT} in account [0-9]{{12}}\Z")
_SUPPORT_OF_A_GRANT = re.compile(rf"(?s){_IDENTITY_STATEMENT}\Z")
_POLICY_NAME = re.compile(r" in the identity policy '(?P<name>[A-Za-z0-9_+=,.@-]+)'\Z")
# Whatever still reads like this names an identity policy: the reason is then cut to its outcome.
_NAMES_AN_IDENTITY_POLICY = "identity policy '"
# A refusal for want of an allow names what would have allowed but did not count, when it is the key owner's: a
# key-policy statement or a grant (policies.engine.Decision.explanation). The name runs up to the fixed words that
# follow it, which no later part of the sentence repeats (so a Sid cannot end the name early).
_OWNER_NAMED_IN_REFUSAL = re.compile(
    r"(?s)^denied: (?P<name>grant [0-9a-f]{64}(?: as its retiring principal)?|statement .* in the key policy) "
    r"(?=allows |would allow |covers |has not taken effect )"
)
# A key-policy statement (by Sid or position) or a grant still named ("no statement in the key policy" names none).
_OWNER_NAMES_LEFT = re.compile(r"(?s)statement (?:'|#[0-9]).* in the key policy|grant [0-9a-f]{64}")
# The caller's identity policy that did not count, as IAM_NOT_DELEGATED's sentence ends.
_DID_NOT_COUNT = re.compile(r" so the identity policy '[A-Za-z0-9_+=,.@-]+' did not count\Z")
_DECIDED_BY_LIMIT = AuditEvent._meta.get_field("decided_by").max_length or 0
# How every MISSING_ALLOW_LABELS label begins.
_MISSING = "missing: "


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


def _outcome_only(reason: str, decided_by: str) -> str:
    """The reason cut to its outcome and what decided: "allowed: decided by <label>", or for a refusal no Deny
    decided, "denied for want of <what was missing>" (the label's words without "missing: ")."""
    outcome = next((word for word in ("allowed", "denied") if reason.startswith(word)), "")
    if not (outcome and decided_by):
        return outcome
    if decided_by in MISSING_ALLOW_LABELS:
        return f"{outcome} for want of {decided_by.removeprefix(_MISSING)}"
    return f"{outcome}: decided by {decided_by}"


def shown_decision(
    *, key_arn: str, reason: str, decided_by: str, account_id: str, scope: Scope = Scope.CALLER
) -> ShownDecision:
    """The event's reason and decided_by as a reader of `account_id` may see them through `scope`."""
    if scope is Scope.KEY_OWNER:
        if on_another_accounts_key(key_arn, account_id):
            return _shown_to_source_owner(reason, decided_by)
        return _shown_to_key_owner(reason, decided_by)
    elsewhere = on_another_accounts_key(key_arn, account_id)
    if elsewhere and decided_by in MISSING_ALLOW_LABELS:
        return ShownDecision(_refusal_without_owner_names(reason, decided_by), decided_by)
    label = _label(decided_by) if elsewhere else ""
    if not label:
        return ShownDecision(reason, decided_by)
    if decided_by == label:
        return ShownDecision(reason, decided_by)  # already as shown
    if decided_by and _whole_name(decided_by) and decided_by in reason:
        # The engine's sentence names the statement or grant exactly as decided_by does
        # (policies.engine.Decision.explanation); the rest of it is about the caller's own account.
        return ShownDecision(reason.replace(decided_by, label), label)
    return ShownDecision(_outcome_only(reason, label), label)


def _refusal_without_owner_names(reason: str, decided_by: str) -> str:
    """A refusal for want of an allow on another account's key, as its caller's account may read it: the key
    owner's statement or grant that would have allowed is named by what it is; a sentence that still names one
    is cut to its outcome (fail closed)."""
    match = _OWNER_NAMED_IN_REFUSAL.match(reason)
    if match is not None:
        label = KEY_OWNER_GRANT if match["name"].startswith(_GRANT_PREFIX) else KEY_OWNER_STATEMENT
        reason = f"denied: {label} {reason[match.end() :]}"
    if _OWNER_NAMES_LEFT.search(reason):
        return _outcome_only(reason, decided_by)
    return reason


def _names_a_key_statement_or_grant(decided_by: str) -> bool:
    """Whether `decided_by` names a key policy's statement or a grant (the key's owner's), not an identity policy."""
    if decided_by.startswith(_GRANT_PREFIX):
        return True
    return bool(_KEY_STATEMENT.match(decided_by)) and not _CALLERS_OWN.match(decided_by)


def _owner_label(decided_by: str) -> str:
    """What `decided_by` stands as to the key's owner: "" when it is the owner's own (or words every side sees)."""
    if decided_by in _SHOWN_WHOLE or _names_a_key_statement_or_grant(decided_by):
        return ""
    return CALLER_IDENTITY_POLICY


def hidden_from_key_owner(decided_by: str) -> bool:
    """Whether the key's owner sees `decided_by` as `CALLER_IDENTITY_POLICY` (on its own key, or as a ReEncrypt's
    source): what the derived column `AuditEvent.decided_by_caller_policy` stores (kmsconsole.audit.derived)."""
    return bool(_owner_label(decided_by))


def _source_owner_label(decided_by: str) -> str:
    """What `decided_by` stands as to the owner of an allowed ReEncrypt's source key, when the event's key (the
    destination) is another account's: none of the decision is the reader's."""
    if decided_by in _SHOWN_WHOLE:
        return ""
    if _names_a_key_statement_or_grant(decided_by):
        return DESTINATION_GRANT if decided_by.startswith(_GRANT_PREFIX) else DESTINATION_STATEMENT
    return CALLER_IDENTITY_POLICY


def _shown_to_source_owner(reason: str, decided_by: str) -> ShownDecision:
    """An allowed ReEncrypt out of the reader's key into another account's key (the caller's own, or a third
    account's): the event holds the decision on the destination (kms:ReEncryptTo), whose statements and grants
    are its owner's and whose identity policies are the caller's. What decided is named by what it is, and the
    reason is cut to its outcome (the engine's sentence names nothing else the reader may read)."""
    shown_by = _source_owner_label(decided_by) or decided_by
    return ShownDecision(_outcome_only(reason, shown_by), shown_by)


def _shown_to_key_owner(reason: str, decided_by: str) -> ShownDecision:
    """Another account's request on the reader's key: the reader's own statements and grants stay, the caller's
    identity policies go."""
    label = _owner_label(decided_by)
    shown_by = label or decided_by
    if label:
        name = _POLICY_NAME.search(decided_by) if _CALLERS_OWN.match(decided_by) else None
        if name is None:  # cut at the column's length, or words this module does not know
            return ShownDecision(_outcome_only(reason, label), label)
        # The whole name: every mention of it, and of its policy ("so the identity policy 'x' did not count").
        reason = reason.replace(decided_by, label).replace(f"the identity policy '{name['name']}'", label)
    elif decided_by in MISSING_ALLOW_LABELS:
        # A refusal for want of an allow: the identity policy that did not count is the caller's.
        reason = _DID_NOT_COUNT.sub(f" so {CALLER_IDENTITY_POLICY} did not count", reason)
    elif decided_by:
        # The deciding statement or grant is the owner's; the caller's identity statement that supported it is not.
        for prefix, support in (
            (f"allowed across accounts by {decided_by} together with ", _SUPPORT_ACROSS_ACCOUNTS),
            (f"allowed by {decided_by}, for the caller's account, together with ", _SUPPORT_OF_A_GRANT),
        ):
            if reason.startswith(prefix) and support.match(reason, len(prefix)):
                reason = prefix + CALLER_IDENTITY_POLICY
                break
    # Fail closed: a sentence this module does not know, that still names an identity policy (the owner's own
    # statement may quote anything: it is left out of the test).
    if _NAMES_AN_IDENTITY_POLICY in (reason.replace(decided_by, "") if decided_by and not label else reason):
        reason = _outcome_only(reason, shown_by)
    return ShownDecision(reason, shown_by)


def undisclosed_answer(values: Mapping[str, Any]) -> bool:
    """Whether the event's answer (its chained decision, error code and message) kept its key from the caller: a
    denial on a ciphertext whose key the request did not name (keys.services.crypto)."""
    if values["decision"] != AuditEvent.Decision.DENIED:
        return False
    return values["error_code"] in _UNDISCLOSED_CODES or CIPHERTEXT_RESOURCE in values["error_message"]


def undisclosed_to_caller(values: Mapping[str, Any], account_id: str, scope: Scope) -> bool:
    """Whether a reader of `account_id` sees the event through `scope` without its key: the caller's side of such a
    denial on another account's key."""
    return (
        scope is Scope.CALLER
        and on_another_accounts_key(values["key_arn"], account_id)
        and undisclosed_answer(values)
    )


# What `_shown_fields` reads of an event, and may change.
_SHOWN_INPUTS = ("key_arn", "reason", "decided_by", "access_key_id", "notable", "operation", "decision")
_SHOWN_CHANGES = ("key_arn", "reason", "decided_by", "access_key_id", "notable")


def _shown_fields(values: Mapping[str, Any], account_id: str, scope: Scope) -> dict[str, Any]:
    """The fields of an event that a reader of `account_id` may see otherwise than they are stored."""
    if undisclosed_to_caller(values, account_id, scope):
        key_arn, shown = "", ShownDecision(UNDISCLOSED_REASON, "")
    else:
        key_arn = values["key_arn"]
        shown = shown_decision(
            key_arn=key_arn,
            reason=values["reason"],
            decided_by=values["decided_by"],
            account_id=account_id,
            scope=scope,
        )
    return {
        "key_arn": key_arn,
        "reason": shown.reason,
        "decided_by": shown.decided_by,
        "access_key_id": "" if scope is Scope.KEY_OWNER else values["access_key_id"],
        "notable": shown_notable(values["notable"], values["operation"]),
    }


def shown_event(event: AuditEvent, account_id: str, scope: Scope = Scope.CALLER) -> AuditEvent:
    """The event as a reader of `account_id` may see it through `scope`: a copy where it differs (never saved;
    events are append-only)."""
    values = {name: getattr(event, name) for name in (*_SHOWN_INPUTS, "error_code", "error_message")}
    shown = _shown_fields(values, account_id, scope)
    if all(shown[name] == values[name] for name in _SHOWN_CHANGES):
        return event
    changed = copy.copy(event)
    for name, value in shown.items():
        setattr(changed, name, value)
    return changed


def shown_values(values: dict[str, Any], account_id: str, scope: Scope = Scope.CALLER) -> dict[str, Any]:
    """An exported row (`kmsconsole.audit.export.event_rows`) as a reader of `account_id` may see it through
    `scope`. Its hashes are the stored event's: only the operator, who holds the chain's key, can check them,
    against the stored event."""
    shown = _shown_fields(values, account_id, scope)
    if all(shown[name] == values[name] for name in _SHOWN_CHANGES):
        return values
    return {**values, **shown}


# --- The same rule in SQL, for the charts and the filter ----------------------------------------------------------


def _another_accounts_key(account_id: str) -> Q:
    return ~Q(key_arn="") & ~Q(key_arn__contains=f":{account_id}:key/")


def hidden_from_caller(account_id: str) -> Q:
    """The events a reader of `account_id` sees on the caller's side without their key (`undisclosed_to_caller`):
    what a filter on a key, a key's account or a "decided by" value, and the chart of keys, leave out there."""
    marker = Q(error_code__in=_UNDISCLOSED_CODES) | Q(error_message__contains=CIPHERTEXT_RESOURCE)
    return Q(decision=AuditEvent.Decision.DENIED) & marker & _another_accounts_key(account_id)


def _names_a_grant() -> Q:
    return Q(decided_by__startswith=_GRANT_PREFIX)


def _names_a_key_statement() -> Q:
    return ~Q(decided_by__in=_SHOWN_WHOLE) & ~Q(decided_by__regex=_CALLERS_OWN_PATTERN) & ~_names_a_grant()


def _names_an_owner_statement() -> Q:
    return Q(decided_by__regex=_KEY_STATEMENT_PATTERN) & ~Q(decided_by__regex=_CALLERS_OWN_PATTERN)


def _shown_to_key_owner_whole() -> Q:
    """The events whose `decided_by` the key's owner sees as it is (`_owner_label` is ""), or, as the owner of an
    allowed ReEncrypt's source, as a label of the destination's (`_source_owner_label`): everything but the
    caller's identity policies."""
    return Q(decided_by__in=_SHOWN_WHOLE) | _names_a_grant() | _names_an_owner_statement()


def found_by_key(events: QuerySet[AuditEvent], account_id: str, scope: Scope) -> QuerySet[AuditEvent]:
    """`events` less those a reader of `account_id` sees through `scope` without their key: what a filter on a key or
    a key's account, and the chart of keys, start from."""
    return events.exclude(hidden_from_caller(account_id)) if scope is Scope.CALLER else events


def filtered_by_key(
    events: QuerySet[AuditEvent],
    account_id: str,
    scope: Scope,
    *,
    key_arn: str = "",
    key_account_prefix: str = "",
) -> QuerySet[AuditEvent]:
    """The events a filter on a key (`key_arn`) or on a key's account (`key_account_prefix`, how its key ARNs begin)
    finds, for a reader of `account_id` through `scope`: never one shown without its key (`found_by_key`), or the
    filter would tell which key it hides. Every filter on a key goes through here (the console's trail, the REST
    list); with neither set, `events` as they are."""
    if key_arn:
        events = events.filter(key_arn=key_arn)
    if key_account_prefix:
        events = events.filter(key_arn__startswith=key_account_prefix)
    return found_by_key(events, account_id, scope) if key_arn or key_account_prefix else events


def shown_key_arn(account_id: str, scope: Scope) -> Expression:
    """`key_arn` as a reader of `account_id` sees it through `scope`, as an SQL expression (for readers that load
    only a few columns of each event)."""
    if scope is Scope.CALLER:
        return Case(
            When(hidden_from_caller(account_id), then=Value("")),
            default=F("key_arn"),
            output_field=CharField(),
        )
    return F("key_arn")


def shown_decided_by(account_id: str, scope: Scope = Scope.CALLER) -> Expression:
    """`decided_by` as a reader of `account_id` sees it through `scope`, as an SQL expression (the charts group by
    it)."""
    elsewhere = _another_accounts_key(account_id)
    if scope is Scope.KEY_OWNER:
        # On this side, an event whose key is another account's is an allowed ReEncrypt out of the reader's key.
        return Case(
            When(elsewhere & _names_a_grant(), then=Value(DESTINATION_GRANT)),
            When(elsewhere & _names_an_owner_statement(), then=Value(DESTINATION_STATEMENT)),
            When(_shown_to_key_owner_whole(), then=F("decided_by")),
            default=Value(CALLER_IDENTITY_POLICY),
            output_field=CharField(),
        )
    return Case(
        When(hidden_from_caller(account_id), then=Value("")),
        When(elsewhere & _names_a_grant(), then=Value(KEY_OWNER_GRANT)),
        When(elsewhere & _names_a_key_statement(), then=Value(KEY_OWNER_STATEMENT)),
        default=F("decided_by"),
        output_field=CharField(),
    )


def decided_by_matches(value: str, account_id: str, scope: Scope = Scope.CALLER) -> Q:
    """The events whose `decided_by`, as a reader of `account_id` sees it through `scope`, is `value`: what is
    hidden matches only its label, never its name (a filter that matched names would let the reader test guesses:
    at the key owner's Sids and grant ids from the caller's side, at the caller's identity policies from the key
    owner's). An exact value keeps its index."""
    if scope is Scope.KEY_OWNER:
        elsewhere = _another_accounts_key(account_id)  # an allowed ReEncrypt out of the reader's key
        if value == CALLER_IDENTITY_POLICY:
            # The derived column finds the rows with its partial index (few); the chained decided_by decides.
            return Q(decided_by_caller_policy=True) & ~_shown_to_key_owner_whole()
        if value == DESTINATION_GRANT:
            return elsewhere & _names_a_grant()
        if value == DESTINATION_STATEMENT:
            return elsewhere & _names_an_owner_statement()
        if _owner_label(value):
            return Q(pk__in=[])  # a name the key's owner is not shown: nothing matches it
        if value in _SHOWN_WHOLE:
            return Q(decided_by=value)
        return Q(decided_by=value) & ~elsewhere  # the reader's own statement or grant, on its own key
    # Shown with nothing in decided_by, such an event matches no value (the filter is not applied to "").
    shown = ~hidden_from_caller(account_id)
    if value in HIDDEN_LABELS:
        names = _names_a_grant() if value == KEY_OWNER_GRANT else _names_a_key_statement()
        return _another_accounts_key(account_id) & names & shown
    matches = Q(decided_by=value) & shown
    if _label(value):
        matches &= ~_another_accounts_key(account_id)
    return matches
