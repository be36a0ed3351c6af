"""The audit chain: verification passes on an honest trail and names the first event changed, removed or
reordered behind the service's back."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from kmsconsole.audit.models import AuditEvent
from tests.conftest import Persona

pytestmark = pytest.mark.django_db


@pytest.fixture
def trail(make_user: Callable[..., Persona]) -> list[AuditEvent]:
    for name in ("alice", "bob", "carol"):
        make_user(name)
    events = list(AuditEvent.objects.order_by("seq"))
    assert len(events) >= 6
    return events


def verify() -> str:
    from io import StringIO

    out = StringIO()
    call_command("audit", "verify", stdout=out)
    return out.getvalue()


def test_an_honest_trail_verifies(trail: list[AuditEvent]) -> None:
    assert f"{len(trail)} events verified" in verify()
    assert [e.seq for e in trail] == list(range(1, len(trail) + 1))
    assert all(later.prev_hash == earlier.hash for earlier, later in pairwise(trail))


@pytest.mark.parametrize(
    "field_change",
    [
        {"caller_arn": "arn:aws:iam::111122223333:user/mallory"},
        {"decision": "denied"},
        {"request_parameters": {"UserName": "someone-else"}},
        {"error_message": "nothing happened"},
    ],
)
def test_a_changed_row_is_named(trail: list[AuditEvent], field_change: dict[str, Any]) -> None:
    target = trail[3]
    # An UPDATE straight to the table, as an operator with database access would do it.
    AuditEvent.objects.filter(pk=target.pk).update(**field_change)
    with pytest.raises(CommandError) as raised:
        verify()
    assert f"event #{target.seq} ({target.event_id}): its contents were changed" in str(raised.value)


def test_recomputing_a_plain_hash_does_not_help(trail: list[AuditEvent]) -> None:
    import hashlib

    from kmsconsole.audit.chain import canonical_event

    target = trail[2]
    AuditEvent.objects.filter(pk=target.pk).update(decision="denied")
    values = AuditEvent.objects.filter(pk=target.pk).values()[0]
    forged = hashlib.sha256(target.prev_hash.encode() + b"\n" + canonical_event(values)).hexdigest()
    AuditEvent.objects.filter(pk=target.pk).update(hash=forged)
    with pytest.raises(CommandError, match=f"event #{target.seq} "):
        verify()


def test_a_removed_row_is_named(trail: list[AuditEvent]) -> None:
    AuditEvent.objects.filter(pk=trail[2].pk).delete()
    with pytest.raises(CommandError) as raised:
        verify()
    assert f"event #{trail[3].seq}" in str(raised.value) and "removed or reordered" in str(raised.value)


def test_removing_the_last_rows_is_noticed(trail: list[AuditEvent]) -> None:
    AuditEvent.objects.filter(seq__gte=trail[-2].seq).delete()
    with pytest.raises(CommandError, match="events after this one were removed"):
        verify()


def test_reordered_rows_are_named(trail: list[AuditEvent]) -> None:
    first, second = trail[1], trail[2]
    with connection.cursor() as cursor:  # swap two events' positions
        table = AuditEvent._meta.db_table
        cursor.execute(f"UPDATE {table} SET seq = -1 WHERE id = %s", [first.pk])  # noqa: S608 - fixed table name
        cursor.execute(f"UPDATE {table} SET seq = %s WHERE id = %s", [first.seq, second.pk])  # noqa: S608
        cursor.execute(f"UPDATE {table} SET seq = %s WHERE id = %s", [second.seq, first.pk])  # noqa: S608
    with pytest.raises(CommandError, match=f"event #{first.seq} "):
        verify()


def test_rewinding_the_head_to_hide_removed_events_is_noticed(trail: list[AuditEvent]) -> None:
    from kmsconsole.audit.models import AuditChainHead

    survivor = trail[-3]
    AuditEvent.objects.filter(seq__gt=survivor.seq).delete()
    # What an operator with database access would do: point the head at the new last event.
    AuditChainHead.objects.filter(pk=1).update(last_seq=survivor.seq, last_hash=survivor.hash)
    with pytest.raises(CommandError, match="the chain head was altered"):
        verify()


def test_removing_the_head_row_is_noticed(trail: list[AuditEvent]) -> None:
    from kmsconsole.audit.models import AuditChainHead

    AuditChainHead.objects.all().delete()
    with pytest.raises(CommandError, match="events after this one were removed"):
        verify()
