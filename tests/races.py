"""Forcing an interleaving of two transactions on PostgreSQL (two threads, two database connections), for the race
tests of lock orders (`tests/policies/test_principal_deletion_race.py`, `tests/keys/test_key_deletion_race.py`).

A thread is paused where it holds the locks in question (`Pause`), the other is let go until it waits on a lock
(seen in `pg_stat_activity`) or finishes (`waits_or_ends`), and only then is the first let go. PostgreSQL's deadlock
detector (`deadlock_timeout`, 1 s by default) then finds a cycle if there is one, and fails one of them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connection, connections


class Pause:
    """Wraps a function: the `call`-th time (the first by default) a thread named `thread` has called it (`after`)
    or is about to (not `after`), say so and wait to be released."""

    def __init__(
        self, function: Callable[..., Any], *, thread: str, after: bool = True, call: int = 1
    ) -> None:
        self.function = function
        self.thread = thread
        self.after = after
        self.call = call
        self.calls = 0
        self.reached = threading.Event()
        self.release = threading.Event()

    def _hold(self) -> None:
        if threading.current_thread().name != self.thread or self.reached.is_set():
            return
        self.calls += 1
        if self.calls == self.call:
            self.reached.set()
            assert self.release.wait(30)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.after:
            self._hold()
        result = self.function(*args, **kwargs)
        if self.after:
            self._hold()
        return result


def in_thread(work: Callable[[], Any], results: dict[str, Any], name: str) -> threading.Thread:
    """Run `work` in a thread named `name` (its own database connection), its result or exception in `results`."""

    def run() -> None:
        try:
            results[name] = work()
        except Exception as exc:  # reported by the test
            results[name] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def lock_waiters() -> int:
    """Backends of this database waiting for a lock (a row, a transaction id)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def waits_or_ends(thread: threading.Thread, timeout: float = 30, *, waiters: int = 1) -> str:
    """Wait until `thread` waits on a database lock ("waiting": `waiters` backends wait, counting those that
    waited before it) or has finished ("finished")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            return "finished"
        if lock_waiters() >= waiters:
            return "waiting"
        time.sleep(0.02)
    raise AssertionError(f"{thread.name} neither waited for a lock nor finished")


def finish(*threads: threading.Thread, results: dict[str, Any]) -> None:
    """Join the threads; none may have failed (a deadlock fails one with KMSInternalException)."""
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), f"{thread.name} is still running"
    for thread in threads:
        assert not isinstance(results[thread.name], Exception), (thread.name, repr(results[thread.name]))
