"""Standalone audit events (the cryptographic operations' and every denial or failure) go through the process's
group commit: concurrent requests share one write, each waits until its own event is durable, a failure reaches
every request of the batch (and only the bad event's, when the others can be written alone), and the chain stays
whole when several writers race for its head."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, connections, models

from kmsconsole.audit import writer
from kmsconsole.audit.models import AuditChainHead, AuditEvent
from kmsconsole.audit.recorder import AuditRecord, _clamped, _event_values, append_event
from kmsconsole.core.context import RequestMeta
from tests.audit.test_fail_closed import audit_writes_fail  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db(transaction=True)


def values(operation: str = "Encrypt", **params: Any) -> dict[str, Any]:
    record = AuditRecord(operation=operation, meta=RequestMeta(interface="kms", source_ip="127.0.0.1"))
    record.request_parameters = {"KeyId": "k", **params}
    record.authorized(allowed=True, reason="allowed by test")
    return _clamped(_event_values(record, AuditEvent.Decision.ALLOWED))


def write_concurrently(threads: int, per_thread: int) -> list[BaseException]:
    failures: list[BaseException] = []
    start = threading.Barrier(threads)

    def run() -> None:
        start.wait()
        for _ in range(per_thread):
            try:
                writer.write_standalone(values())
            except Exception as exc:
                failures.append(exc)
        connections.close_all()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return failures


def test_concurrent_requests_share_writes_and_the_chain_holds(capsys: pytest.CaptureFixture[str]) -> None:
    batches_before = writer._GROUP.batches
    assert write_concurrently(threads=8, per_thread=25) == []
    assert AuditEvent.objects.count() == 200
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, 201))
    assert writer._GROUP.batches - batches_before <= 200
    call_command("audit", "verify")
    assert "Audit chain intact: 200 events verified." in capsys.readouterr().out


def test_standalone_events_interleave_with_events_of_changes(capsys: pytest.CaptureFixture[str]) -> None:
    """A change's event is written in the change's own transaction (locking the head); the writer that cached
    the head loses its next race and chains after it."""
    from django.db import transaction

    writer.write_standalone(values())  # this process now knows where the head is
    with transaction.atomic():
        record = AuditRecord(operation="CreateKey", meta=RequestMeta(interface="cli"))
        record.authorized(allowed=True, reason="operator")
        append_event(record, AuditEvent.Decision.ALLOWED)
    lost = writer._POSTGRES_CHAIN.lost_races
    writer.write_standalone(values())
    if connection.vendor == "postgresql":
        assert writer._POSTGRES_CHAIN.lost_races == lost + 1
    assert list(AuditEvent.objects.order_by("seq").values_list("operation", flat=True)) == [
        "Encrypt",
        "CreateKey",
        "Encrypt",
    ]
    call_command("audit", "verify")
    assert "intact: 3 events" in capsys.readouterr().out


def test_the_first_event_creates_the_head() -> None:
    assert not AuditChainHead.objects.exists()
    writer.write_standalone(values())
    assert AuditChainHead.objects.get().last_seq == 1


def test_encryption_contexts_are_indexed_with_the_event() -> None:
    from kmsconsole.audit.models import AuditContextEntry

    writer.write_standalone(values(EncryptionContext={"tenant": "42", "app": "orders"}))
    writer.write_standalone(values())
    event = AuditEvent.objects.get(seq=1)
    assert set(AuditContextEntry.objects.values_list("event_id", "key", "value")) == {
        (event.pk, "app", "orders"),
        (event.pk, "tenant", "42"),
    }


def test_a_batch_with_many_context_pairs_keeps_one_statement_per_batch_size() -> None:
    """The number of context rows is the caller's (an encryption context of thousands of pairs fits in a body):
    the statement's text, cached and prepared per connection, must not grow or multiply with it."""
    from kmsconsole.audit.models import AuditContextEntry

    writer._batch_sql.cache_clear()
    for pairs in (0, 1, 7, 3000):
        writer.write_batch([values(EncryptionContext={f"k{index}": "v" * 20 for index in range(pairs)})])
    writer.write_batch([values(EncryptionContext={"a": "1"}), values(EncryptionContext={"a": "1", "b": "2"})])
    if connection.vendor == "postgresql":
        assert writer._batch_sql.cache_info().currsize == 2  # one statement for 1 event, one for 2
        assert all(len(writer._batch_sql(size)) < 8_000 for size in (1, 2))
    counts = dict(
        AuditEvent.objects.filter(context_entries__isnull=False)
        .values_list("seq")
        .annotate(count=models.Count("context_entries"))
    )
    assert counts == {2: 1, 3: 7, 4: 3000, 5: 1, 6: 2}
    assert set(AuditContextEntry.objects.filter(event__seq=6).values_list("key", "value")) == {
        ("a", "1"),
        ("b", "2"),
    }


class _Flaky:
    """A batch writer that refuses any batch holding a 'bad' event, and records what it was given."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, events: Sequence[dict[str, Any]], guards: Sequence[writer.Guard]) -> set[int]:
        self.calls.append([event["operation"] for event in events])
        if any(event["operation"] == "bad" for event in events):
            raise RuntimeError("refused")
        return set()


def test_a_bad_event_fails_only_its_own_request() -> None:
    flaky = _Flaky()
    group = writer.GroupCommit(flaky)
    outcomes: dict[str, str] = {}
    # The first batch is held, so the others queue behind it and form one batch.
    release, threads = _queue_behind_a_slow_batch(group, ["a", "bad", "b"], outcomes)
    release.set()
    for thread in threads:
        thread.join()
    assert outcomes == {"first": "written", "a": "written", "bad": "RuntimeError", "b": "written"}
    # One batch for the three that queued; it failed, and each was retried alone.
    assert sorted(flaky.calls[1]) == ["a", "b", "bad"]
    assert sorted(map(tuple, flaky.calls[2:])) == [("a",), ("b",), ("bad",)]


@pytest.mark.usefixtures("audit_writes_fail")
def test_a_failed_write_reaches_every_waiter() -> None:
    failures = write_concurrently(threads=4, per_thread=2)
    assert len(failures) == 8
    assert not AuditEvent.objects.exists()


def _queue_behind_a_slow_batch(
    group: writer.GroupCommit,
    names: list[str],
    outcomes: dict[str, str],
    guards: dict[str, writer.Guard] | None = None,
) -> tuple[threading.Event, list[threading.Thread]]:
    """Start 'first' (its batch held until the returned event is set), then queue `names` behind it (each with
    its guard in `guards`, if any)."""
    release = threading.Event()
    real_write = group._write

    def slow_first(events: Sequence[dict[str, Any]], guards: Sequence[writer.Guard]) -> set[int]:
        if [event["operation"] for event in events] == ["first"]:
            release.wait(5)
        return real_write(events, guards)

    group._write = slow_first

    def submit(name: str) -> None:
        try:
            group.write({"operation": name}, (guards or {}).get(name))
            outcomes[name] = "written"
        except BaseException as exc:
            outcomes[name] = type(exc).__name__

    threads = [threading.Thread(target=submit, args=("first",))]
    threads[0].start()
    while not group._writing:
        pass
    for queued, name in enumerate(names, start=1):
        threads.append(threading.Thread(target=submit, args=(name,)))
        threads[-1].start()
        # One at a time: a thread started is not yet queued, and the tests depend on the order of the queue.
        while len(group._queue) < queued:
            pass
    return release, threads


def test_the_leadership_passes_along_the_queue_in_order() -> None:
    """More waiters than a batch holds: each leader writes the oldest queued events and hands over to the next
    waiting thread; every event is written once, in the order queued."""
    written: list[list[str]] = []

    def write(events: Sequence[dict[str, Any]], guards: Sequence[writer.Guard]) -> set[int]:
        written.append([event["operation"] for event in events])
        return set()

    group = writer.GroupCommit(write, max_batch=2)
    outcomes: dict[str, str] = {}
    names = [f"e{index}" for index in range(5)]
    release, threads = _queue_behind_a_slow_batch(group, names, outcomes)
    release.set()
    for thread in threads:
        thread.join(10)
    assert outcomes == dict.fromkeys(["first", *names], "written")
    assert written == [["first"], ["e0", "e1"], ["e2", "e3"], ["e4"]]
    assert not group._writing and not group._queue


def test_an_interrupted_batch_fails_every_event_in_it() -> None:
    """Not an error of the events (SystemExit, KeyboardInterrupt in the leader): nothing was written, so no
    request of the batch may be answered as if it had been, and the next events are still written."""

    class Interrupted(BaseException):
        pass

    written: list[list[str]] = []

    def write(events: Sequence[dict[str, Any]], guards: Sequence[writer.Guard]) -> set[int]:
        names = [event["operation"] for event in events]
        if "a" in names:
            raise Interrupted
        written.append(names)
        return set()

    group = writer.GroupCommit(write)
    outcomes: dict[str, str] = {}
    release, threads = _queue_behind_a_slow_batch(group, ["a", "b"], outcomes)
    release.set()
    for thread in threads:
        thread.join(10)
    assert outcomes == {"first": "written", "a": "Interrupted", "b": "Interrupted"}
    group.write({"operation": "after"})
    assert written == [["first"], ["after"]]
