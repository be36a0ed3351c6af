"""The audit dashboard's reads, each the work of one operation run through perform() by an interface:

- `trail_dashboard` (kmsconsole:ListAuditEvents): a page of the filtered trail, its charts, the notable events
  of the time range and the chain's state;
- `event_detail` (kmsconsole:GetAuditEvent): one event, its explanation and what it refers to;
- `export_events` (kmsconsole:ExportAuditEvents): the filtered events, as lazy rows to stream;
- `refused_query` (either read): a query refused for its shape, decided and failed so that it is audited.

Each asks the engine first (kmsconsole.api.reads: the caller's identity policies decide, and the events are
those the caller's account reads through the query's scope: its own principals' requests, or other accounts'
requests on its keys, kmsconsole.audit.scope), then resolves the filters in that account. A filter of the wrong
shape (a key id that is not one, another account's alias) fails the read with ValidationException, after the
decision, so the refusal is audited as failed; a well-formed filter that names nothing (an alias or a user that
does not exist) is an allowed read that matches no event, with a note saying why, as AWS answers a well-formed
query that matches nothing.
Every event, chart, notable event and filter is within the scope and as the caller's account may see it through
it (kmsconsole.audit.shown: an event of a request on another account's key does not name that account's key-policy
statements or grants; another account's request on the reader's key does not name the caller's identity policies
or access key id).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NoReturn

from django.db.models import QuerySet

from grants.selectors import live_grants
from keys.models import Alias, DeletedKey, Key, KeyPolicyVersion
from kmsconsole.api import reads
from kmsconsole.audit.charts import Charts, trail_charts
from kmsconsole.audit.destroyed import destroyed_keys
from kmsconsole.audit.explain import Explanation, explain
from kmsconsole.audit.export import event_rows
from kmsconsole.audit.models import AuditEvent, ChainVerification
from kmsconsole.audit.notable import NotableSection, notable_sections
from kmsconsole.audit.policy_history import PolicyHistory, policy_history
from kmsconsole.audit.scope import Scope, own_key_events, scope_events
from kmsconsole.audit.trail import (
    GRANT_ID,
    GRANT_OPERATIONS,
    Cursor,
    Page,
    TrailFilter,
    TrailQuery,
    narrowed,
    page,
    resolve,
)
from kmsconsole.audit.verification import ChainBase, chain_base, latest_verification
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext


@dataclass(frozen=True)
class ChainState:
    last: ChainVerification | None
    pending: ChainVerification | None
    base: ChainBase


@dataclass(frozen=True)
class TrailDashboard:
    filter: TrailFilter
    page: Page
    charts: Charts | None  # on the first page only: paging on does not aggregate the whole range again
    notable: list[NotableSection]
    chain: ChainState


def _in_range(events: QuerySet[AuditEvent], query: TrailQuery) -> QuerySet[AuditEvent]:
    if query.since is not None:
        events = events.filter(time__gte=query.since)
    if query.until is not None:
        events = events.filter(time__lt=query.until)
    return events


def alias_labels(account_id: str) -> Callable[[list[str]], dict[str, str]]:
    """Key ARN -> "alias/name" for the caller's own keys that have an alias (one query for a chart's keys)."""

    def labels(arns: list[str]) -> dict[str, str]:
        ids = {arn.rsplit("/", 1)[-1]: arn for arn in arns if f":{account_id}:key/" in arn}
        names: dict[str, str] = {}
        for key_id, name in Alias.objects.filter(
            account__account_id=account_id, key__key_id__in=list(ids)
        ).values_list("key__key_id", "name"):
            names.setdefault(ids[str(key_id)], name)
        return names

    return labels


def chain_state() -> ChainState:
    last, pending = latest_verification()
    base, _ = chain_base()
    return ChainState(last, pending, base)


def _shown_section(ctx: OperationContext, section: NotableSection, scope: Scope) -> NotableSection:
    events = reads.shown_audit_events(ctx, [row.event for row in section.rows], scope)
    return replace(
        section, rows=[replace(row, event=event) for row, event in zip(section.rows, events, strict=True)]
    )


def trail_dashboard(
    ctx: OperationContext,
    *,
    query: TrailQuery,
    now: datetime,
    before: Cursor | None = None,
    after: Cursor | None = None,
) -> TrailDashboard:
    """kmsconsole:ListAuditEvents for the dashboard page, within the query's scope."""
    scope = query.scope
    events = reads.audit_events(ctx, scope)
    account_id = ctx.caller.account_id
    trail = resolve(query, account_id=account_id)
    matching = narrowed(events, trail)
    first_page = before is None and after is None
    charts = (
        trail_charts(
            matching,
            since=query.since,
            until=query.until or now,
            account_id=account_id,
            scope=scope,
            key_labels=alias_labels(account_id),
        )
        if first_page
        else None
    )
    found = page(matching, before=before, after=after)
    # Another account's refusal on the reader's key usually follows a policy change the reader made (its own side).
    changes = _in_range(own_key_events(account_id), query) if scope is Scope.KEY_OWNER else None
    return TrailDashboard(
        filter=trail,
        page=replace(found, events=reads.shown_audit_events(ctx, found.events, scope)),
        charts=charts,
        notable=[
            _shown_section(ctx, section, scope)
            for section in notable_sections(
                _in_range(events, query),
                policy_changes=changes,
                destroyed=lambda arns: destroyed_keys(ctx, arns),
            )
        ],
        chain=chain_state(),
    )


def export_events(ctx: OperationContext, *, query: TrailQuery) -> Iterator[dict[str, Any]]:
    """kmsconsole:ExportAuditEvents: the filtered events of the query's scope, oldest first, as exported rows the
    caller's account may see, not yet read (the response streams them)."""
    events = reads.audit_events(ctx, query.scope)
    trail = resolve(query, account_id=ctx.caller.account_id)
    rows = event_rows(narrowed(events, trail).order_by("time", "seq"))
    return reads.shown_audit_rows(ctx, rows, query.scope)


def refused_query(ctx: OperationContext, *, scope: Scope, problems: Sequence[str]) -> NoReturn:
    """kmsconsole:ListAuditEvents or kmsconsole:ExportAuditEvents for a query refused for its shape (a filter that
    is not one, a scope that is not one, a page link that is not one): decided as the read would be (through
    `scope`, the one asked for when it is one, else the default), so a caller who may not read at all is refused
    (AccessDeniedException), then failed with ValidationException naming every problem (`problems`, phrased by the
    interface, never echoing a secret), as the REST API fails a bad filter inside its read: one event for the
    refused request. Nothing is read."""
    reads.audit_events(ctx, scope)
    raise errors.ValidationException(" ".join(problems) or "The query is not valid.")


@dataclass(frozen=True)
class KeyReference:
    """The event's key as it is now: still there, deleted (its tombstone), or another account's."""

    arn: str
    key_id: str
    own: bool
    exists: bool
    deleted_at: datetime | None = None

    @property
    def account(self) -> str:
        return self.arn.split(":")[4]


@dataclass(frozen=True)
class PolicyInForce:
    """The key policy versions that applied to the request: the one it was decided under and, for a request
    that set a new policy, that new version."""

    decided_under: KeyPolicyVersion | None
    set_by_request: KeyPolicyVersion | None


@dataclass(frozen=True)
class EventDetail:
    event: AuditEvent
    explanation: Explanation
    key: KeyReference | None
    policy: PolicyInForce | None
    scope: Scope = Scope.CALLER  # the side the reader sees the event from
    # The policy document the event set and the same policy's previous one in the trail the reader sees.
    policy_history: PolicyHistory | None = None
    # The grant the event is about (the one that decided it, or the one a grant operation named), and whether it
    # is still a grant of the reader's key (its page lists it); "" when none is named to the reader.
    grant_id: str = ""
    grant_exists: bool = False


def _grant_of(event: AuditEvent, decided_by_grant: str) -> str:
    """The grant an event (as the reader sees it) is about: the one that decided it, or the one a grant operation
    named by its id (`kmsconsole.audit.trail.grant_events` finds the same)."""
    if decided_by_grant:
        return decided_by_grant
    if event.operation not in GRANT_OPERATIONS:
        return ""
    for recorded in (event.request_parameters, event.response_elements):
        value = recorded.get("GrantId") if isinstance(recorded, dict) else None
        if isinstance(value, str) and GRANT_ID.match(value):
            return value
    return ""


# Operations whose allowed event comes with a new key policy version (written just before the event).
_SETS_POLICY = ("PutKeyPolicy", "CreateKey")


def _key_reference(arn: str, account_id: str) -> KeyReference | None:
    if ":key/" not in arn:
        return None
    key_id = arn.rsplit("/", 1)[-1]
    own = arn.split(":")[4] == account_id
    if not own:
        return KeyReference(arn, key_id, own=False, exists=False)
    exists = Key.objects.filter(key_id=key_id, account__account_id=account_id).exists()
    tombstone = None if exists else DeletedKey.objects.filter(key_id=key_id, account_id=account_id).first()
    return KeyReference(arn, key_id, True, exists, tombstone.deleted_at if tombstone else None)


def _policy_in_force(event: AuditEvent, key: KeyReference) -> PolicyInForce:
    versions = list(
        KeyPolicyVersion.objects.filter(
            key__key_id=key.key_id, key__account__account_id=key.arn.split(":")[4], created_at__lte=event.time
        ).order_by("-version")[:2]
    )
    if event.operation in _SETS_POLICY and event.decision == AuditEvent.Decision.ALLOWED and versions:
        return PolicyInForce(versions[1] if len(versions) > 1 else None, versions[0])
    return PolicyInForce(versions[0] if versions else None, None)


def event_detail(ctx: OperationContext, *, event_id: str) -> EventDetail:
    """kmsconsole:GetAuditEvent: the event (one the caller's account reads through either scope, as it may see it
    through that scope), explained, with the key it names and the key policy version in force then (for the
    caller's own keys: version numbers and dates, not the text), and, for an event that set a policy, its document
    and the same policy's previous document as the trail the reader sees recorded it
    (kmsconsole.audit.policy_history)."""
    read = reads.audit_event(ctx, event_id=event_id)
    event = read.event
    key = _key_reference(event.key_arn, ctx.caller.account_id)
    policy = _policy_in_force(event, key) if key is not None and key.exists else None
    history = policy_history(event, scope_events(ctx.caller.account_id, read.scope))
    explanation = explain(event)
    grant_id = _grant_of(event, explanation.decided_by.grant_id)
    grant_exists = bool(grant_id and key is not None and key.exists and key.own) and (
        live_grants().filter(key__key_id=key.key_id, grant_id=grant_id).exists()
    )
    return EventDetail(
        event,
        explanation,
        key,
        policy,
        read.scope,
        policy_history=history,
        grant_id=grant_id,
        grant_exists=grant_exists,
    )
