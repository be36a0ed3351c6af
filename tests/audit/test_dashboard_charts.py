"""The dashboard's charts: the aggregates are right, each chart is one GROUP BY, and the page shows the same
numbers as tables (for readers without JavaScript) and as data for the script."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from kmsconsole.audit.charts import bucket_unit, trail_charts
from kmsconsole.audit.models import AuditEvent
from tests.audit.dashboard_support import (
    ACCOUNT,
    ALICE,
    ALLOW_STATEMENT,
    BOB,
    KEY_1,
    KEY_2,
    append,
    event_values,
)
from tests.conftest import Persona

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def seeded() -> None:
    def at(minutes: int, **fields: Any) -> dict[str, Any]:
        return event_values(time=T0 + timedelta(minutes=minutes), **fields)

    denied = {
        "decision": "denied",
        "reason": "denied: no",
        "decided_by": "",
        "error_code": "AccessDeniedException",
    }
    append(
        [
            at(10, caller_arn=ALICE, key_arn=KEY_1),
            at(11, caller_arn=ALICE, key_arn=KEY_1),
            at(12, caller_arn=BOB, key_arn=KEY_1),
            at(20, caller_arn=BOB, key_arn=KEY_1, **denied),
            at(
                125, caller_arn=ALICE, key_arn=KEY_2, decision="failed", error_code="KMSInvalidStateException"
            ),
            at(
                126, caller_arn=ALICE, key_arn=KEY_2, decision="failed", error_code="KMSInvalidStateException"
            ),
            at(359, caller_arn=ALICE, key_arn="", operation="ListKeys"),
            at(24 * 60, caller_arn=BOB, key_arn=KEY_2),  # the next day: outside the range below
        ]
    )


def charts_for(**filters: Any) -> Any:
    events = AuditEvent.objects.filter(time__gte=T0, time__lt=T0 + timedelta(hours=6), **filters)
    return trail_charts(events, since=T0, until=T0 + timedelta(hours=6), account_id=ACCOUNT)


def test_requests_over_time_by_decision(seeded: None) -> None:
    charts = charts_for()
    line = charts.timeline
    assert line.unit == "hour"
    assert line.labels == [f"2026-03-02 {h:02d}:00" for h in range(9, 16)]
    assert line.counts == {
        "allowed": [3, 0, 0, 0, 0, 1, 0],
        "denied": [1, 0, 0, 0, 0, 0, 0],
        "failed": [0, 0, 2, 0, 0, 0, 0],
    }
    assert charts.total == 7
    assert line.rows[0] == ("2026-03-02 09:00", [3, 1, 0], 4)


def test_top_keys_principals_and_reasons(seeded: None) -> None:
    charts = charts_for()
    assert [(bar.detail, bar.count) for bar in charts.keys] == [(KEY_1, 4), (KEY_2, 2)]  # no key: not a bar
    assert [bar.label for bar in charts.keys] == [KEY_1.rsplit("/", 1)[1], KEY_2.rsplit("/", 1)[1]]
    assert [(bar.detail, bar.count) for bar in charts.principals] == [(ALICE, 5), (BOB, 2)]
    assert charts.keys[0].filters == {"key": KEY_1}
    assert [(bar.label, bar.count, bar.filters) for bar in charts.reasons] == [
        (
            "Failed: KMSInvalidStateException",
            2,
            {"decision": "failed", "error_code": "KMSInvalidStateException"},
        ),
        (
            "Refused: nothing allowed it",
            1,
            {"decision": "denied", "decided_by": "", "error_code": "AccessDeniedException"},
        ),
    ]


def test_charts_follow_the_filters(seeded: None) -> None:
    charts = charts_for(caller_arn=BOB)
    assert charts.total == 2
    assert [(bar.detail, bar.count) for bar in charts.principals] == [(BOB, 2)]
    assert charts.timeline.counts["denied"][0] == 1 and charts.timeline.counts["allowed"][0] == 1


def test_each_chart_is_one_query(seeded: None, django_assert_num_queries: Any) -> None:
    events = AuditEvent.objects.filter(time__gte=T0)
    with django_assert_num_queries(4):  # timeline, keys, principals, reasons
        trail_charts(events, since=T0, until=T0 + timedelta(days=2), account_id=ACCOUNT)
    with django_assert_num_queries(5):  # "all time" first asks where the trail begins
        charts = trail_charts(events, since=None, until=T0 + timedelta(days=2), account_id=ACCOUNT)
    assert charts.timeline.unit == "hour" and charts.total == 8


@pytest.mark.parametrize(
    ("span", "unit"),
    [
        (timedelta(hours=1), "minute"),
        (timedelta(hours=3), "minute"),
        (timedelta(hours=24), "hour"),
        (timedelta(days=7), "day"),
        (timedelta(days=90), "day"),
        (timedelta(days=400), "week"),
        (timedelta(days=3000), "month"),
    ],
)
def test_bucket_sizes(span: timedelta, unit: str) -> None:
    assert bucket_unit(T0, T0 + span) == unit


def test_months_roll_over_the_year(seeded: None) -> None:
    since = datetime(2019, 11, 15, tzinfo=UTC)
    charts = trail_charts(AuditEvent.objects.all(), since=since, until=T0, account_id=ACCOUNT)
    labels = charts.timeline.labels
    assert charts.timeline.unit == "month" and labels[:3] == ["2019-11", "2019-12", "2020-01"]
    assert labels[-1] == "2026-03" and charts.timeline.counts["allowed"][-1] == 5


def test_the_page_shows_the_numbers_as_tables_and_data(
    console: Callable[..., Client], admin: Persona, seeded: None
) -> None:
    params = {"since": "2026-03-02T09:00", "until": "2026-03-02T15:00"}
    body = console(admin).get("/console/audit/", params).content.decode()
    marker = '<script id="audit-chart-data" type="application/json">'
    start = body.index(marker) + len(marker)
    data = json.loads(body[start : body.index("</script>", start)])
    assert data["timeline"]["series"]["failed"] == [0, 0, 2, 0, 0, 0, 0]
    assert data["principals"] == {"labels": ["user/alice", "user/bob"], "counts": [5, 2]}
    # Without JavaScript: the same numbers in tables, and each bar links to the events it counts.
    assert '<tr><th scope="row">2026-03-02 11:00</th><td>0</td><td>0</td><td>2</td><td>2</td></tr>' in body
    assert "principal=arn%3Aaws%3Aiam%3A%3A111122223333%3Auser%2Falice" in body
    assert "Refused: nothing allowed it" in body
    assert f"Refused: {ALLOW_STATEMENT}" not in body  # allowed events are no refusal reason


@pytest.mark.parametrize(
    ("since", "until", "first_label"),
    [
        (None, "9999-12-31", "week of 2026-03-02"),  # from the first event to now
        ("0001-01-01T00:00", "9999-12-30T00:00", None),  # the last fifty years
    ],
)
def test_dates_at_the_ends_of_the_calendar_draw_a_bounded_line(
    console: Callable[..., Client],
    admin: Persona,
    seeded: None,
    since: str | None,
    until: str,
    first_label: str | None,
) -> None:
    """A range to year 9999 had no next month at its end (a 503); one from year 1 would be 24,000 months."""
    params = {"until": until, **({"since": since} if since else {})}
    response = console(admin).get("/console/audit/", params)
    assert response.status_code == 200
    body = response.content.decode()
    marker = '<script id="audit-chart-data" type="application/json">'
    start = body.index(marker) + len(marker)
    labels = json.loads(body[start : body.index("</script>", start)])["timeline"]["labels"]
    assert 1 <= len(labels) <= 50 * 12 + 2
    assert first_label is None or labels[0] == first_label


@pytest.mark.parametrize(
    ("since", "until"),
    [("0001-01-01T00:00", "0001-01-02T00:00"), ("9999-12-01T00:00", "9999-12-31T23:59")],
)
def test_a_range_with_no_events_at_the_ends_of_the_calendar(since: str, until: str) -> None:
    bounds = [datetime.fromisoformat(value).replace(tzinfo=UTC) for value in (since, until)]
    charts = trail_charts(AuditEvent.objects.none(), since=bounds[0], until=bounds[1], account_id=ACCOUNT)
    assert charts.total == 0 and len(charts.timeline.labels) >= 1
