"""The audit events' request id has one index, and the trail's request id filter reads it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.trail import TrailQuery, narrowed, page, resolve
from tests.audit.dashboard_support import ACCOUNT, append, event_values
from tests.conftest import postgresql_only

pytestmark = pytest.mark.django_db


def _request_id_indexes() -> dict[str, str]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, AuditEvent._meta.db_table)
    return {
        name: str(details.get("type"))
        for name, details in constraints.items()
        if details["index"] and details["columns"] == ["request_id"]
    }


def test_the_request_id_has_one_index() -> None:
    """`db_index=True` made two on PostgreSQL (a plain btree and a `varchar_pattern_ops` one), and every event
    paid an insert into each; only the pattern one was ever read (migration audit 0011)."""
    assert list(_request_id_indexes()) == ["audit_request_id_idx"]


@postgresql_only
def test_the_request_id_filter_is_a_range_scan_of_that_index() -> None:
    """The trail's request id filter is a prefix (`request_id__startswith`, a LIKE 'prefix%'): only the pattern
    operator class serves it under a non-C collation, so the index kept must be that one."""
    now = timezone.now()
    append(event_values(time=now - timedelta(seconds=index)) for index in range(3000))
    wanted = AuditEvent.objects.order_by("seq")[1234]
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {AuditEvent._meta.db_table}")
    query = TrailQuery(since=now - timedelta(days=1), request_id=wanted.request_id[:13])
    events = narrowed(AuditEvent.objects.all(), resolve(query, account_id=ACCOUNT))
    with CaptureQueriesContext(connection) as captured:
        found = page(events)
    assert [event.event_id for event in found.events] == [wanted.event_id]
    (sql,) = [q["sql"] for q in captured.captured_queries if "request_id" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "audit_request_id_idx" in plan and "Seq Scan" not in plan, plan
