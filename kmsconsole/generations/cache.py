"""Per-process caches for the KMS request path, kept correct by generation counters.

How an entry stays correct
--------------------------
Every entry is stored with the generation of each scope it depends on (`kmsconsole.generations.scopes`), read
*before or in the same statement as* the rows it was built from. A request reads the current generations of the
scopes it needs once (`GenerationSnapshot`, one indexed query for all of them), and uses an entry only if every
generation it was built under is still current. A write bumps its scope in its own transaction, so:

- a request whose snapshot is read after the write committed sees the new generation, finds every entry built
  before it stale, and rebuilds from the database: a revoked permission is refused by every process as soon as
  the revoking call has returned;
- an entry built from rows newer than its recorded generation is merely rebuilt once more than needed.

The whole scheme rests on the triggers (`kmsconsole.generations.triggers`). Every snapshot read also counts them,
in the same statement: if one is missing or disabled, that request uses no entry, the process empties its caches
and stops caching, and it checks again every `RECHECK_SECONDS` until they are back (`caches_enabled`). Reinstalling
them bumps every generation, so a process that never noticed the gap cannot trust an entry from before it.

Optimistic snapshots: the read moved to the audit write
--------------------------------------------------------
The generation read cost every request a round trip and about 0.12 ms of PostgreSQL's CPU (a fifth of what the
database spends per Encrypt). The AWS endpoint therefore runs its cryptographic operations in an *optimistic*
snapshot (`request_snapshot(optimistic=True)`): a cached entry is taken at its own word (`holds()`), and every
generation the request relied on, taken or read, is carried into its audit event (`guard()`). The audit writer
(`kmsconsole.audit.writer`) writes the event only if, in the statement that writes it, each of those generations
is still current and every trigger is still in place (`stale_generations` is the same check in a transaction);
otherwise it writes nothing for that request and raises `StaleRead`, and the endpoint serves the request again
with a snapshot that reads the database first. Every request waits for its event to commit before it is answered,
so the write is the request's linearization point: a request that starts after a revoking call has returned is
checked against the revoked state, as before. A request answered from a stale entry is impossible: the answer
is never sent unless its event, and so its guard, committed.

Only requests that run inside `request_snapshot()` use the caches (the AWS endpoint, for the cryptographic
operations: `Operation.cacheable`); every other caller (REST API, console, CLI, workers) reads the database as
before. Entries hold immutable values (frozen dataclasses, tuples, compiled policies) or model instances that the
cached path only reads.

The caches are bounded (oldest entries go first) so a worker's memory does not grow with the number of keys or
principals that ever called it.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from itertools import islice
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections

from kmsconsole.core.prepared import fetch_all, fetch_on_first_use
from kmsconsole.generations.models import Generation

logger = logging.getLogger(__name__)

Tags = tuple[tuple[str, int], ...]

_TABLE = Generation._meta.db_table


class GenerationSnapshot:
    """The generations one request compares its cached entries with.

    Scopes registered with `want()` are read together, in one query, the first time any generation is asked for;
    a scope asked for without having been wanted is read then (with whatever else is still wanted).
    """

    __slots__ = ("_values", "_wanted", "optimistic", "queries", "using")

    def __init__(self, using: str = DEFAULT_DB_ALIAS, *, optimistic: bool = False) -> None:
        self._values: dict[str, int] = {}
        self._wanted: set[str] = set()
        self.queries = 0
        self.using = using
        # Take cached entries at their word and have the audit write check them (see the module docstring).
        self.optimistic = optimistic

    def want(self, *scopes: str) -> None:
        self._wanted.update(scope for scope in scopes if scope not in self._values)

    def value(self, scope: str) -> int:
        try:
            return self._values[scope]
        except KeyError:
            pass
        self._wanted.add(scope)
        self._read(self._wanted)
        return self._values[scope]

    def holds(self, scope: str, generation: int) -> bool:
        """Whether an entry built under `generation` of `scope` may be used. An optimistic snapshot that has not
        read the scope takes the entry's word for it: the request is then served only if its audit write finds
        it still current (`guard`)."""
        known = self._values.get(scope)
        if known is None:
            if not self.optimistic:
                return self.value(scope) == generation
            self._values[scope] = known = generation
        return known == generation

    def guard(self) -> tuple[tuple[str, int], ...] | None:
        """What an optimistic request relied on: every generation it took or read, for its audit write to check
        (None for a snapshot that read them before relying on them)."""
        return tuple(sorted(self._values.items())) if self.optimistic else None

    def learn(self, scope: str, value: int) -> None:
        """A generation read in the same statement as the rows of a rebuilt entry (kept if none was read yet)."""
        self._values.setdefault(scope, value)

    def _read(self, scopes: set[str]) -> None:
        # A scope already known (read, or taken at an entry's word) keeps its value: the entries a request has
        # used and the ones it builds must agree on it, and the guard checks it.
        wanted = sorted(scope for scope in scopes if scope not in self._values)
        found, triggers_live = _current_generations(connections[self.using], wanted, fetch=_first_query)
        if not triggers_live:
            # Generations that may have stopped moving prove nothing: values no entry was (or will be) built with.
            triggers_missing(self.using)
            found = {scope: next(_untrusted) for scope in wanted}
        for scope in wanted:
            self._values[scope] = found.get(scope, 0)
        self._wanted.clear()
        self.queries += 1


def _first_query(connection: Any, sql: str, params: list[str]) -> list[tuple[str, int]]:
    """The read; when it is the request's first use of a persistent connection, it doubles as Django's health check
    (it changes nothing, so retrying it on a replaced connection is safe)."""
    return fetch_on_first_use(connection, sql, params, fetch=_fetch)


def _fetch(connection: Any, sql: str, params: list[str]) -> list[tuple[str, int]]:
    return [(str(scope), int(value)) for scope, value in fetch_all(connection, sql, params)]


def _current_generations(
    connection: Any, scopes: list[str], fetch: Callable[[Any, str, list[str]], list[tuple[str, int]]] = _fetch
) -> tuple[dict[str, int], bool]:
    """The current generation of each scope that has one, and whether every trigger is live, in one query."""
    pattern, expected = _trigger_names()
    sql = f"SELECT scope, value FROM {_TABLE} WHERE scope IN ({', '.join(['%s'] * len(scopes))})"  # noqa: S608 - placeholders only
    sql += f" UNION ALL SELECT '', ({_LIVE_TRIGGERS[connection.vendor]})"
    found = dict(fetch(connection, sql, [*scopes, pattern]))
    # The trigger count comes in a row of its own, named '' (no scope is empty).
    return found, found.pop("", 0) >= expected


# Counts the live generation triggers (parameter: their name pattern).
_LIVE_TRIGGERS = {
    "postgresql": "SELECT count(*) FROM pg_trigger WHERE tgname LIKE %s AND tgenabled IN ('O', 'A')",
    "sqlite": "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s",
}
_untrusted = itertools.count(-1, -1)  # generations are never negative


@functools.cache
def _trigger_names() -> tuple[str, int]:
    from kmsconsole.generations.triggers import expected_triggers, name_pattern

    return name_pattern(), len(expected_triggers())


_current: ContextVar[GenerationSnapshot | None] = ContextVar("kms_generation_snapshot", default=None)
_enabled: dict[str, bool] = {}
_checked_at: dict[str, float] = {}
# How often a process whose caches are off looks for the triggers again.
RECHECK_SECONDS = 5.0


def caches_enabled(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether the database bumps generations on every write (its triggers are installed). Checked at a
    process's first request; once on, every snapshot read re-counts them (`triggers_missing`); while off, checked
    again every RECHECK_SECONDS. Without them nothing may be cached, and every request reads the database."""
    enabled = _enabled.get(using)
    if enabled or (enabled is False and time.monotonic() - _checked_at.get(using, 0.0) < RECHECK_SECONDS):
        return bool(enabled)
    from kmsconsole.generations.triggers import triggers_installed

    _set_enabled(using, triggers_installed(using))
    return _enabled[using]


def triggers_missing(using: str = DEFAULT_DB_ALIAS) -> None:
    """A snapshot read found a trigger missing: caches off in this process (and emptied) until they are back."""
    _set_enabled(using, False)


def _set_enabled(using: str, enabled: bool) -> None:
    was = _enabled.get(using)
    _enabled[using], _checked_at[using] = enabled, time.monotonic()
    if was is not None and was != enabled:
        # Entries from before a gap in the triggers may hold what changed during it under unchanged generations.
        clear_all()
    if not enabled and was is not False:
        logger.warning(
            "The generation triggers are missing (run `manage.py migrate`): request caches are off"
        )


class StaleRead(Exception):
    """A generation an optimistic request relied on had moved (or a trigger was missing) when its audit event was
    to be written: nothing was written for it, and it must be served again with a snapshot that reads first."""


def current_guard() -> tuple[tuple[str, int], ...] | None:
    """The running request's guard (see `GenerationSnapshot.guard`), or None."""
    snapshot = _current.get()
    return snapshot.guard() if snapshot is not None else None


def stale_generations(
    pairs: Iterable[tuple[str, int]], using: str = DEFAULT_DB_ALIAS
) -> set[tuple[str, int]]:
    """The (scope, generation) pairs that are no longer current, all of them if a trigger is missing: the
    guard's check as a query of its own (inside a transaction, or on a database without the one-statement write)."""
    pairs = set(pairs)
    if not pairs:
        return set()
    found, triggers_live = _current_generations(connections[using], sorted({scope for scope, _ in pairs}))
    if not triggers_live:
        return pairs
    return {(scope, value) for scope, value in pairs if found.get(scope, 0) != value}


def guard_sql(vendor: str) -> tuple[str, str, int]:
    """For the audit writer's one statement: a query of the guard's stale pairs (its parameters: the pairs as a
    JSON array of {"s": scope, "v": generation}, the trigger name pattern, the expected trigger count); a missing
    trigger shows as the pair ('', 0). Returns the query, the pattern and the count."""
    pattern, expected = _trigger_names()
    # One scalar subquery per pair: an index lookup whatever the planner guesses of the function's rows (100). As a
    # join it was planned as a hash join over a sequential scan of the whole table, one row per key in the
    # database: 1.1 ms a batch at 10,000 keys, and a fifth of the throughput (README, issue 9).
    sql = (
        "SELECT p.s, p.v FROM jsonb_to_recordset(%s::jsonb) AS p(s text, v bigint) "  # noqa: S608 - a table name from our model
        f"WHERE coalesce((SELECT g.value FROM {_TABLE} g WHERE g.scope = p.s), 0) <> p.v "
        f"UNION ALL SELECT '', 0 WHERE ({_LIVE_TRIGGERS[vendor]}) < %s"
    )
    return sql, pattern, expected


def current_snapshot() -> GenerationSnapshot | None:
    """The running request's snapshot, or None outside `request_snapshot()` (then no cache is used)."""
    return _current.get()


@contextmanager
def request_snapshot(
    using: str = DEFAULT_DB_ALIAS, *, optimistic: bool = False
) -> Iterator[GenerationSnapshot | None]:
    """Let the code run inside use the process caches, validated against one snapshot of generations (None, and
    no caching, when the database's triggers are missing). `optimistic`: validated by the request's audit write
    instead, which raises `StaleRead` if they moved (the caller serves the request again without it)."""
    if not caches_enabled(using):
        yield None
        return
    snapshot = GenerationSnapshot(using, optimistic=optimistic)
    token = _current.set(snapshot)
    try:
        yield snapshot
    finally:
        _current.reset(token)


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_ALL_CACHES: list[GenerationalCache[object, object]] = []


class GenerationalCache(Generic[K, V]):
    """A bounded map from a key to (the generations it was built under, a value)."""

    def __init__(self, name: str, maxsize: int) -> None:
        self.name = name
        self.maxsize = maxsize
        self._entries: dict[K, tuple[Tags, V]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        _ALL_CACHES.append(self)  # type: ignore[arg-type]

    def get(self, key: K, snapshot: GenerationSnapshot) -> V | None:
        """The value if every generation it was built under is current, else None (the caller rebuilds)."""
        entry = self._entries.get(key)
        if entry is not None:
            tags, value = entry
            if all(snapshot.holds(scope, generation) for scope, generation in tags):
                self.hits += 1
                return value
            # Stale: drop it now (unless another thread has replaced it), so that what it held, such as unsealed
            # material of a destroyed key, leaves memory without waiting for eviction.
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
        self.misses += 1
        return None

    def peek(self, key: K) -> tuple[Tags, V] | None:
        """The entry, unvalidated: only to learn which scopes a request is likely to need."""
        return self._entries.get(key)

    def put(self, key: K, value: V, tags: Iterable[tuple[str, int]]) -> V:
        with self._lock:
            if key not in self._entries and len(self._entries) >= self.maxsize:
                for old in list(islice(self._entries, max(1, self.maxsize // 8))):
                    del self._entries[old]
            self._entries[key] = (tuple(tags), value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)


def clear_all() -> None:
    """Empty every process cache (tests; or after restoring the database under a running server)."""
    for cache in _ALL_CACHES:
        cache.clear()


def cache_info() -> dict[str, dict[str, int]]:
    return {
        cache.name: {"size": len(cache), "hits": cache.hits, "misses": cache.misses} for cache in _ALL_CACHES
    }
