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
from collections.abc import Hashable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from itertools import islice
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

from kmsconsole.core.prepared import fetch_all
from kmsconsole.generations.models import Generation

logger = logging.getLogger(__name__)

Tags = tuple[tuple[str, int], ...]

_TABLE = Generation._meta.db_table


class GenerationSnapshot:
    """The generations one request compares its cached entries with.

    Scopes registered with `want()` are read together, in one query, the first time any generation is asked for;
    a scope asked for without having been wanted is read then (with whatever else is still wanted).
    """

    __slots__ = ("_values", "_wanted", "queries", "using")

    def __init__(self, using: str = DEFAULT_DB_ALIAS) -> None:
        self._values: dict[str, int] = {}
        self._wanted: set[str] = set()
        self.queries = 0
        self.using = using

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

    def learn(self, scope: str, value: int) -> None:
        """A generation read in the same statement as the rows of a rebuilt entry (kept if none was read yet)."""
        self._values.setdefault(scope, value)

    def _read(self, scopes: set[str]) -> None:
        wanted = sorted(scopes)
        connection = connections[self.using]
        pattern, expected = _trigger_names()
        sql = f"SELECT scope, value FROM {_TABLE} WHERE scope IN ({', '.join(['%s'] * len(wanted))})"  # noqa: S608 - placeholders only
        sql += f" UNION ALL {_COUNT_TRIGGERS[connection.vendor]}"
        rows = _first_query(connection, sql, [*wanted, pattern])
        found = dict(rows)
        if found.pop(_TRIGGER_COUNT, 0) < expected:
            # Generations that may have stopped moving prove nothing: values no entry was (or will be) built with.
            triggers_missing(self.using)
            found = {scope: next(_untrusted) for scope in wanted}
        for scope in wanted:
            self._values[scope] = found.get(scope, 0)
        self._wanted.clear()
        self.queries += 1


def _first_query(connection: Any, sql: str, params: list[str]) -> list[tuple[str, int]]:
    """Run the read; when it is the request's first use of a persistent connection, it doubles as the health
    check Django would otherwise send (`SELECT 1`): a dead connection is replaced and the read retried once (it
    changes nothing, so retrying is safe)."""
    pending_check = (
        getattr(connection, "health_check_enabled", False)
        and not getattr(connection, "health_check_done", True)
        and not getattr(connection, "in_atomic_block", False)
        and getattr(connection, "connection", None) is not None
    )
    if pending_check:
        connection.health_check_done = True
    try:
        return _fetch(connection, sql, params)
    except (InterfaceError, OperationalError):
        if not pending_check:
            raise
        connection.close()
        return _fetch(connection, sql, params)


def _fetch(connection: Any, sql: str, params: list[str]) -> list[tuple[str, int]]:
    return [(str(scope), int(value)) for scope, value in fetch_all(connection, sql, params)]


# The snapshot read counts the live triggers in the same statement, in a row of its own (no scope is empty).
_TRIGGER_COUNT = ""
_COUNT_TRIGGERS = {
    "postgresql": "SELECT '', count(*) FROM pg_trigger WHERE tgname LIKE %s AND tgenabled IN ('O', 'A')",
    "sqlite": "SELECT '', count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s",
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


def current_snapshot() -> GenerationSnapshot | None:
    """The running request's snapshot, or None outside `request_snapshot()` (then no cache is used)."""
    return _current.get()


@contextmanager
def request_snapshot(using: str = DEFAULT_DB_ALIAS) -> Iterator[GenerationSnapshot | None]:
    """Let the code run inside use the process caches, validated against one snapshot of generations (None, and
    no caching, when the database's triggers are missing)."""
    if not caches_enabled(using):
        yield None
        return
    snapshot = GenerationSnapshot(using)
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
            if all(snapshot.value(scope) == generation for scope, generation in tags):
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
