"""Authorized reads for the REST API's list and detail views.

Each function takes the OperationContext of the KMS (or product) operation that covers the read, asks the engine
first — exactly as the KMS endpoint's service does for that operation — and returns a queryset the view filters,
orders and pages. Rows are always confined to the caller's account (job runs, which sweep every account, to the
caller's share of each; audit events to its own requests, or to other accounts' requests on its keys).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from grants.models import Grant
from grants.selectors import grants_of_key
from keys import selectors
from keys.models import Alias, Key, KeyPolicyVersion, Tag
from keys.selectors import resolve_key
from keys.services.access import KeyQuestions, key_for
from keys.services.key_policy import key_for_policy_check, validate_key_policy
from keys.services.policy_restore import policy_version_get
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.scope import Scope, either_scope, scope_events, scope_of
from kmsconsole.audit.shown import shown_event, shown_values
from kmsconsole.core import errors
from kmsconsole.jobs.models import JobRun, ShownRun
from kmsconsole.operations import OperationContext
from policies.authorization import authorize
from policies.selectors import account_get


def account_keys(ctx: OperationContext) -> QuerySet[Key]:
    """ListKeys: kms:ListKeys is IAM-only; every key of the caller's account, whatever its state.

    Filtered by the account's primary key, not by its account id through the join: PostgreSQL then walks the
    listing index (account, created_at, id) in order and stops after a page (or counts from the index) instead of
    scanning and sorting every key of every account."""
    authorize(ctx, resource="*")
    return (
        Key.objects.filter(account=account_get(ctx.caller.account_id))
        .select_related("account")
        .prefetch_related("aliases", "tags")
    )


def account_aliases(ctx: OperationContext, *, key_id: str | None = None) -> QuerySet[Alias]:
    """ListAliases: IAM-only, optionally one key's (named by key id or ARN; no key policy is consulted)."""
    authorize(ctx, resource="*")
    aliases = Alias.objects.filter(account__account_id=ctx.caller.account_id).select_related(
        "account", "key__account"
    )
    if key_id is not None:
        key = resolve_key(key_id, caller_account=ctx.caller.account_id, operation=ctx.operation).key
        aliases = aliases.filter(key=key)
    return aliases


def key_tags(ctx: OperationContext, *, key_id: str) -> QuerySet[Tag]:
    """ListResourceTags: decided by the key's policy, in any key state."""
    return Tag.objects.filter(key=key_for(ctx, key_id))


def key_grants(ctx: OperationContext, *, key_id: str) -> tuple[Key, QuerySet[Grant]]:
    """ListGrants: decided by the key's policy, in any key state."""
    key = key_for(ctx, key_id)
    return key, grants_of_key(key).order_by("created_at", "pk")


def policy_versions(ctx: OperationContext, *, key_id: str) -> QuerySet[KeyPolicyVersion]:
    """The key policy's history, newest first; reading it is reading the policy (kms:GetKeyPolicy)."""
    key = key_for(ctx, key_id)
    return KeyPolicyVersion.objects.filter(key=key).order_by("-version")


def policy_version(ctx: OperationContext, *, key_id: str, version: int) -> KeyPolicyVersion:
    """One version of the key policy's history, its row checked (`keys.services.policy_restore`)."""
    return policy_version_get(ctx, key_id=key_id, version=version)


def policy_validate(ctx: OperationContext, *, key_id: str, document: str) -> dict[str, Any]:
    """Check a draft key policy as PutKeyPolicy would (parse, principals exist, lockout safety) without saving;
    the caller must be allowed PutKeyPolicy on the key (`key_for_policy_check`)."""
    key = key_for_policy_check(ctx, key_id)
    try:
        validate_key_policy(
            ctx,
            document=document,
            key=key,
            bypass_lockout=False,
            resource_tags=selectors.key_tags(key),
            lock=False,  # a dry run writes nothing
        )
    except errors.KmsError as exc:
        return {"valid": False, "code": exc.code, "message": exc.message}
    return {"valid": True, "code": "", "message": ""}


def audit_events(ctx: OperationContext, scope: Scope = Scope.CALLER) -> QuerySet[AuditEvent]:
    """The audit events the caller's account reads through `scope` (kmsconsole.audit.scope): its own principals'
    requests (the default), or other accounts' requests on its keys. kmsconsole:ListAuditEvents.

    Rows are stored whole: whoever shows them shows them through `shown_audit_events` or `shown_audit_rows` with the
    same scope, since an event of a cross-account request names each side's statements and grants."""
    authorize(ctx, resource="*")
    return scope_events(ctx.caller.account_id, scope)


def audit_event_sides(ctx: OperationContext) -> dict[Scope, QuerySet[AuditEvent]]:
    """Both sides of the caller's account's trail, under one decision (kmsconsole:ListAuditEvents), for a reader
    that shows only what neither side hides (the console's overview), or that decides before it checks the side
    it was asked for (the REST list: a caller who may not read is denied whatever its query)."""
    authorize(ctx, resource="*")
    return {scope: scope_events(ctx.caller.account_id, scope) for scope in Scope}


def shown_audit_events(
    ctx: OperationContext, events: Iterable[AuditEvent], scope: Scope = Scope.CALLER
) -> list[AuditEvent]:
    """The events as the caller's account may see them through `scope` (kmsconsole.audit.shown): on another
    account's key, without the names of that account's key-policy statements and grants; of another account's
    request on the reader's key, without that account's identity policies and access key id."""
    return [shown_event(event, ctx.caller.account_id, scope) for event in events]


def shown_audit_rows(
    ctx: OperationContext, rows: Iterable[dict[str, Any]], scope: Scope = Scope.CALLER
) -> Iterator[dict[str, Any]]:
    """Exported rows (`kmsconsole.audit.export.event_rows`) as the caller's account may see them through `scope`,
    as they come."""
    account_id = ctx.caller.account_id
    return (shown_values(row, account_id, scope) for row in rows)


@dataclass(frozen=True)
class ReadEvent:
    """One event as the reader's account may see it, and the scope it is seen through."""

    event: AuditEvent
    scope: Scope


def _event_in_scope(account_id: str, event_id: Any) -> ReadEvent | None:
    """The event as stored and the scope through which a reader of `account_id` sees it; None if it sees it
    through neither (or there is no such event)."""
    found = AuditEvent.objects.filter(either_scope(account_id), event_id=event_id).first()
    scope = scope_of(found, account_id) if found is not None else None
    return None if found is None or scope is None else ReadEvent(found, scope)


def audit_event(ctx: OperationContext, *, event_id: str) -> ReadEvent:
    """One event the caller's account reads through either scope, as it may see it. kmsconsole:GetAuditEvent."""
    authorize(ctx, resource="*")
    account_id = ctx.caller.account_id
    read = _event_in_scope(account_id, event_id)
    if read is None:
        raise errors.NotFoundException(f"Audit event {event_id} does not exist.")
    return ReadEvent(shown_event(read.event, account_id, read.scope), read.scope)


# The action of an event's page: what a page that links to one asks first (`linkable_events`).
EVENT_PAGE_ACTION = "kmsconsole:GetAuditEvent"


def linkable_events(ctx: OperationContext) -> QuerySet[AuditEvent]:
    """The events a page may link to the event's page of, so that the link never lands on a refusal: those
    `audit_event` would find for the caller's account (either scope), or none when a kmsconsole:GetAuditEvent
    request by the caller would be refused. That is decided as the request would be (identity policies alone, with
    the linking request's source IP, transport and time: it is asked inside the linking page's own operation) and
    recorded nowhere."""
    if not KeyQuestions(ctx).allows_on_account(EVENT_PAGE_ACTION):
        return AuditEvent.objects.none()
    return AuditEvent.objects.filter(either_scope(ctx.caller.account_id))


def job_runs(ctx: OperationContext) -> QuerySet[JobRun]:
    """Runs of the periodic jobs (deletion, rotation, grant propagation, the audit jobs). kmsconsole:ListJobRuns.

    Every run, since each sweep runs over every account; what each shows is `shown_runs`."""
    authorize(ctx, resource="*")
    return JobRun.objects.all()


def shown_runs(ctx: OperationContext, runs: Iterable[JobRun]) -> dict[int, ShownRun]:
    """Each run as the caller may see it: its job and times, and of its counts and failures only those about the
    caller's account (`JobRun.shown_to`). The operator sees every run whole."""
    account_id = None if ctx.caller.is_operator else ctx.caller.account_id
    return {run.pk: run.shown_to(account_id) for run in runs}
