"""The dashboard's charts over the filtered trail: requests over time by decision, the busiest keys and
principals, and refusals and failures by reason. Each is one GROUP BY in the database; Python only fills the
empty time buckets so the time axis is continuous."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Min, QuerySet
from django.db.models.functions import Trunc
from django.utils import timezone

from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.scope import Scope
from kmsconsole.audit.shown import found_by_key, shown_decided_by

TOP = 10
DECISIONS = tuple(AuditEvent.Decision.values)  # allowed, denied, failed
# The bucket for a span of time: the first unit whose limit the span is within (about 30 to 180 buckets).
UNITS = (
    ("minute", timedelta(hours=3)),
    ("hour", timedelta(days=4)),
    ("day", timedelta(days=120)),
    ("week", timedelta(days=730)),
    ("month", None),
)
# Fifty years of months: longer than any trail kept, short enough to draw.
MAX_TIMELINE_SPAN = timedelta(days=50 * 366)
_LABELS = {
    "minute": "%Y-%m-%d %H:%M",
    "hour": "%Y-%m-%d %H:00",
    "day": "%Y-%m-%d",
    "week": "week of %Y-%m-%d",
    "month": "%Y-%m",
}


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    filters: dict[str, str]  # the dashboard filters that show these events
    detail: str = ""


@dataclass(frozen=True)
class Timeline:
    unit: str
    buckets: list[datetime]
    counts: dict[str, list[int]]  # decision -> one count per bucket

    @property
    def rows(self) -> list[tuple[str, list[int], int]]:
        """(label, counts by decision, total) per bucket, for the table beside the chart."""
        by_decision = [self.counts[decision] for decision in DECISIONS]
        return [
            (label, [column[i] for column in by_decision], sum(column[i] for column in by_decision))
            for i, label in enumerate(self.labels)
        ]

    @property
    def labels(self) -> list[str]:
        return [moment.strftime(_LABELS[self.unit]) for moment in self.buckets]


@dataclass(frozen=True)
class Charts:
    total: int
    timeline: Timeline
    keys: list[Bar]
    principals: list[Bar]
    reasons: list[Bar]

    def data(self) -> dict[str, Any]:
        """What static/js/audit-charts.js draws (handed over with json_script, never as code)."""
        return {
            "timeline": {
                "labels": self.timeline.labels,
                "series": {decision: self.timeline.counts[decision] for decision in DECISIONS},
            },
            "keys": _bars(self.keys),
            "principals": _bars(self.principals),
            "reasons": _bars(self.reasons),
        }


def _bars(bars: list[Bar]) -> dict[str, list[Any]]:
    return {"labels": [bar.label for bar in bars], "counts": [bar.count for bar in bars]}


def bucket_unit(since: datetime, until: datetime) -> str:
    span = until - since
    for unit, limit in UNITS:
        if limit is None or span <= limit:
            return unit
    return "month"  # pragma: no cover - the last unit has no limit


def _truncate(moment: datetime, unit: str) -> datetime:
    moment = moment.replace(second=0, microsecond=0)
    if unit == "minute":
        return moment
    moment = moment.replace(minute=0)
    if unit == "hour":
        return moment
    moment = moment.replace(hour=0)
    if unit == "week":
        return moment - timedelta(days=moment.weekday())
    if unit == "month":
        return moment.replace(day=1)
    return moment


def _next(moment: datetime, unit: str) -> datetime:
    if unit == "month":
        year, month = divmod(moment.month, 12)
        return moment.replace(year=moment.year + year, month=month + 1)
    steps = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
    return moment + steps.get(unit, timedelta(weeks=1))


def timeline(events: QuerySet[AuditEvent], *, since: datetime | None, until: datetime) -> Timeline:
    """Requests per time bucket, split by decision (one GROUP BY over bucket and decision).

    The line ends now at the latest (no event is written in the future) and spans at most MAX_TIMELINE_SPAN: a
    range asked to year 9999 has no next month at its end, and one from year 1 would be 24,000 empty months."""
    if since is None:
        since = events.aggregate(first=Min("time"))["first"] or until
    until = max(since, min(until, timezone.now()))
    with contextlib.suppress(OverflowError):  # an `until` within fifty years of year 1
        since = max(since, until - MAX_TIMELINE_SPAN)
    unit = bucket_unit(since, until)
    grouped = (
        events.order_by()
        .annotate(bucket=Trunc("time", unit))
        .values("bucket", "decision")
        .annotate(n=Count("pk"))
    )
    found: dict[tuple[datetime, str], int] = {}
    for row in grouped:
        found[(_truncate(row["bucket"], unit), row["decision"])] = row["n"]
    buckets = []
    moment, last = _truncate(since, unit), _truncate(until, unit)
    while moment <= last:
        buckets.append(moment)
        if moment == last:
            break
        moment = _next(moment, unit)
    counts = {decision: [found.get((bucket, decision), 0) for bucket in buckets] for decision in DECISIONS}
    return Timeline(unit, buckets, counts)


def top(events: QuerySet[AuditEvent], column: str) -> list[tuple[str, int]]:
    """The TOP most frequent non-empty values of a column (one GROUP BY)."""
    rows = (
        events.exclude(**{column: ""})
        .order_by()
        .values_list(column)
        .annotate(n=Count("pk"))
        .order_by("-n", column)[:TOP]
    )
    return [(value, n) for value, n in rows]


def refusal_reasons(
    events: QuerySet[AuditEvent], *, account_id: str, scope: Scope = Scope.CALLER
) -> list[Bar]:
    """Denied and failed requests by error code and by the statement or grant that decided, as the reader of
    `account_id` is shown it through `scope` (kmsconsole.audit.shown: another account's statements, grants and
    identity policies by what they are, not by name) (one GROUP BY)."""
    rows = (
        events.exclude(decision=AuditEvent.Decision.ALLOWED)
        .order_by()
        .annotate(shown_decided_by=shown_decided_by(account_id, scope))
        .values_list("decision", "error_code", "shown_decided_by")
        .annotate(n=Count("pk"))
        .order_by("-n", "error_code", "shown_decided_by")[:TOP]
    )
    bars = []
    for decision, code, decided_by, n in rows:
        filters = {"decision": decision}
        if decision == AuditEvent.Decision.DENIED:
            label = f"Refused: {decided_by}" if decided_by else "Refused: nothing allowed it"
            filters["decided_by"] = decided_by
            if code:
                filters["error_code"] = code  # each bar's link lists its own events, and no other bar's
        else:
            label = f"Failed: {code or 'unknown error'}"
            filters["error_code"] = code
        bars.append(Bar(label, n, filters, detail=code))
    return _told_apart(bars)


def _told_apart(bars: list[Bar]) -> list[Bar]:
    """The bars, each label unique: refusals that read alike (what decided them is shown by what it is, and two
    error codes share it) say their error code."""
    seen = Counter(bar.label for bar in bars)
    return [
        replace(bar, label=f"{bar.label} ({bar.detail or 'no error code'})") if seen[bar.label] > 1 else bar
        for bar in bars
    ]


def trail_charts(
    events: QuerySet[AuditEvent],
    *,
    since: datetime | None,
    until: datetime,
    account_id: str,
    scope: Scope = Scope.CALLER,
    key_labels: Callable[[list[str]], dict[str, str]] = lambda arns: {},
) -> Charts:
    """Every chart over the filtered events, as a reader of `account_id` is shown them through `scope`.
    `key_labels` gives friendlier names (aliases) for key ARNs."""
    line = timeline(events, since=since, until=until)
    # On the caller's side, an event shown without its key (kmsconsole.audit.shown) counts for no key.
    busiest = top(found_by_key(events, account_id, scope), "key_arn")
    names = key_labels([arn for arn, _ in busiest])
    keys = [Bar(names.get(arn) or arn.rsplit("/", 1)[-1], n, {"key": arn}, arn) for arn, n in busiest]
    principals = [
        Bar(arn.rsplit(":", 1)[-1], n, {"principal": arn}, arn) for arn, n in top(events, "caller_arn")
    ]
    total = sum(sum(column) for column in line.counts.values())
    return Charts(total, line, keys, principals, refusal_reasons(events, account_id=account_id, scope=scope))
