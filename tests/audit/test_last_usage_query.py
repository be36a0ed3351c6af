"""GetKeyLastUsage's read of the trail (kmsconsole.audit.last_usage): what counts as a use, and a bound on its cost
that does not grow with the key's other events (PostgreSQL's plan, executed)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kmsconsole.audit.last_usage import last_use, re_encryptions_from, uses_filed_under
from kmsconsole.audit.models import AuditEvent
from tests.audit.dashboard_support import KEY_1, KEY_2, PARTNER_KEY, append, event_values, executed_plan
from tests.conftest import postgresql_only

pytestmark = pytest.mark.django_db

# Another key of the account, used all the time.
BUSY_KEY = KEY_1.replace("11111111-1111-4111-8111-111111111111", "44444444-4444-4444-8444-444444444444")
# Events after KEY_1's last use that are not its uses: reads, refusals, failures, a dry run, another key's uses.
NOT_USES: tuple[dict[str, Any], ...] = (
    {"operation": "Encrypt", "key_arn": BUSY_KEY},
    {"operation": "Decrypt", "key_arn": BUSY_KEY},
    {"operation": "DescribeKey"},
    {"operation": "GetKeyLastUsage"},
    {"operation": "Decrypt", "decision": "denied", "error_code": "AccessDeniedException"},
    {"operation": "Encrypt", "decision": "failed", "error_code": "DryRunOperationException"},
    {"operation": "Verify", "decision": "failed", "error_code": "KMSInvalidSignatureException"},
    {"operation": "GetPublicKey"},
    {
        "operation": "ReEncrypt",
        "decision": "denied",
        "error_code": "AccessDeniedException",
        "key_arn": KEY_2,
        "response_elements": None,
    },
)


def _seed(others: int) -> tuple[AuditEvent, AuditEvent]:
    """An Encrypt on KEY_1, then an allowed ReEncrypt from KEY_1 to KEY_2, then `others` events that are no use."""
    start = timezone.now() - timedelta(hours=2)
    append(
        [
            event_values(time=start),
            event_values(
                time=start + timedelta(seconds=1),
                operation="ReEncrypt",
                key_arn=KEY_2,
                response_elements={"SourceKeyId": KEY_1, "KeyId": KEY_2},
            ),
        ]
    )
    append(
        event_values(time=start + timedelta(seconds=2, microseconds=index), **NOT_USES[index % len(NOT_USES)])
        for index in range(others)
    )
    encrypt, re_encrypt = AuditEvent.objects.order_by("seq")[:2]
    return encrypt, re_encrypt


def test_a_use_is_an_allowed_cryptographic_event_of_the_key_or_an_allowed_re_encrypt_from_it() -> None:
    _, re_encrypt = _seed(len(NOT_USES) * 2)
    found = last_use(KEY_1)
    assert found is not None
    assert (found.operation, found.event_id, found.request_id, found.time) == (
        "ReEncrypt",
        re_encrypt.event_id,
        re_encrypt.request_id,
        re_encrypt.time,
    )
    found_2 = last_use(KEY_2)
    assert found_2 is not None and found_2.event_id == re_encrypt.event_id
    assert last_use(PARTNER_KEY) is None
    busy = last_use(BUSY_KEY)
    assert busy is not None and busy.operation in ("Encrypt", "Decrypt")
    # A later use filed under the key wins over the ReEncrypt from it.
    append([event_values(time=timezone.now(), operation="Sign")])
    later = last_use(KEY_1)
    assert later is not None and later.operation == "Sign"


@postgresql_only
def test_the_read_is_two_index_probes_however_many_other_events_the_key_has() -> None:
    """12,000 events after the key's last use that are no use of it (its reads, refusals and failures, another key's
    uses): each of the two queries is one backward range scan of its partial index that reads one entry and
    stops, with nothing filtered out and nothing sorted, so its cost does not depend on how many such events
    there are."""
    _, re_encrypt = _seed(12_000)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {AuditEvent._meta.db_table}")
    with CaptureQueriesContext(connection) as captured:
        found = last_use(KEY_1)
    assert found is not None and found.event_id == re_encrypt.event_id
    queries = [query["sql"] for query in captured.captured_queries]
    assert len(queries) == 2
    used = set()
    for sql in queries:
        plan, nodes = executed_plan(sql)
        assert plan["Node Type"] == "Limit", plan
        (scan,) = [node for node in nodes if "Scan" in node["Node Type"]]
        assert scan["Node Type"] in ("Index Scan", "Index Only Scan"), plan
        assert scan["Index Name"] in ("audit_key_use_idx", "audit_reencrypt_source_idx"), plan
        assert scan["Actual Rows"] == 1 and scan.get("Rows Removed by Filter", 0) == 0, plan
        assert not [node for node in nodes if node["Node Type"] in ("Sort", "Seq Scan", "Bitmap Heap Scan")]
        used.add(scan["Index Name"])
    assert used == {"audit_key_use_idx", "audit_reencrypt_source_idx"}


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's plan")
def test_on_sqlite_the_read_walks_an_index_within_the_key_with_no_scan_or_sort() -> None:
    """On SQLite the uses filed under the key walk audit_key_time_idx within the key (no partial index serves an IN
    list of bound parameters) and the ReEncrypts from it are one probe of audit_reencrypt_source_idx: in the order
    asked, with no full scan of the trail and no temporary b-tree to sort it."""
    _, re_encrypt = _seed(len(NOT_USES) * 20)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    with CaptureQueriesContext(connection) as captured:
        found = last_use(KEY_1)
    assert found is not None and found.event_id == re_encrypt.event_id
    assert len(captured.captured_queries) == 2
    for queryset, index in (
        (uses_filed_under(KEY_1), "audit_key_time_idx"),
        (re_encryptions_from(KEY_1), "audit_reencrypt_source_idx"),
    ):
        sql, params = queryset.values("seq")[:1].query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = [row[-1] for row in cursor.fetchall()]
        assert not [step for step in plan if "TEMP B-TREE" in step], plan
        assert not [step for step in plan if step.startswith("SCAN") and "INDEX" not in step], plan
        assert [step for step in plan if step.startswith("SEARCH") and f"INDEX {index} " in step], plan
