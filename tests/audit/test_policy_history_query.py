"""The previous policy of a key in the trail (kmsconsole.audit.policy_history): which events count, that only the
events the reader sees are looked at, and a bound on its cost that does not grow with the key's other events
(PostgreSQL's plan, executed)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.policy_history import DEFAULT_KEY_POLICY, REWRITTEN_KEY_POLICY, policy_history
from kmsconsole.audit.scope import Scope, scope_events
from policies.deletion import UNBIND_EVENT
from tests.audit.dashboard_support import ACCOUNT, KEY_1, OTHER_ACCOUNT, append, event_values, executed_plan
from tests.conftest import postgresql_only

pytestmark = pytest.mark.django_db

PARTNER = f"arn:aws:iam::{OTHER_ACCOUNT}:user/partner"


def _put(document: str, **fields: Any) -> dict[str, Any]:
    return {"operation": "PutKeyPolicy", "request_parameters": {"KeyId": KEY_1, "Policy": document}, **fields}


def _unbind(document: str | None) -> dict[str, Any]:
    elements: dict[str, Any] = {"KeyId": KEY_1, "PolicyVersion": 3}
    if document is not None:
        elements[REWRITTEN_KEY_POLICY] = document
    return {
        "operation": UNBIND_EVENT,
        "interface": "worker",
        "caller_arn": f"kmsconsole:operator/principal-deletion@{ACCOUNT}",
        "request_parameters": {"PrincipalId": "AIDAEXAMPLE"},
        "response_elements": elements,
    }


def _seed(encrypts: int) -> list[AuditEvent]:
    """On KEY_1, oldest first: CreateKey with the default policy, PutKeyPolicy "own", the service's rewrite
    "rewritten", a rewrite that only retired grants, another account's PutKeyPolicy "partner's" (seen on the key
    owner's side only), a refused PutKeyPolicy "refused", `encrypts` Encrypts, and PutKeyPolicy "last"."""
    start = timezone.now() - timedelta(hours=1)
    rows: list[dict[str, Any]] = [
        {
            "operation": "CreateKey",
            "request_parameters": {"Description": "watched"},
            "response_elements": {"KeyId": KEY_1, DEFAULT_KEY_POLICY: "default"},
        },
        _put("own"),
        _unbind("rewritten"),
        _unbind(None),
        _put("partner's", caller_arn=PARTNER, caller_account=OTHER_ACCOUNT),
        _put("refused", decision="denied", error_code="AccessDeniedException"),
        *({"operation": "Encrypt"} for _ in range(encrypts)),
        _put("last"),
    ]
    append(
        event_values(key_arn=KEY_1, time=start + timedelta(microseconds=index), **fields)
        for index, fields in enumerate(rows)
    )
    return list(AuditEvent.objects.exclude(operation="Encrypt").order_by("seq"))


def _previous_document(event: AuditEvent, scope: Scope) -> str | None:
    history = policy_history(event, scope_events(ACCOUNT, scope))
    assert history is not None
    return history.previous.document if history.previous is not None else None


def test_the_previous_policy_is_the_newest_allowed_one_the_reader_sees() -> None:
    created, own, rewritten, retired_only, partners, refused, last = _seed(5)
    # The account's own side: not another account's PutKeyPolicy, not a refusal, not a rewrite that set no policy.
    assert _previous_document(last, Scope.CALLER) == "rewritten"
    assert _previous_document(rewritten, Scope.CALLER) == "own"
    assert _previous_document(own, Scope.CALLER) == "default"
    assert _previous_document(created, Scope.CALLER) is None
    # The key owner's side sees only the other account's request, and nothing before it.
    assert _previous_document(partners, Scope.KEY_OWNER) is None
    # The service's rewrite shows its own document; one that set no policy is no policy event.
    rewrite = policy_history(rewritten, scope_events(ACCOUNT, Scope.CALLER))
    assert rewrite is not None and rewrite.current.document == "rewritten" and not rewrite.current.default
    assert policy_history(retired_only, scope_events(ACCOUNT, Scope.CALLER)) is None
    assert refused.decision == "denied"


@postgresql_only
def test_the_lookup_is_one_index_probe_however_many_encrypts_the_key_has() -> None:
    """8,000 Encrypts between the key's last two policies: the query is a range scan of audit_key_policy_idx that
    reads a handful of entries (the policy events newer than the one found are skipped by the index bound, the
    refused and invisible ones by the predicate or a filter), with no sort and no scan of the key's events."""
    last = _seed(8_000)[-1]
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {AuditEvent._meta.db_table}")
    with CaptureQueriesContext(connection) as captured:
        assert _previous_document(last, Scope.CALLER) == "rewritten"
    (sql,) = [query["sql"] for query in captured.captured_queries]
    plan, nodes = executed_plan(sql)
    assert plan["Node Type"] == "Limit", plan
    (scan,) = [node for node in nodes if "Scan" in node["Node Type"]]
    assert scan["Node Type"] in ("Index Scan", "Index Only Scan"), plan
    assert scan["Index Name"] == "audit_key_policy_idx", plan
    assert scan["Actual Rows"] == 1 and scan.get("Rows Removed by Filter", 0) <= 3, plan
    assert not [node for node in nodes if node["Node Type"] in ("Sort", "Seq Scan", "Bitmap Heap Scan")]
