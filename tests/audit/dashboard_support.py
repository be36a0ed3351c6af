"""Seeding the audit trail for the dashboard's tests and its scale measurement: events with chosen times and
fields, appended to the real chain (valid links, head and MAC), with their encryption-context pairs indexed."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from kmsconsole.audit.chain import GENESIS_HASH, head_mac, link_hash
from kmsconsole.audit.context_index import context_pairs
from kmsconsole.audit.derived import DERIVED_FIELDS, derived_values
from kmsconsole.audit.models import AuditChainHead, AuditContextEntry, AuditEvent

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
KEY_1 = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/11111111-1111-4111-8111-111111111111"
KEY_2 = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/22222222-2222-4222-8222-222222222222"
PARTNER_KEY = f"arn:aws:kms:us-east-1:{OTHER_ACCOUNT}:key/33333333-3333-4333-8333-333333333333"
ALLOW_STATEMENT = "statement 'Allow use of the key' in the key policy"


def event_values(**fields: Any) -> dict[str, Any]:
    """An event's columns (without seq and hashes): an allowed Encrypt by alice on KEY_1, unless told."""
    values: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "time": timezone.now(),
        "request_id": str(uuid.uuid4()),
        "interface": "kms",
        "operation": "Encrypt",
        "caller_arn": ALICE,
        "caller_account": ACCOUNT,
        "access_key_id": "AKIAEXAMPLE",
        "source_ip": "10.0.0.1",
        "user_agent": "aws-cli/2",
        "key_arn": KEY_1,
        "request_parameters": {"KeyId": KEY_1},
        "response_elements": None,
        "error_code": "",
        "error_message": "",
        "decision": "allowed",
        "reason": f"allowed by {ALLOW_STATEMENT}",
        "decided_by": ALLOW_STATEMENT,
        "notable": "",
    }
    unknown = set(fields) - set(values) - set(DERIVED_FIELDS)
    assert not unknown, f"not an event column: {unknown}"
    values.update(fields)
    # Not chained: derived as the recorder derives them, unless a test sets one (a tampered value).
    for name, value in derived_values(values).items():
        values.setdefault(name, value)
    return values


def _linked(rows: Iterable[dict[str, Any]], seq: int, prev_hash: str) -> Iterator[dict[str, Any]]:
    for values in rows:
        seq += 1
        values["seq"], values["prev_hash"] = seq, prev_hash
        values["hash"] = prev_hash = link_hash(prev_hash, values)
        yield values


def append(rows: Iterable[dict[str, Any]], *, batch: int = 5000) -> int:
    """Append events (event_values() dicts) to the chain with bulk inserts; returns the last seq."""
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().get_or_create(
            pk=1, defaults={"last_seq": 0, "last_hash": GENESIS_HASH}
        )[0]
        seq, last_hash = head.last_seq, head.last_hash
        pending: list[dict[str, Any]] = []

        def flush() -> None:
            created = AuditEvent.objects.bulk_create([AuditEvent(**values) for values in pending])
            if created and created[0].pk is None:  # SQLite before RETURNING: find the ids
                ids = dict(
                    AuditEvent.objects.filter(seq__in=[e.seq for e in created]).values_list("seq", "pk")
                )
                for event in created:
                    event.pk = ids[event.seq]
            AuditContextEntry.objects.bulk_create(
                AuditContextEntry(event_id=event.pk, key=key, value=value)
                for event in created
                for key, value in sorted(context_pairs(event.request_parameters))
            )
            pending.clear()

        for values in _linked(rows, seq, last_hash):
            pending.append(values)
            seq, last_hash = values["seq"], values["hash"]
            if len(pending) >= batch:
                flush()
        flush()
        head.last_seq, head.last_hash, head.head_mac = seq, last_hash, head_mac(seq, last_hash)
        head.save()
    return seq


def add(**fields: Any) -> AuditEvent:
    """Append one event; returns it as stored."""
    seq = append([event_values(**fields)])
    return AuditEvent.objects.get(seq=seq)


def hours_ago(hours: float, now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(hours=hours)


def executed_plan(sql: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """PostgreSQL's plan of `sql`, executed (EXPLAIN ANALYZE): its top node and every node under it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        plan = cursor.fetchone()[0][0]["Plan"]

    def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield node
        for child in node.get("Plans", ()):
            yield from nodes(child)

    return plan, list(nodes(plan))
