"""The analyzer's operations, as the console, the REST API and ``manage.py simulate`` call them (each inside
``perform()`` with its operation from the operation table; all read-only).

Who may do what (decided by the engine, recorded on the audit event; a refusal is AccessDeniedException):

- Each key operation needs the caller allowed every read of what its answer shows, each decided as that read's
  own request would be (key policy, and IAM policies where the key policy lets them count; AWS's rule: a reader
  must be allowed the operation that returns the data), **and** the operation's own action in its identity
  policies, on the key's ARN (a product action, like the other ``kmsconsole:`` actions: a key policy's ``kms:*``
  does not grant it). A read refused refuses the whole answer (its action is named in the message); no answer is
  given with parts left out. The reads (``keys.services.access``): the key's policy (``kms:GetKeyPolicy``) and
  its tags (``kms:ListResourceTags``: a trace quotes a tag under a condition on ``aws:ResourceTag``, a draft
  policy's yes or no tests a guess at one), and its grants (``kms:ListGrants``: grants allow too, and routes, a
  simulation's answer and its trace name them) for ``kmsconsole:SimulatePolicy`` (``policy_simulate``) and
  ``kmsconsole:AnalyzeKeyAccess``'s ``key_policy_compare`` (who gains or loses access under a draft key policy)
  (``ACCESS_READS``); and for ``kmsconsole:AnalyzeKeyAccess``'s ``key_access_analyze`` (the matrix and the
  findings of a key), whether automatic rotation is on (``kms:GetKeyRotationStatus``: a finding reports it) as well
  on a key that can rotate (``analysis_reads``: no request can read the rotation status of any other key). The
  key must be in the caller's account. The principals analysed are every account's (so that access from other
  accounts, by the key policy, a grant or a condition on "*", is never under-reported) for the operator, who
  sees every principal; a caller is shown each other account the key policy and grants name as a whole, only
  where it gets anything, analysed as one synthetic principal whose own IAM allows everything and whose name,
  id, type and tags are unknown, never from that account's principals or identity policies
  (``policies/analyzer/shown.py``); the principal simulated
  must be of the caller's account (another account's is "not found", as one that does not exist: simulating reads
  and quotes its identity policies). The operator simulates any account's principals.
- ``kmsconsole:ListFindings`` (``findings_list``: the findings of every key of the caller's account, a page of keys
  at a time) needs the action in the caller's identity policies (resource ``*``); keys on which the caller may not
  make every read of ``analysis_reads`` (decided by the engine as for real requests from the caller, but not
  recorded per key) are left out whole and counted. To stay fast with many principals, its store findings look
  only at the principals they are about: other accounts' principals the key policy names and "*", and the
  account's principals whose identity policies allow every KMS action on every resource. The first page also holds
  the findings on the account's long-term access keys (``policies/analyzer/credentials.py``: unused, or due for
  rotation), only of owners (a user, the account root) on whom the caller's ``iam:ListAccessKeys`` request would be
  allowed (identity policies decide, as for that request; not recorded, and not counted).
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils import timezone

from keys.models import Key
from keys.selectors import ResolvedKey, resolve_key
from keys.services.access import (
    ACCESS_READS,
    READ_VALUES,
    KeyQuestions,
    analysis_reads,
    authorize_on_key,
)
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies import engine
from policies.analyzer.access import (
    compiled_policy,
    grant_names,
    key_access,
    key_access_diff,
    owner_key_access,
    owner_key_access_diff,
)
from policies.analyzer.credentials import CredentialFinding, access_key_findings
from policies.analyzer.findings import KeyFinding, key_findings
from policies.analyzer.principals import broad_iam, principal_for, store_principals
from policies.analyzer.simulator import DraftIdentityPolicy, SimulatedRequest, Simulation, simulate
from policies.authorization import authorize, identity_policies, readable_engine_caller, request_context
from policies.engine.analysis import AccessAnalyzer
from policies.engine.findings import Severity
from policies.engine.matrix import AccessChange, AccessMatrix

KEYS_PER_PAGE = 50
MAX_KEYS_PER_PAGE = 100
MAX_GRANT_TOKENS = 10  # GrantTokens holds at most 10 (the KMS API's limit)
SEVERITIES = tuple(severity.value for severity in Severity)


def _analysing_account(ctx: OperationContext) -> str | None:
    """Whose principals an analysis may read in full: the caller's account's (None: the operator, every one)."""
    return None if ctx.caller.is_operator else ctx.caller.account_id


def _gate(
    ctx: OperationContext, key_id: str, reads: Sequence[str] | Callable[[Key], Sequence[str]]
) -> ResolvedKey:
    """The key, once the caller may make each read of `reads` on it (`keys.services.access.ACCESS_READS`, or
    `analysis_reads`, which depends on the key: what the answer shows) and perform the operation's action on it in
    IAM (see the module docstring). A refused read refuses the whole answer, with that action in the message."""
    resolved = resolve_key(key_id, caller_account=ctx.caller.account_id, operation=ctx.operation)
    key = resolved.key
    # The policy and, through decisions under conditions on aws:ResourceTag (a trace quotes the value; a draft
    # policy's yes or no tests one, a prefix at a time with StringLike), the tags; then the grants and the
    # rotation status where the answer shows them.
    for action in reads(key) if callable(reads) else reads:
        authorize_on_key(ctx, key, action=action, condition_values=READ_VALUES.get(action))
    authorize(ctx, resource=key.arn, resource_account=key.account.account_id)
    return resolved


@dataclass(frozen=True)
class KeyAccessReport:
    key: Key
    matrix: AccessMatrix
    findings: list[KeyFinding]
    grant_names: dict[str, str]


def key_access_analyze(*, ctx: OperationContext, key_id: str) -> KeyAccessReport:
    """Every principal's access to every action on the key, and the key's findings."""
    key = _gate(ctx, key_id, analysis_reads).key
    account_id = _analysing_account(ctx)
    if account_id is None:
        matrix = key_access(key, store_principals())
    else:  # other accounts as a whole, only those given anything, never from their principals or IAM
        matrix = owner_key_access(key, store_principals(accounts=[account_id]))
    return KeyAccessReport(key, matrix, key_findings(key, matrix, timezone.now()), grant_names(key))


@dataclass(frozen=True)
class PolicyComparison:
    key: Key
    changes: tuple[AccessChange, ...]

    @property
    def gains(self) -> list[AccessChange]:
        return [change for change in self.changes if change.direction == "gains"]

    @property
    def losses(self) -> list[AccessChange]:
        return [change for change in self.changes if change.direction == "loses"]


def key_policy_compare(*, ctx: OperationContext, key_id: str, policy: str) -> PolicyComparison:
    """Who would gain or lose which action if `policy` replaced the key's policy (nothing is saved)."""
    key = _gate(ctx, key_id, ACCESS_READS).key
    account_id = _analysing_account(ctx)
    if account_id is None:
        return PolicyComparison(key, key_access_diff(key, store_principals(), policy))
    return PolicyComparison(key, owner_key_access_diff(key, store_principals(accounts=[account_id]), policy))


@dataclass(frozen=True)
class FindingsPage:
    findings: list[KeyFinding]
    keys_analysed: int
    keys_hidden: int
    next_after: str | None
    credentials: list[CredentialFinding]  # the account's access keys: on the first page only


def _check_severity(severity: str | None) -> str | None:
    if severity in (None, ""):
        return None
    if severity not in SEVERITIES:
        raise errors.ValidationException(f"Severity must be one of {', '.join(SEVERITIES)}.")
    return severity


def _page_of_keys(account_id: str, after: str | None, limit: int) -> list[Key]:
    keys = (
        Key.objects.filter(account__account_id=account_id)
        .select_related("account")
        .order_by("created_at", "id")
    )
    if after:
        anchor = keys.filter(key_id=_uuid(after)).first()
        if anchor is None:
            raise errors.ValidationException("The page cursor does not name a key of this account.")
        keys = keys.filter(
            Q(created_at__gt=anchor.created_at) | Q(created_at=anchor.created_at, id__gt=anchor.id)
        )
    # Each key's questions (KeyQuestions) read its aliases and tags: prefetched, a query per page, not per key.
    return list(keys.prefetch_related("aliases", "tags")[: limit + 1])


def _uuid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise errors.ValidationException("The page cursor is not a key id.") from None


def findings_list(
    *,
    ctx: OperationContext,
    severity: str | None = None,
    after: str | None = None,
    limit: int = KEYS_PER_PAGE,
    query: Callable[[], Mapping[str, Any]] | None = None,
) -> FindingsPage:
    """The findings of a page of the account's keys (oldest first), optionally of one severity. An interface that
    reads these from a request passes `query` instead: called once the caller may list, it reads (and may refuse)
    the request and gives `severity`, `after` and `limit` (None for the default), so a caller who may not list is
    denied whatever it asked, an unknown or malformed parameter included."""
    authorize(ctx, resource="*")
    if query is not None:
        asked = query()
        severity, after = asked["severity"], asked["after"]
        limit = KEYS_PER_PAGE if asked["limit"] is None else asked["limit"]
    wanted = _check_severity(severity)
    if not 1 <= limit <= MAX_KEYS_PER_PAGE:
        raise errors.ValidationException(f"A page holds 1 to {MAX_KEYS_PER_PAGE} keys.")
    account_id = ctx.caller.account_id
    keys = _page_of_keys(account_id, after, limit)
    more = len(keys) > limit
    keys = keys[:limit]
    # Findings follow from the policy and conditions on the key's tags, and name grants and report rotation: only
    # keys whose policy, tags, grants and rotation status the caller may all read (`analysis_reads`).
    questions = KeyQuestions(ctx)
    readable = [key for key in keys if questions.may_analyse(key)]
    # The principals the store findings are about: other accounts' and "*" (external access), and the account's
    # principals whose IAM policies allow every KMS action on every key (kms:* through delegation).
    # For a key owner, other accounts are each one synthetic principal (policies/analyzer/shown.py), never their
    # real principals; the operator's view has them all.
    operator = _analysing_account(ctx) is None
    principals = [
        principal
        for principal in store_principals(accounts=None if operator else [account_id])
        if principal.subject.external_to(account_id) or broad_iam(principal)
    ]
    analyzer, account_analyzer = AccessAnalyzer(), AccessAnalyzer(principal_unknown=True)
    now = timezone.now()
    found: list[KeyFinding] = []
    for key in readable:
        if operator:
            matrix = key_access(key, principals, analyzer=analyzer)
        else:
            matrix = owner_key_access(key, principals, analyzer=analyzer, account_analyzer=account_analyzer)
        found += [item for item in key_findings(key, matrix, now) if wanted in (None, item.finding.severity)]
    order = {value: index for index, value in enumerate(SEVERITIES)}
    found.sort(key=lambda item: order[item.finding.severity])
    credentials = [] if after else access_key_findings(account_id, now, may_list_keys_of=_key_lister(ctx))
    return FindingsPage(
        findings=found,
        keys_analysed=len(readable),
        keys_hidden=len(keys) - len(readable),
        next_after=str(keys[-1].key_id) if more and keys else None,
        credentials=[item for item in credentials if wanted in (None, item.finding.severity)],
    )


LIST_ACCESS_KEYS = "iam:ListAccessKeys"


def _key_lister(ctx: OperationContext) -> Callable[[str], bool]:
    """Whether the caller's iam:ListAccessKeys request on an owner (a user's ARN, or the account root's, as the
    access-key operations authorize it) would be allowed: identity policies decide, as for the real request (its
    address, transport and time), asked of the engine and recorded nowhere, once per owner."""
    if ctx.caller.is_operator:
        return lambda _owner: True
    caller = readable_engine_caller(ctx.caller)
    if caller is None:
        return lambda _owner: False  # every request of a principal the engine cannot read is refused
    policies = identity_policies(ctx.caller)
    answers: dict[str, bool] = {}

    def may_list_keys_of(owner_arn: str) -> bool:
        if owner_arn not in answers:
            request = request_context(ctx, caller, action=LIST_ACCESS_KEYS, resource=owner_arn)
            answers[owner_arn] = engine.would_allow(request, key_policy=None, identity_policies=policies)
        return answers[owner_arn]

    return may_list_keys_of


def _check_request(
    encryption_context: Mapping[str, str] | None, grant_tokens: Sequence[str], source_ip: str | None
) -> None:
    if encryption_context is not None and not all(
        isinstance(name, str) and isinstance(value, str) for name, value in encryption_context.items()
    ):
        raise errors.ValidationException("The encryption context maps strings to strings.")
    if len(grant_tokens) > MAX_GRANT_TOKENS:
        raise errors.ValidationException(f"At most {MAX_GRANT_TOKENS} grant tokens.")
    if source_ip:
        try:
            ipaddress.ip_address(source_ip)
        except ValueError:
            raise errors.ValidationException(f"{source_ip[:64]} is not an IPv4 or IPv6 address.") from None


def policy_simulate(
    *,
    ctx: OperationContext,
    principal: str,
    action: str,
    key_id: str,
    encryption_context: Mapping[str, str] | None = None,
    grant_tokens: Sequence[str] = (),
    source_ip: str | None = None,
    time: datetime | None = None,
    secure_transport: bool | None = None,
    draft_key_policy: str | None = None,
    draft_identity_policy: tuple[str, str] | None = None,
) -> Simulation:
    """Decide one request of `principal` as the engine would (see policies/analyzer/simulator.py)."""
    resolved = _gate(ctx, key_id, ACCESS_READS)
    _check_request(encryption_context, grant_tokens, source_ip)
    if draft_key_policy is not None:
        compiled_policy(draft_key_policy)  # a malformed draft is the caller's error, before anything else
    draft = DraftIdentityPolicy(*draft_identity_policy) if draft_identity_policy is not None else None
    if draft is not None and not draft.name.strip():
        raise errors.ValidationException("Name the identity policy the draft replaces or adds.")
    return simulate(
        SimulatedRequest(
            principal=principal_for(principal, account_id=_analysing_account(ctx)),
            action=action,
            key=resolved.key,
            request_alias=resolved.request_alias,
            encryption_context=encryption_context,
            grant_tokens=tuple(grant_tokens),
            source_ip=source_ip or None,
            time=time,
            secure_transport=secure_transport,
            draft_key_policy=draft_key_policy,
            draft_identity_policy=draft,
        )
    )
