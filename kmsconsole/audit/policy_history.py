"""The policy document an audit event carries, and the same policy's previous document in the trail.

An event that sets a policy (PutKeyPolicy; CreateKey, with the policy given or the default one it applied, which
its response elements record; the service's UnbindDeletedPrincipal that rewrote a key policy naming a deleted
principal, whose response elements record the new document; iam:Put<User|Role|Group>Policy) is shown with its
document and what it changed against the previous recorded document of the same policy (the same key's, or the
same principal's policy of the same name). That previous document is looked for only among the events the reader
sees through the same side of the trail (kmsconsole.audit.scope), never in the key's policy history table, which
is the key owner's to allow (kms:GetKeyPolicy): an auditor who may read the trail may read what the trail
recorded, and nothing more.

Each interface records a request in its own names (the KMS endpoint and the console in the API's member names, the
REST API its body as sent, the command line its options), so every spelling of a member is looked at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet

from kmsconsole.audit.expressions import KEY_POLICY_OPERATIONS as KEY_POLICY_OPERATIONS
from kmsconsole.audit.expressions import UNBIND_OPERATION as UNBIND_OPERATION
from kmsconsole.audit.expressions import Negated
from kmsconsole.audit.models import AuditEvent

IDENTITY_POLICY_OPERATIONS = ("iam:PutUserPolicy", "iam:PutRolePolicy", "iam:PutGroupPolicy")
# The response element of an allowed CreateKey that applied the default key policy (keys.services.lifecycle).
DEFAULT_KEY_POLICY = "DefaultKeyPolicy"
# The response element of an UnbindDeletedPrincipal that rewrote the key's policy (absent when it only retired or
# rebound grants: then it set no policy).
REWRITTEN_KEY_POLICY = "Policy"
# The response element that carries the document an operation applied without a request naming it.
_RESPONSE_DOCUMENTS = {"CreateKey": DEFAULT_KEY_POLICY, UNBIND_OPERATION: REWRITTEN_KEY_POLICY}
_DOCUMENT_MEMBERS = ("Policy", "policy", "PolicyDocument", "policy_document", "document")
# What names an identity policy: its owner (by kind) and its name, in an account; each in every interface's spelling.
_OWNER_MEMBERS = (("UserName", "user_name"), ("RoleName", "role_name"), ("GroupName", "group_name"))
_POLICY_NAME = ("PolicyName", "policy_name")
_ACCOUNT = ("AccountId", "account_id")


@dataclass(frozen=True)
class RecordedPolicy:
    """A policy document as an event recorded it: `default` when CreateKey applied the default key policy."""

    event: AuditEvent
    document: str | None
    default: bool = False


@dataclass(frozen=True)
class PolicyHistory:
    """The event's own document, and the previous event of the same policy the reader sees (None: the trail it
    sees holds none before it)."""

    current: RecordedPolicy
    previous: RecordedPolicy | None


def _params(event: AuditEvent) -> dict[str, Any]:
    return event.request_parameters if isinstance(event.request_parameters, dict) else {}


def recorded_policy(event: AuditEvent) -> RecordedPolicy:
    """The policy document the event recorded (None when it recorded none: an event written before CreateKey
    recorded the default policy it applied, or a request that sent no document)."""
    params = _params(event)
    for member in _DOCUMENT_MEMBERS:
        value = params.get(member)
        if isinstance(value, str):
            return RecordedPolicy(event, value)
    response = event.response_elements if isinstance(event.response_elements, dict) else {}
    member = _RESPONSE_DOCUMENTS.get(event.operation)
    applied = response.get(member) if member is not None else None
    if isinstance(applied, str):
        return RecordedPolicy(event, applied, default=event.operation == "CreateKey")
    return RecordedPolicy(event, None, default=event.operation == "CreateKey")


def _sets_a_policy(event: AuditEvent) -> bool:
    if event.operation == UNBIND_OPERATION:
        response = event.response_elements if isinstance(event.response_elements, dict) else {}
        return isinstance(response.get(REWRITTEN_KEY_POLICY), str)
    return event.operation in KEY_POLICY_OPERATIONS + IDENTITY_POLICY_OPERATIONS


def _spelled(params: dict[str, Any], spellings: tuple[str, ...]) -> str | None:
    return next((params[name] for name in spellings if isinstance(params.get(name), str)), None)


def _member_is(spellings: tuple[str, ...], value: str) -> Q:
    matches = Q()
    for name in spellings:
        matches |= Q(**{f"request_parameters__{name}": value})
    return matches


def _same_policy(event: AuditEvent) -> Q | None:
    if event.operation in KEY_POLICY_OPERATIONS:
        if not event.key_arn:
            return None
        # An UnbindDeletedPrincipal that only retired grants set no policy: not a previous document.
        rewrites = Q(operation=UNBIND_OPERATION, response_elements__has_key=REWRITTEN_KEY_POLICY)
        return Q(key_arn=event.key_arn) & (Q(operation__in=("PutKeyPolicy", "CreateKey")) | rewrites)
    params = _params(event)
    policy_name = _spelled(params, _POLICY_NAME)
    if policy_name is None:
        return None
    same = Q(operation=event.operation, caller_account=event.caller_account) & _member_is(
        _POLICY_NAME, policy_name
    )
    for spellings in _OWNER_MEMBERS:
        if (owner := _spelled(params, spellings)) is not None:
            same &= _member_is(spellings, owner)
    account = _spelled(params, _ACCOUNT) or event.caller_account
    # The console names the account; the REST API acts in the caller's own and names none.
    named = _member_is(_ACCOUNT, account)
    if account == event.caller_account:
        named |= ~Q(request_parameters__has_key=_ACCOUNT[0]) & ~Q(request_parameters__has_key=_ACCOUNT[1])
    return same & named


def policy_history(event: AuditEvent, visible: QuerySet[AuditEvent]) -> PolicyHistory | None:
    """The event's policy and the previous recorded one among `visible` (the events the reader sees through the
    side it sees this event from); None for an event that sets no policy."""
    if not _sets_a_policy(event):
        return None
    current = recorded_policy(event)
    same = _same_policy(event)
    if same is None:
        return PolicyHistory(current, None)
    return PolicyHistory(
        current, _previous(visible.filter(same, decision=AuditEvent.Decision.ALLOWED), event)
    )


def _previous(candidates: QuerySet[AuditEvent], event: AuditEvent) -> RecordedPolicy | None:
    """The newest of `candidates` chained before `event`. A key's, on PostgreSQL, is the first entry of a range of
    `audit_key_policy_idx` (key, -seq), whose predicate the filter repeats and whose order the query asks for, so
    the key's other events (its Encrypts) are never read; elsewhere, and for an identity policy, newest first by
    (time, seq), the order of the indexes that end in it (the key's, the operation's)."""
    if event.operation in KEY_POLICY_OPERATIONS and connection.vendor == "postgresql":
        earlier = (
            candidates.filter(operation__in=KEY_POLICY_OPERATIONS)
            .alias(newest_first=Negated("seq"))
            .filter(newest_first__gt=-event.seq)
            .order_by(Negated("seq"))
            .first()
        )
    else:
        earlier = candidates.filter(time__lte=event.time, seq__lt=event.seq).order_by("-time", "-seq").first()
    return recorded_policy(earlier) if earlier is not None else None
