"""An audit event's decision in plain words, from what the event recorded: `reason` (the engine's own sentence,
e.g. "allowed by statement 'Allow use of the key' in the key policy"), `decided_by` (the statement or grant) and,
for requests that failed, the error. Nothing is re-evaluated: this is what was decided then, not what the
policies say now. The event is the one the reader's account may see (kmsconsole.audit.shown): on another account's
key, the statement or grant that decided is named by what it is, not by its Sid or id; of another account's
request on the reader's key, so is the caller's identity policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.shown import CALLER_IDENTITY_POLICY, DESTINATION_LABELS, HIDDEN_LABELS
from policies.engine import MISSING_ALLOW_LABELS

# decided_by as policies.authorization.decided_by() writes it.
_STATEMENT = re.compile(
    r"^statement (?P<label>'.*'|#\d+) in the (?P<kind>key|identity) policy(?: '(?P<policy>.*)')?$"
)
_GRANT = re.compile(r"^grant (?P<grant_id>\S+)$")

# What to do about a refusal, keyed by a phrase of the engine's reason (policies/engine/explain.py).
_ADVICE = (
    (
        "the key policy does not let IAM policies",
        "Identity policies only count when the key policy lets them: add a statement to the key policy that "
        'allows the account (its root, as the default key policy\'s "Enable IAM User Permissions" does), or '
        "allow the principal in the key policy itself.",
    ),
    (
        "an explicit deny overrides",
        "An explicit deny cannot be outweighed by any allow: change or remove that statement, or its "
        "conditions.",
    ),
    (
        "no statement in the key policy allows",
        "Nothing allowed it: add a key-policy statement for this principal, create a grant for it, or let the "
        "key policy delegate to IAM and allow it in an identity policy.",
    ),
    (
        "but no identity policy of the caller allows it",
        "The key policy leaves this to IAM: allow the action in one of the principal's identity policies.",
    ),
    (
        "no identity policy allows",
        "This action is decided by identity policies alone: allow it in one of the principal's identity policies.",
    ),
    (
        "counts only together with an identity policy",
        "A grant to an account gives its principals only what that account's IAM also allows: allow the action in "
        "one of the principal's identity policies.",
    ),
    (
        "not by key policies",
        "Retiring a grant is up to the grant and the IAM of the key's and the grant's accounts: make the principal "
        "the grant's retiring principal (or its grantee, with RetireGrant among its operations), or allow "
        "kms:RetireGrant in an identity policy of one of those accounts. The key policy cannot help.",
    ),
    (
        "has not taken effect yet",
        "New grants take effect after a short delay; a request that passes the grant token works at once.",
    ),
    (
        "does not meet its constraints",
        "The grant only allows requests whose encryption context matches its constraints.",
    ),
)


@dataclass(frozen=True)
class DecidedBy:
    """What `decided_by` names, taken apart for links: a statement of the key policy or of an identity policy,
    or a grant."""

    # "key policy", "identity policy", "grant", "operator", "own account", "missing" (a refusal for want of an
    # allow: what was missing, policies.engine.Decision.decided_by), "key owner" (another account's statement
    # or grant, not named: kmsconsole.audit.shown), "caller's account" (the identity policy of another account's
    # caller, not named), "destination key" (another account's statement or grant on the destination of a
    # ReEncrypt out of the reader's key, not named), or "" (nothing named)
    kind: str
    text: str
    statement: str = ""  # 'Sid' or #n
    policy_name: str = ""
    grant_id: str = ""


@dataclass(frozen=True)
class Explanation:
    outcome: str  # "allowed", "denied", "failed"
    summary: str  # one sentence
    details: tuple[str, ...]
    decided_by: DecidedBy


def parse_decided_by(text: str) -> DecidedBy:
    if match := _STATEMENT.match(text):
        kind = f"{match['kind']} policy"
        return DecidedBy(kind, text, statement=match["label"], policy_name=match["policy"] or "")
    if match := _GRANT.match(text):
        return DecidedBy("grant", text, grant_id=match["grant_id"])
    if text in ("operator", "own account"):
        return DecidedBy(text, text)
    if text in MISSING_ALLOW_LABELS:
        return DecidedBy("missing", text)
    if text in HIDDEN_LABELS:
        return DecidedBy("key owner", text)
    if text == CALLER_IDENTITY_POLICY:
        return DecidedBy("caller's account", text)
    if text in DESTINATION_LABELS:
        return DecidedBy("destination key", text)
    return DecidedBy("", text)


def _error(event: AuditEvent) -> str:
    message = event.error_message.strip()
    return f"{event.error_code}: {message}" if message else event.error_code or "an unknown error"


def explain(event: AuditEvent) -> Explanation:
    """The decision as a summary sentence and, where they help, further sentences (what to do about it)."""
    decided_by = parse_decided_by(event.decided_by)
    reason = event.reason.strip()
    details: list[str] = []
    if event.decision == AuditEvent.Decision.ALLOWED:
        summary = reason or "allowed"
    elif event.decision == AuditEvent.Decision.DENIED:
        if reason.startswith("denied"):
            summary = reason
            details.extend(advice for phrase, advice in _ADVICE if phrase in reason)
        else:
            # Refused before the policies were consulted (e.g. acting for an integrated service it is not
            # bound to): the error says why.
            summary = f"denied: {event.error_message.strip() or 'the request was refused'}"
    elif reason.startswith("allowed"):
        summary = f"{reason}, but the request then failed ({_error(event)})"
    elif reason.startswith("denied"):
        summary = f"{reason}; the request failed ({_error(event)})"
    else:
        summary = f"the request failed before any permission was checked ({_error(event)})"
    if decided_by.kind == "key owner":
        details.append(
            "The key belongs to another account, whose key policy and grants only it may read: the statement or "
            "grant that decided is not named here."
        )
    if decided_by.kind == "destination key":
        details.append(
            "A ReEncrypt out of this account's key into another account's key: the event records the decision on "
            "the destination key, whose key policy and grants only its owner may read, so what decided is not "
            "named here."
        )
    if decided_by.kind == "caller's account" or CALLER_IDENTITY_POLICY in reason:
        details.append(
            "The caller belongs to another account, whose identity policies only it may read: the one the decision "
            "relied on is not named here."
        )
    if event.decision == AuditEvent.Decision.FAILED and event.error_code.startswith("KMSInternal"):
        details.append("The service failed, not the caller: the request changed nothing and may be retried.")
    return Explanation(event.decision, summary, tuple(details), decided_by)
