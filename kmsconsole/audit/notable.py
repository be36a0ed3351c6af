"""The notable-events panel: what an auditor should look at first, from the trail itself.

- uses of keys pending deletion (the service marks them `notable` when it refuses them; only operations that use
  a key, `Operation.uses_key`);
- refusals on a key soon after its key policy changed (a policy edit that broke someone's access);
- grants created by principals the operator bound to an integrated service;
- key policies set with the lockout safety check bypassed;
- principals that gave themselves use of a key (a key administrator editing the policy to make itself a key user,
  or granting itself use; the service marks them `notable` when it allows them).

Each section is one or two short, index-ordered reads of the events the caller may see, within the dashboard's
time range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet

from grants.models import IntegratedService
from kmsconsole.audit.destroyed import Destroyed
from kmsconsole.audit.marks import PENDING_DELETION_USE, SELF_GRANTED_USE, notable_events
from kmsconsole.audit.models import AuditEvent

ROWS = 5
# The reader's keys among these key ARNs destroyed since, by ARN (kmsconsole.audit.destroyed.destroyed_keys, asked
# inside the reading operation).
DestroyedOf = Callable[[Iterable[str]], dict[str, Destroyed]]
# A refusal this soon after the key's policy changed is shown as possibly caused by the change.
AFTER_POLICY_CHANGE = timedelta(hours=24)
# How many of the newest refusals are matched against policy changes.
REFUSALS_SCANNED = 500
# How each interface names PutKeyPolicy's and CreateKey's bypass flag in the recorded parameters.
BYPASS_PARAMETERS = ("BypassPolicyLockoutSafetyCheck", "bypass_lockout_safety_check")
_SETS_POLICY = ("PutKeyPolicy", "CreateKey")
_ALLOWED = AuditEvent.Decision.ALLOWED
_DENIED = AuditEvent.Decision.DENIED


@dataclass(frozen=True)
class NotableRow:
    event: AuditEvent
    note: str = ""
    # The event's key, one of the reader's, destroyed since (kmsconsole.audit.destroyed).
    destroyed: Destroyed | None = None


@dataclass(frozen=True)
class NotableSection:
    name: str
    title: str
    explanation: str
    rows: list[NotableRow]
    # The dashboard filters that list all of them, when they can be expressed as filters.
    filters: dict[str, str] = field(default_factory=dict)


def _newest(events: QuerySet[AuditEvent]) -> list[NotableRow]:
    return [NotableRow(event) for event in events.order_by("-time", "-seq")[:ROWS]]


PENDING_DELETION_ADVICE = (
    "Someone still relies on a key that is about to be destroyed: cancel the deletion or move them off it."
)
ALL_DESTROYED = (
    "The keys these requests used have been destroyed since: there is no deletion left to cancel, and what they "
    "encrypted can no longer be decrypted. Move whoever still uses them to another key."
)


def pending_deletion_uses(
    events: QuerySet[AuditEvent], destroyed: DestroyedOf | None = None
) -> NotableSection:
    """The newest uses of keys pending deletion; those on a key `destroyed` finds (the reader's own, destroyed
    since: kmsconsole.audit.destroyed.destroyed_keys) say so, and the advice to cancel the deletion goes once every
    key listed is destroyed."""
    rows = _newest(events.filter(notable_events(PENDING_DELETION_USE)))
    gone = destroyed({row.event.key_arn for row in rows}) if destroyed is not None else {}
    rows = [NotableRow(row.event, row.note, gone.get(row.event.key_arn)) for row in rows]
    every_one_gone = bool(rows) and all(row.destroyed is not None for row in rows)
    return NotableSection(
        "pending-deletion",
        "Uses of keys pending deletion",
        ALL_DESTROYED if every_one_gone else PENDING_DELETION_ADVICE,
        rows,
        {"notable": PENDING_DELETION_USE},
    )


def self_granted_uses(events: QuerySet[AuditEvent]) -> NotableSection:
    return NotableSection(
        "self-granted-use",
        "Principals that gave themselves use of a key",
        "A key policy change or a grant by which its author became able to use the key (a key administrator "
        "making itself a key user): check that it was meant.",
        _newest(events.filter(notable_events(SELF_GRANTED_USE))),
        {"notable": SELF_GRANTED_USE},
    )


def refusals_after_policy_change(
    events: QuerySet[AuditEvent], policy_changes: QuerySet[AuditEvent] | None = None
) -> NotableSection:
    """Refusals on a key within AFTER_POLICY_CHANGE of an allowed PutKeyPolicy on it: the newest refusals (one
    index range) are matched against the policy changes of their keys (a second, short read) among
    `policy_changes` (default: `events`; the key owner's side passes every event on its own keys, since another
    account's refusal usually follows a change the owner made)."""
    refusals = list(
        events.filter(decision=_DENIED)
        .exclude(key_arn="")
        .order_by("-time", "-seq")
        .values_list("pk", "key_arn", "time")[:REFUSALS_SCANNED]
    )
    rows: list[NotableRow] = []
    if refusals:
        earliest = min(moment for _, _, moment in refusals) - AFTER_POLICY_CHANGE
        changes: dict[str, list[tuple[datetime, AuditEvent]]] = {}
        for change in (
            (events if policy_changes is None else policy_changes)
            .filter(
                operation="PutKeyPolicy",
                decision=_ALLOWED,
                key_arn__in={arn for _, arn, _ in refusals},
                time__gte=earliest,
            )
            .order_by("time", "seq")
        ):
            changes.setdefault(change.key_arn, []).append((change.time, change))
        matched: list[tuple[int, str]] = []
        for pk, arn, moment in refusals:
            before = [c for at, c in changes.get(arn, []) if at <= moment < at + AFTER_POLICY_CHANGE]
            if before:
                change = before[-1]
                matched.append(
                    (pk, f"{_ago(moment - change.time)} after {change.caller_arn} changed its policy")
                )
            if len(matched) == ROWS:
                break
        found = AuditEvent.objects.in_bulk([pk for pk, _ in matched])
        rows = [NotableRow(found[pk], note) for pk, note in matched if pk in found]
    return NotableSection(
        "after-policy-change",
        "Refusals after a key policy change",
        "A refusal on a key soon after its policy changed may mean the change took away access someone needs.",
        rows,
    )


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{minutes // 60} hours"


def service_principals() -> Q | None:
    """Events whose caller is a principal bound to an integrated service (or a session of such a role)."""
    matches = Q()
    for principals in IntegratedService.objects.values_list("principals", flat=True):
        for arn in principals or []:
            matches |= Q(caller_arn=arn)
            if ":role/" in arn:
                account = arn.split(":")[4]
                name = arn.rsplit("/", 1)[-1]
                matches |= Q(caller_arn__startswith=f"arn:aws:sts::{account}:assumed-role/{name}/")
    return matches or None


def grants_by_integrated_services(events: QuerySet[AuditEvent]) -> NotableSection:
    principals = service_principals()
    rows = (
        _newest(events.filter(principals, operation="CreateGrant", decision=_ALLOWED))
        if principals is not None
        else []
    )
    return NotableSection(
        "service-grants",
        "Grants created by integrated services",
        "Grants that principals acting for an integrated service created: check that each is for a resource "
        "you expect.",
        rows,
    )


def lockout_bypasses(events: QuerySet[AuditEvent]) -> NotableSection:
    bypassed = Q()
    for name in BYPASS_PARAMETERS:
        bypassed |= Q(**{f"request_parameters__{name}": True})
    return NotableSection(
        "lockout-bypass",
        "Key policies set with the lockout check bypassed",
        "The safety check that stops a policy from locking its author out was skipped: make sure the key can "
        "still be managed.",
        _merged(
            events.filter(bypassed, operation=operation, decision=_ALLOWED) for operation in _SETS_POLICY
        ),
    )


def _merged(sources: Iterable[QuerySet[AuditEvent]]) -> list[NotableRow]:
    """The newest rows of several reads, each walking its own (operation, time, seq) index range: one IN over
    operations cannot use that order, and would scan the whole time range when nothing matches."""
    rows = [row for source in sources for row in _newest(source)]
    return sorted(rows, key=lambda row: (row.event.time, row.event.seq), reverse=True)[:ROWS]


def notable_sections(
    events: QuerySet[AuditEvent],
    policy_changes: QuerySet[AuditEvent] | None = None,
    *,
    destroyed: DestroyedOf | None = None,
) -> list[NotableSection]:
    """Every section, over events already confined to what the caller's account reads through one scope and to the
    time range (`policy_changes`: see `refusals_after_policy_change`; `destroyed`: see `pending_deletion_uses`)."""
    return [
        pending_deletion_uses(events, destroyed),
        self_granted_uses(events),
        refusals_after_policy_change(events, policy_changes),
        grants_by_integrated_services(events),
        lockout_bypasses(events),
    ]
