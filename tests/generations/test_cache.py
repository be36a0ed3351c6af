"""The building blocks: a snapshot reads every generation a request wants in one query; a cache entry is used
only while the generations it was built under are current, is dropped when found stale, and the caches stay
bounded; the first read of a request stands in for Django's connection health check; secrets stay out of reprs."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import OperationalError

from kmsconsole.core.context import Caller
from kmsconsole.core.prepared import fetch_on_first_use
from kmsconsole.generations import cache
from kmsconsole.generations.cache import GenerationalCache, GenerationSnapshot
from kmsconsole.generations.scopes import bump
from policies.selectors import Credentials

pytestmark = pytest.mark.django_db


def test_a_snapshot_reads_what_it_wants_in_one_query() -> None:
    bump("iam:111122223333")
    snapshot = GenerationSnapshot()
    snapshot.want("iam:111122223333", "key:" + "a" * 32, "alias:111122223333")
    assert snapshot.value("iam:111122223333") != 0
    assert snapshot.value("key:" + "a" * 32) == 0  # no row: generation 0
    assert snapshot.value("alias:111122223333") == 0
    assert snapshot.queries == 1
    snapshot.value("iam:444455556666")  # not wanted beforehand: read when asked for
    assert snapshot.queries == 2


def test_an_entry_is_used_while_its_generations_are_current_and_dropped_when_stale() -> None:
    built: GenerationalCache[str, str] = GenerationalCache("test", maxsize=10)
    bump("key:" + "b" * 32)
    snapshot = GenerationSnapshot()
    built.put("k", "value", (("key:" + "b" * 32, snapshot.value("key:" + "b" * 32)),))
    assert built.get("k", snapshot) == "value"
    assert built.get("k", GenerationSnapshot()) == "value"  # a later request, nothing changed
    bump("key:" + "b" * 32)
    assert built.get("k", GenerationSnapshot()) is None  # changed: rebuild
    assert built.peek("k") is None  # and the stale entry is gone from memory


def test_caches_stay_bounded() -> None:
    bounded: GenerationalCache[int, int] = GenerationalCache("bounded", maxsize=64)
    for number in range(1000):
        bounded.put(number, number, ())
    assert len(bounded) <= 64 and bounded.peek(999) is not None


def test_no_snapshot_outside_a_request() -> None:
    assert cache.current_snapshot() is None
    with cache.request_snapshot() as snapshot:
        assert snapshot is not None and cache.current_snapshot() is snapshot
    assert cache.current_snapshot() is None


class _Connection:
    """Enough of a Django connection for the health check folding."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.health_check_enabled, self.health_check_done, self.in_atomic_block = True, False, False
        self.connection = object()
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_the_first_statement_stands_in_for_the_health_check() -> None:
    def fetch(connection: _Connection, sql: str, params: Any) -> list[tuple[str, int]]:
        if connection.failures:
            connection.failures -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return [("iam:1", 5)]

    dead = _Connection(failures=1)
    assert fetch_on_first_use(dead, "SELECT", [], fetch=fetch) == [("iam:1", 5)]
    assert dead.closed == 1 and dead.health_check_done  # replaced once, and Django's SELECT 1 skipped
    checked = _Connection(failures=1)
    checked.health_check_done = True  # not the first use of the connection in this request: no retry
    with pytest.raises(OperationalError):
        fetch_on_first_use(checked, "SELECT", [], fetch=fetch)


def test_credentials_keep_their_secret_out_of_reprs() -> None:
    caller = Caller(
        arn="arn:aws:iam::111122223333:user/a", account_id="111122223333", principal_type="IAMUser"
    )
    credentials = Credentials(caller=caller, secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert "wJalrXUtnFEMI" not in repr(credentials)
