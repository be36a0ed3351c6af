"""The policy document an audit event carries, and the same policy's previous document in the trail.

An event that sets a policy (PutKeyPolicy; CreateKey, with the policy given or the default one it applied, which
its response elements record; iam:Put<User|Role|Group>Policy) is shown with its document and what it changed
against the previous recorded document of the same policy (the same key's, or the same principal's policy of the
same name). That previous document is looked for only among the events the reader sees through the same side of
the trail (kmsconsole.audit.scope), never in the key's policy history table, which is the key owner's to allow
(kms:GetKeyPolicy): an auditor who may read the trail may read what the trail recorded, and nothing more.

Each interface records a request in its own names (the KMS endpoint and the console in the API's member names, the
REST API its body as sent, the command line its options), so every spelling of a member is looked at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from kmsconsole.audit.models import AuditEvent

KEY_POLICY_OPERATIONS = ("PutKeyPolicy", "CreateKey")
IDENTITY_POLICY_OPERATIONS = ("iam:PutUserPolicy", "iam:PutRolePolicy", "iam:PutGroupPolicy")
# The response element of an allowed CreateKey that applied the default key policy (keys.services.lifecycle).
DEFAULT_KEY_POLICY = "DefaultKeyPolicy"
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
    default = response.get(DEFAULT_KEY_POLICY) if event.operation == "CreateKey" else None
    if isinstance(default, str):
        return RecordedPolicy(event, default, default=True)
    return RecordedPolicy(event, None, default=event.operation == "CreateKey")


def _spelled(params: dict[str, Any], spellings: tuple[str, ...]) -> str | None:
    return next((params[name] for name in spellings if isinstance(params.get(name), str)), None)


def _member_is(spellings: tuple[str, ...], value: str) -> Q:
    matches = Q()
    for name in spellings:
        matches |= Q(**{f"request_parameters__{name}": value})
    return matches


def _same_policy(event: AuditEvent) -> Q | None:
    if event.operation in KEY_POLICY_OPERATIONS:
        return Q(key_arn=event.key_arn, operation__in=KEY_POLICY_OPERATIONS) if event.key_arn else None
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
    if event.operation not in KEY_POLICY_OPERATIONS + IDENTITY_POLICY_OPERATIONS:
        return None
    current = recorded_policy(event)
    same = _same_policy(event)
    if same is None:
        return PolicyHistory(current, None)
    # By (time, seq), newest first: the order of the indexes that end in (time, seq) (the key's, the operation's).
    earlier = (
        visible.filter(same, decision=AuditEvent.Decision.ALLOWED, time__lte=event.time, seq__lt=event.seq)
        .order_by("-time", "-seq")
        .first()
    )
    return PolicyHistory(current, recorded_policy(earlier) if earlier is not None else None)
