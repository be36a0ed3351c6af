"""The overview (GET /): what a security admin checks first. Keys by state, keys about to be destroyed, symmetric
keys that never rotate, recent refusals (of the account's requests, and of other accounts' on its keys), uses of
keys pending deletion, and whether the workers that delete,
rotate and propagate are alive.

Three reads, each one operation through `attempt()` (so each is authorized and audited): ListKeys for the key
panels, kmsconsole:ListAuditEvents for the audit panels and kmsconsole:ListJobRuns for worker health (each run's
counts and errors limited to the caller's account's share: the sweeps run over every account). A principal refused
one of them sees that panel say so; the others still show.

ListKeys gives every key's id and nothing more; a key's state, spec, dates and deletion date are DescribeKey's
answer, its aliases ListAliases', whether it rotates GetKeyRotationStatus'. So the key panels count, list and
filter only keys on which a DescribeKey request by the caller would be allowed (`KeyQuestions.describable`, with
the caller's grants), name a key by its alias only where ListAliases would be allowed, and list a key without
rotation only where GetKeyRotationStatus would be too: each decided as that request would be and recorded only on
the overview's ListKeys event. Every key looked at is decided whatever it turns out to be (a panel never narrows by
a hidden value first); GetKeyRotationStatus is asked only about described keys that can rotate and are not pending
deletion, chosen by what their DescribeKey shows, never by whether they rotate. They are the OVERVIEW_KEYS most
recently created keys (with the count of every key), read by the account's listing index, so the page costs the
same number of queries, and a bounded number of decisions, at ten keys or a hundred thousand.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_safe

from grants.services.propagation import PROPAGATION_SWEEP_JOB
from keys.models import Key, KeyState
from keys.services.access import KeyQuestions
from keys.services.deletion import DELETION_SWEEP_JOB
from keys.services.rotation import ROTATION_SWEEP_JOB
from kmsconsole.api import reads
from kmsconsole.audit.destroyed import Destroyed, destroyed_keys
from kmsconsole.audit.marks import PENDING_DELETION_USE, notable_events
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.retention import ARCHIVE_JOB
from kmsconsole.audit.scope import Scope
from kmsconsole.audit.shown import shown_key_arn
from kmsconsole.audit.verification import VERIFY_JOB
from kmsconsole.console.dispatch import attempt, console_caller, console_view
from kmsconsole.core.context import ANONYMOUS_ARN
from kmsconsole.jobs.models import ShownRun, WorkerHeartbeat
from kmsconsole.operations import OperationContext

# Rows per list panel: the overview points at problems; the key list and the audit dashboard hold the rest.
PANEL_ROWS = 10
# States shown even at zero: the ones a person expects to see counted.
ALWAYS_COUNTED = (KeyState.ENABLED, KeyState.DISABLED, KeyState.PENDING_DELETION)
# The periodic jobs that leave a JobRun (DESIGN.md, Workers), in the words the page uses.
PERIODIC_JOBS = (
    (DELETION_SWEEP_JOB, "Scheduled key deletion"),
    (ROTATION_SWEEP_JOB, "Automatic key rotation"),
    (PROPAGATION_SWEEP_JOB, "Grant propagation"),
    (VERIFY_JOB, "Audit chain verification"),
    (ARCHIVE_JOB, "Audit retention (archive and remove)"),
)
# How many of the most recently created keys the key panels look at (each decided on: DescribeKey, and
# GetKeyRotationStatus for those described that can rotate and are not pending deletion): a bound on what the page
# costs, whatever the number of keys.
OVERVIEW_KEYS = 500
_AUDIT_COLUMNS = (
    "seq",
    "event_id",
    "time",
    "caller_arn",
    "operation",
    "key_arn",
    "error_code",
    "decision",
    "notable",
)

Value = TypeVar("Value")


@dataclass(frozen=True)
class Panel(Generic[Value]):
    """One panel's data, or the sentence that replaces it (a refusal, a service error)."""

    value: Value | None = None
    error: str = ""


def _panel(
    request: HttpRequest,
    operation: str,
    work: Callable[[OperationContext], Value],
    *,
    refused: str,
    params: dict[str, Any],
) -> Panel[Value]:
    outcome = attempt(request, operation, work, params=params)
    if outcome.ok:
        return Panel(value=outcome.value)
    return Panel(error=refused if outcome.code == "AccessDeniedException" else outcome.error)


def _key_url(key_id: object) -> str:
    return str(reverse("console:key", args=[key_id]))


def time_left(when: datetime, now: datetime) -> str:
    """'6 days 23 hours', '4 minutes 10 seconds': the two largest units, for a deletion countdown."""
    seconds = int((when - now).total_seconds())
    if seconds <= 0:
        return "due now"
    units = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
    parts: list[str] = []
    for name, size in units:
        amount, seconds = divmod(seconds, size)
        if amount or parts:
            parts.append(f"{amount} {name}{'' if amount == 1 else 's'}")
        if len(parts) == 2:
            break
    return " ".join(part for part in parts if not part.startswith("0 "))


@dataclass(frozen=True)
class KeyRow:
    key: Key
    url: str
    alias: str = ""  # the first alias, where the caller may list aliases
    time_left: str = ""


@dataclass(frozen=True)
class StateCount:
    state: str
    label: str
    count: int
    url: str


@dataclass(frozen=True)
class KeySummary:
    total: int
    looked_at: (
        int  # the most recently created keys the panels looked at (all of them when total <= OVERVIEW_KEYS)
    )
    states: list[StateCount]  # of the described keys among those
    undescribed: int  # keys looked at that the caller may not describe
    pending: list[KeyRow]
    pending_total: int
    unrotated: list[KeyRow]
    unrotated_total: int

    @property
    def partial(self) -> bool:
        return self.looked_at < self.total


def _state_url(state: str) -> str:
    return f"{reverse('console:keys')}?{urlencode({'state': state})}"


def _may_rotate(key: Key) -> bool:
    """A key that can rotate (`Key.rotatable`: a symmetric key of our own material), leaving out keys pending
    deletion (listed above; they will not be used again): the keys the rotation panel asks GetKeyRotationStatus
    about. Only DescribeKey's fields, which the caller sees of every key it is asked about: never whether the key
    rotates, so the questions asked do not depend on a value the caller may not read."""
    return key.rotatable and key.state != KeyState.PENDING_DELETION


def key_summary(ctx: OperationContext, now: datetime) -> KeySummary:
    """ListKeys (IAM-only, every key of the caller's account): how many keys there are; and, of the OVERVIEW_KEYS
    most recently created, counts by state, the keys pending deletion (soonest first) and the symmetric keys without
    automatic rotation (oldest first), each only where the caller may describe the key (and, for rotation, read
    its rotation status)."""
    keys = reads.account_keys(ctx)  # by the account's primary key: the window and the count use its index
    total = keys.count()
    window = list(keys.order_by("-created_at", "-pk")[:OVERVIEW_KEYS]) if total else []
    questions = KeyQuestions(ctx)
    describable = questions.describable(window)
    described = [key for key in window if key.pk in describable]
    with_alias = questions.allows_on_account("kms:ListAliases")
    # Decided for every described key that can rotate and is not pending deletion (what the caller sees of it),
    # rotating or not: no other key could be listed.
    rotation_readable = {
        key.pk for key in described if _may_rotate(key) and questions.allows(key, "kms:GetKeyRotationStatus")
    }

    def row(key: Key, countdown: str = "") -> KeyRow:
        aliases = sorted(alias.name for alias in key.aliases.all()) if with_alias else []
        return KeyRow(
            key=key, url=_key_url(key.key_id), alias=aliases[0] if aliases else "", time_left=countdown
        )

    counts: dict[str, int] = {}
    for key in described:
        counts[key.state] = counts.get(key.state, 0) + 1
    labels = dict(KeyState.choices)
    shown = [state for state in KeyState.values if state in ALWAYS_COUNTED or counts.get(state)]
    # A state this version does not know (a newer row) still counts.
    shown += sorted(set(counts) - set(shown))
    pending = sorted(
        (key for key in described if key.state == KeyState.PENDING_DELETION and key.deletion_date),
        key=lambda key: (key.deletion_date, key.pk),
    )
    unrotated = sorted(
        (key for key in described if key.pk in rotation_readable and not key.rotation_enabled),
        key=lambda key: (key.created_at, key.pk),
    )
    return KeySummary(
        total=total,
        looked_at=len(window),
        states=[StateCount(s, labels.get(s, s), counts.get(s, 0), _state_url(s)) for s in shown],
        undescribed=len(window) - len(described),
        pending=[
            row(key, time_left(key.deletion_date, now)) for key in pending[:PANEL_ROWS] if key.deletion_date
        ],
        pending_total=len(pending),
        unrotated=[row(key) for key in unrotated[:PANEL_ROWS]],
        unrotated_total=len(unrotated),
    )


@dataclass(frozen=True)
class AuditRow:
    event: AuditEvent
    # The event's key as the reader may see it (kmsconsole.audit.shown): "" for one its side shows without it.
    key_arn: str
    key_id: str
    key_url: str
    destroyed: Destroyed | None = (
        None  # the key, one of the account's, destroyed since (uses of keys pending deletion)
    )

    @property
    def event_url(self) -> str:
        """The event's page: its decision explained ("Why")."""
        return str(reverse("console:audit-event", args=[self.event.event_id]))


@dataclass(frozen=True)
class AuditSummary:
    denied: list[AuditRow]
    pending_deletion_uses: list[AuditRow]
    # The key owner's side (kmsconsole.audit.scope): other accounts' refused requests on the account's keys.
    refused_others: list[AuditRow]

    @property
    def pending_keys_remain(self) -> bool:
        """Whether a key the pending-deletion uses name is still there (its deletion can still be cancelled)."""
        return any(row.destroyed is None for row in self.pending_deletion_uses)


def _key_of(arn: str) -> tuple[str, str]:
    """(account, key id) of a key ARN (arn:aws:kms:<region>:<account>:key/<id>), or ("", "")."""
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[5].startswith("key/"):
        try:
            return parts[4], str(uuid.UUID(parts[5].removeprefix("key/")))
        except ValueError:
            pass
    return "", ""


def _audit_rows(events: QuerySet[AuditEvent], account_id: str, scope: Scope) -> list[AuditRow]:
    rows = []
    shown = events.only(*_AUDIT_COLUMNS).annotate(shown_key_arn=shown_key_arn(account_id, scope))
    # Newest first by (time, seq): the order of the dashboard's (decision | notable, time, seq) indexes.
    for event in shown.order_by("-time", "-seq")[:PANEL_ROWS]:
        key_arn = event.shown_key_arn
        owner, key_id = _key_of(key_arn)
        # Only keys of the caller's account have a page the caller may open.
        url = _key_url(key_id) if key_id and owner == account_id else ""
        rows.append(AuditRow(event=event, key_arn=key_arn, key_id=key_id, key_url=url))
    return rows


def _newest_of(sides: list[list[AuditRow]]) -> list[AuditRow]:
    rows = [row for side in sides for row in side]
    return sorted(rows, key=lambda row: (row.event.time, row.event.seq), reverse=True)[:PANEL_ROWS]


def audit_summary(ctx: OperationContext) -> AuditSummary:
    """kmsconsole:ListAuditEvents: the newest refusals (of the account's own requests, and of other accounts' on
    its keys) and the newest uses of keys pending deletion (the account's own, and other accounts' uses of its
    keys). Only the caller, operation, key and error code are shown: nothing either side hides
    (kmsconsole.audit.shown)."""
    sides = reads.audit_event_sides(ctx)
    own, others = sides[Scope.CALLER], sides[Scope.KEY_OWNER]
    account_id = ctx.caller.account_id
    uses = _newest_of(
        [
            _audit_rows(side.filter(notable_events(PENDING_DELETION_USE)), account_id, scope)
            for scope, side in ((Scope.CALLER, own), (Scope.KEY_OWNER, others))
        ]
    )
    # By the key as shown: a use whose key its side hides names no key, so no destroyed one either.
    gone = destroyed_keys(ctx, {row.key_arn for row in uses if row.key_arn})
    return AuditSummary(
        # Not the anonymous refusals of this account's principals' credentials (a wrong password for one of its
        # logins, a wrong secret for one of its tokens): anyone who knows a login name or a token prefix can make
        # them, so they must not push the account's own refused requests off this panel. The audit trail has them
        # (README "Refused credentials of an account's principals").
        denied=_audit_rows(
            own.filter(decision=AuditEvent.Decision.DENIED).exclude(caller_arn=ANONYMOUS_ARN),
            account_id,
            Scope.CALLER,
        ),
        pending_deletion_uses=[replace(row, destroyed=gone.get(row.key_arn)) for row in uses],
        refused_others=_audit_rows(
            others.filter(decision=AuditEvent.Decision.DENIED), account_id, Scope.KEY_OWNER
        ),
    )


@dataclass(frozen=True)
class JobStatus:
    job: str
    label: str
    run: ShownRun | None

    @property
    def result(self) -> str:
        if self.run is None:
            return "never run"
        if self.run.finished_at is None:
            return "running or stopped"
        return "failed" if self.run.error else "succeeded"


@dataclass(frozen=True)
class WorkerStatus:
    hostname: str
    seen_at: datetime
    age_seconds: int
    fresh: bool


@dataclass(frozen=True)
class WorkerHealth:
    workers: list[WorkerStatus]
    jobs: list[JobStatus]
    stale_seconds: int

    @property
    def healthy(self) -> bool:
        return any(worker.fresh for worker in self.workers)


def worker_health(ctx: OperationContext, now: datetime) -> WorkerHealth:
    """kmsconsole:ListJobRuns: the last run of each periodic job (its counts and errors the caller's account's share
    of it), and the workers' heartbeats beside them."""
    runs = reads.job_runs(ctx)
    newest = Q()
    for job, _label in PERIODIC_JOBS:
        # A scalar subquery per job, ORed into one query; each walks the started_at index from the newest row.
        newest |= Q(pk=Subquery(runs.filter(job=job).order_by("-started_at", "-id").values("pk")[:1]))
    newest_runs = list(runs.filter(newest))
    shown = reads.shown_runs(ctx, newest_runs)
    last = {run.job: shown[run.pk] for run in newest_runs}
    stale = settings.KMS_WORKER_STALE_SECONDS
    workers = []
    for beat in WorkerHeartbeat.objects.order_by("-seen_at")[:PANEL_ROWS]:
        age = max(0, int((now - beat.seen_at).total_seconds()))
        workers.append(WorkerStatus(beat.hostname, beat.seen_at, age, age <= stale))
    return WorkerHealth(
        workers=workers,
        jobs=[JobStatus(job, label, last.get(job)) for job, label in PERIODIC_JOBS],
        stale_seconds=stale,
    )


@console_view
@require_safe
def overview(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    limit = {"Limit": PANEL_ROWS}
    context = {
        "caller": console_caller(request),  # never None: console_view refused unlinked logins
        "endpoint": request.build_absolute_uri("/"),
        "region": settings.KMS_REGION,
        # Shortened days are for demos and tests; whoever looks at the console must know deletion windows and
        # rotation periods are not real days.
        "day_seconds": settings.KMS_DAY_SECONDS if settings.KMS_DAY_SECONDS != 86400 else None,
        "keys": _panel(
            request,
            "ListKeys",
            lambda ctx: key_summary(ctx, now),
            refused="You are not allowed to list keys.",
            params={"Query": {"view": "overview"}},
        ),
        "audit": _panel(
            request,
            "kmsconsole:ListAuditEvents",
            audit_summary,
            refused="You are not allowed to list audit events.",
            params={
                "Query": {
                    "decision": "denied",
                    "notable": PENDING_DELETION_USE,
                    "scope": "caller,key-owner",
                    **limit,
                }
            },
        ),
        "health": _panel(
            request,
            "kmsconsole:ListJobRuns",
            lambda ctx: worker_health(ctx, now),
            refused="You are not allowed to list job runs.",
            params={"Query": {"view": "overview"}},
        ),
        "panel_rows": PANEL_ROWS,
        "overview_keys": OVERVIEW_KEYS,
    }
    return render(request, "console/overview.html", context)
