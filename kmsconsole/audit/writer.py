"""Writing audit events that stand alone: group commit, and one statement per batch on PostgreSQL.

An event that belongs to a change (CreateKey, PutKeyPolicy, ...) is written by `recorder.append_event` inside the
change's own transaction, which locks the chain head until it commits. Every other event (the AWS endpoint's
cryptographic operations, which change nothing, and every denial or failure) stands alone, and is written here:

Group commit (`GroupCommit.write`)
    The calling thread queues its event and waits. The first waiting thread finds no write in progress and
    becomes the leader: it takes every queued event (its own and those queued by the process's other request
    threads meanwhile), writes them as one batch, and wakes the others; a thread whose event missed that batch
    waits for the next leader, or becomes it. A thread returns only once the batch holding its event has
    committed (PostgreSQL's COMMIT returns after the WAL is flushed, `synchronous_commit` on), and raises if it
    failed, so a request is never answered before its event is durable: the trail stays fail closed. A failed
    batch is retried one event at a time, so one bad event cannot fail the requests that were batched with it.
    A thread inside a transaction never joins a batch: its event must commit or roll back with that
    transaction, so it is written there, alone (`recorder.record_failure`).

One statement per batch on PostgreSQL (`_write_postgresql`)
    The chain's links are HMACs computed here, so the next link needs the head (last seq and hash). Each process
    remembers the head it last wrote and sends, in autocommit, one statement: a CTE that moves the head forward
    *only if it is still where this process left it* (`UPDATE … WHERE last_seq = … AND last_hash = …`), inserts
    the batch's events (and their encryption-context index rows) only if that update matched, and counts them.
    The row lock on the head is held for that one statement only, never across a round trip or a Python
    thread switch, so the two web workers no longer serialize on it. If another process (or a change's own
    transaction) moved the head meanwhile, nothing is written; the head is read again and the links recomputed.
    After a few lost races, or without PostgreSQL, the batch is written the classic way: one transaction that
    locks the head with SELECT … FOR UPDATE (`_write_locked`). The processes of one host don't race at all: their
    leaders take turns and pass the head along (`kmsconsole.audit.turns`), so a race is lost only to a writer
    that does not take turns (a change's transaction, another host).

The guard of an optimistic request (`kmsconsole.generations.cache`)
    A request of the AWS endpoint that took cached entries at their word sends, with its event, the generations
    it relied on. The batch statement moves the head and writes the events only if every generation the batch's
    events relied on is still current and every generation trigger is live; otherwise it writes nothing and says
    which were stale. The events that relied on them are taken out of the batch (their requests get `StaleRead`
    and are served again with a real read) and the rest are sent again. The locked path makes the same check
    inside its transaction.

Either way the chain is the same: consecutive seqs, each event linked to the previous one, the head and its MAC
moved in the same commit as the events, so `manage.py audit verify` checks it unchanged.

Root keys (`kmsconsole.audit.headkeys`)
    Events are linked, and the head MACed, under the current root key, and the chain's key only moves forward: a
    writer extends a head only once it knows the head's MAC is under its current key or an older configured one.
    The batch statement also requires the head's MAC to be the one the writer expects, so a head another process
    moved to a key this one lacks comes back with the statement's answer; the locked path checks the head it
    locked.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from kmsconsole.audit.chain import GENESIS_HASH, HEAD_PURPOSE, LINK_PURPOSE, head_mac, link_hash
from kmsconsole.audit.context_index import context_pairs
from kmsconsole.audit.headkeys import extending, remember, writing_key
from kmsconsole.audit.models import AuditChainHead, AuditContextEntry, AuditEvent
from kmsconsole.audit.turns import HostTurns, turn_file
from kmsconsole.core.prepared import fetch_all, fetch_on_first_use
from kmsconsole.generations.cache import StaleRead, current_guard, guard_sql, stale_generations

logger = logging.getLogger(__name__)

# Events per batch: a leader writes at most this many (the rest go to the next leader).
MAX_BATCH = 64
# Lost races for the head before a batch falls back to locking it.
_OPTIMISTIC_ATTEMPTS = 8

# The (scope, generation) pairs an optimistic request relied on; None (or empty) for any other event.
Guard = tuple[tuple[str, int], ...] | None
# A missing generation trigger, as the batch statement reports it: every guard fails.
_MISSING_TRIGGER = ("", 0)


def _relying_on(stale: set[tuple[str, int]], guards: Sequence[Guard], among: Sequence[int]) -> set[int]:
    """The indexes (of `among`) of the events whose guard holds a stale pair (any guard, if a trigger is missing)."""
    every_guard = _MISSING_TRIGGER in stale
    return {
        index for index in among if (guard := guards[index]) and (every_guard or not stale.isdisjoint(guard))
    }


def chain_links(
    events: Sequence[dict[str, Any]], last_seq: int, last_hash: str, key: bytes | None = None
) -> tuple[int, str]:
    """Give each event (in order) its seq, prev_hash and hash after the head (last_seq, last_hash); return the
    new head. `key`: the LINK_PURPOSE subkey of the root key to link under (the current one's by default)."""
    for values in events:
        last_seq += 1
        values["seq"] = last_seq
        values["prev_hash"] = last_hash
        values["hash"] = last_hash = link_hash(last_hash, values, key)
    return last_seq, last_hash


def locked_head() -> AuditChainHead:
    """The chain head, locked until the surrounding transaction ends (created at the first event)."""
    from django.db import IntegrityError

    try:
        with transaction.atomic():
            return AuditChainHead.objects.select_for_update().get_or_create(
                pk=1, defaults={"last_seq": 0, "last_hash": GENESIS_HASH}
            )[0]
    except IntegrityError:
        # Another process created the head between our read and insert; it exists now.
        return AuditChainHead.objects.select_for_update().get(pk=1)


def insert_chained(events: Sequence[dict[str, Any]]) -> list[AuditEvent]:
    """Append events to the chain inside the caller's transaction (the head stays locked until it commits),
    with their encryption-context index rows."""
    return _insert_chained(events)[0]


def _insert_chained(
    events: Sequence[dict[str, Any]], head: AuditChainHead | None = None
) -> tuple[list[AuditEvent], tuple[int, str]]:
    """`head`: the head, if the caller's transaction has locked it already."""
    head = head or locked_head()
    key = writing_key(head.last_seq, head.last_hash, head.head_mac)
    head.last_seq, head.last_hash = chain_links(
        events, head.last_seq, head.last_hash, key.subkey(LINK_PURPOSE)
    )
    head.head_mac = head_mac(head.last_seq, head.last_hash, key.subkey(HEAD_PURPOSE))
    remember(key, head.last_seq, head.last_hash, head.head_mac)
    rows = AuditEvent.objects.bulk_create([AuditEvent(**values) for values in events])
    entries = [
        AuditContextEntry(event=row, key=key, value=value)
        for row in rows
        for key, value in sorted(context_pairs(row.request_parameters))
    ]
    if entries:
        AuditContextEntry.objects.bulk_create(entries)
    head.save(update_fields=["last_seq", "last_hash", "head_mac"])
    return rows, (head.last_seq, head.last_hash)


def _write_locked(
    events: Sequence[dict[str, Any]], guards: Sequence[Guard] = (), using: str = DEFAULT_DB_ALIAS
) -> tuple[set[int], tuple[int, str] | None]:
    """Write the batch in a transaction that locks the head, but for the events whose guard no longer holds;
    return those events' indexes and the head it leaves (once committed; None if it wrote nothing)."""
    with transaction.atomic(using):
        # The head first: a change that commits after the check then chains after these events, as the order
        # in which they were decided.
        head = locked_head()
        stale = _relying_on(
            stale_generations({pair for guard in guards if guard for pair in guard}, using),
            guards,
            range(len(guards)),
        )
        kept = [values for index, values in enumerate(events) if index not in stale]
        return stale, (_insert_chained(kept, head)[1] if kept else None)


# --- PostgreSQL: one statement per batch -----------------------------------------------------------------

_EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("seq", "bigint"),
    ("event_id", "uuid"),
    ("time", "timestamptz"),
    ("request_id", "text"),
    ("interface", "text"),
    ("operation", "text"),
    ("caller_arn", "text"),
    ("caller_account", "text"),
    ("access_key_id", "text"),
    ("source_ip", "text"),
    ("user_agent", "text"),
    ("key_arn", "text"),
    ("request_parameters", "jsonb"),
    ("response_elements", "jsonb"),
    ("error_code", "text"),
    ("error_message", "text"),
    ("decision", "text"),
    ("reason", "text"),
    ("decided_by", "text"),
    ("notable", "text"),
    ("prev_hash", "text"),
    ("hash", "text"),
    # Not chained (kmsconsole.audit.derived).
    ("key_owner_account", "text"),
    ("decided_by_caller_policy", "boolean"),
)
_JSON_COLUMNS = frozenset(name for name, kind in _EVENT_COLUMNS if kind == "jsonb")
_EVENT_ROW = "(" + ", ".join(f"%s::{kind}" for _, kind in _EVENT_COLUMNS) + ")"
_EVENT_NAME_LIST = tuple(name for name, _ in _EVENT_COLUMNS)
_EVENT_NAMES = ", ".join(_EVENT_NAME_LIST)


def _statement(
    events: Sequence[dict[str, Any]],
    guards: Sequence[Guard],
    old: tuple[int, str, str],
    new: tuple[int, str, str],
) -> tuple[str, list[Any]]:
    """`old` and `new`: the head (seq, hash, MAC) the statement expects, and the one it leaves."""
    pairs = sorted({pair for guard in guards if guard for pair in guard})
    params: list[Any] = []
    if pairs:
        _, pattern, expected = guard_sql("postgresql")
        params += [json.dumps([{"s": scope, "v": value} for scope, value in pairs]), pattern, expected]
    params += [*new, *old]
    for values in events:
        for name in _EVENT_NAME_LIST:
            value = values[name]
            params.append(json.dumps(value) if name in _JSON_COLUMNS and value is not None else value)
    # The encryption-context index rows go as one JSON parameter: a request decides how many there are, and the
    # statement's text (cached, and prepared once per connection) must depend only on the batch's size.
    params.append(
        json.dumps(
            [
                {"seq": values["seq"], "k": key, "v": value}
                for values in events
                for key, value in sorted(context_pairs(values["request_parameters"]))
            ]
        )
    )
    return _batch_sql(len(events), guarded=bool(pairs)), params


@functools.lru_cache(maxsize=2 * MAX_BATCH)
def _batch_sql(event_count: int, guarded: bool = False) -> str:
    """The batch statement for `event_count` events, built once (kmsconsole.core.prepared prepares it once per
    connection); `guarded`: it writes nothing if a generation the events relied on has moved, and lists those."""
    event_table = AuditEvent._meta.db_table
    head_table = AuditChainHead._meta.db_table
    context_table = AuditContextEntry._meta.db_table
    # `cur` locks the head and (READ COMMITTED re-reads a row it waited for) sees its latest version; the head
    # moves and the events go in only if it is still (`old`, its MAC included: under the key the writer expects);
    # either way the statement returns where it is, so a writer that lost the race (or expected another key)
    # chains after the winner at its next attempt. `stale` (the guard) reads the
    # generations in the statement's snapshot, taken when it starts: the requests of the batch are linearized
    # there, before any change that commits later.
    stale = f"stale AS ({guard_sql('postgresql')[0]}), " if guarded else ""
    return (
        f"WITH {stale}cur AS (SELECT id, last_seq, last_hash, head_mac FROM {head_table} WHERE id = 1 FOR UPDATE), "  # noqa: S608 - table names from our models; values are placeholders
        f"head AS (UPDATE {head_table} h SET last_seq = %s, last_hash = %s, head_mac = %s FROM cur "
        "WHERE h.id = cur.id AND cur.last_seq = %s AND cur.last_hash = %s AND cur.head_mac = %s"
        f"{' AND NOT EXISTS (SELECT 1 FROM stale)' if guarded else ''} RETURNING h.id), "
        f"ev AS (INSERT INTO {event_table} ({_EVENT_NAMES}) SELECT v.* FROM "
        f"(VALUES {', '.join([_EVENT_ROW] * event_count)}) AS v({_EVENT_NAMES}) CROSS JOIN head "
        "RETURNING id, seq), "
        f"ctx AS (INSERT INTO {context_table} (event_id, key, value) SELECT ev.id, c.k, c.v FROM ev "
        "JOIN jsonb_to_recordset(%s::jsonb) AS c(seq bigint, k text, v text) ON c.seq = ev.seq) "
        "SELECT (SELECT count(*) FROM ev), cur.last_seq, cur.last_hash, cur.head_mac, "
        f"{'(SELECT json_agg(json_build_array(s, v)) FROM stale)' if guarded else 'NULL'} FROM cur"
    )


_TURNS: dict[str, HostTurns] = {}


def _host_turns(using: str) -> HostTurns:
    """This process's turns at the head of database `using`'s chain."""
    turns = _TURNS.get(using)
    if turns is None:
        turns = _TURNS[using] = HostTurns(turn_file(settings.KMS_DATA_DIR, connections[using].settings_dict))
    return turns


class _PostgresChain:
    """What this process knows of the chain head: where its own last batch left it (None: read it)."""

    def __init__(self, turns_for: Callable[[str], HostTurns] | None = None) -> None:
        self.head: tuple[int, str] | None = None
        self._turns_for = turns_for or _host_turns
        # Counters for benchmarks and tests: statements that lost the race, batches that fell back to the lock.
        self.lost_races = 0
        self.fallbacks = 0

    def write(
        self, events: Sequence[dict[str, Any]], using: str, guards: Sequence[Guard] | None = None
    ) -> set[int]:
        """Write the batch in this host's turn (kmsconsole.audit.turns), starting from where the previous
        holder left the head, and leave the new head for the next. Returns the indexes of the events left out
        because their guard failed."""
        with self._turns_for(using).turn() as turn:
            try:
                return self._write(events, guards or [None] * len(events), using, turn.head() or self.head)
            finally:
                turn.leave(self.head)

    def _write(
        self,
        events: Sequence[dict[str, Any]],
        guards: Sequence[Guard],
        using: str,
        old: tuple[int, str] | None,
    ) -> set[int]:
        connection = connections[using]
        self.head = None  # until a statement is known to have committed
        pending = list(range(len(events)))  # the events still to write
        stale: set[int] = set()
        mac: str | None = None  # the head's MAC as the database holds it; None: `old` is a hint
        for _attempt in range(_OPTIMISTIC_ATTEMPTS):
            if old is None:
                read = self._read_head(connection)
                if read is None:  # no head row yet: the first event creates it, locked
                    break
                old, mac = read[:2], read[2]
            key, expected = extending(old, mac)
            batch = [events[index] for index in pending]
            new = chain_links(batch, *old, key.subkey(LINK_PURPOSE))
            new_mac = head_mac(*new, key.subkey(HEAD_PURPOSE))
            statement = _statement(
                batch, [guards[index] for index in pending], (*old, expected), (*new, new_mac)
            )
            rows = fetch_on_first_use(connection, *statement, fetch=_once(batch, new))
            if not rows:  # the head row is gone: let the locked path recreate it
                break
            written, seq, last_hash, mac, stale_pairs = rows[0]
            old = (int(seq), str(last_hash))
            if int(written) == len(batch):
                self.head = new
                remember(key, *new, new_mac)
                return stale
            if stale_pairs:
                left_out = _relying_on(
                    {(str(scope), int(value)) for scope, value in json.loads(stale_pairs)}, guards, pending
                )
                stale |= left_out
                pending = [index for index in pending if index not in left_out]
                if not pending:
                    self.head = old  # unchanged: a valid hint for the next holder of the turn
                    return stale
            else:
                self.lost_races += 1  # another writer moved the head: chain after it
        self.fallbacks += 1
        locked_stale, self.head = _write_locked(
            [events[index] for index in pending], [guards[index] for index in pending], using
        )
        return stale | {pending[index] for index in locked_stale}

    @staticmethod
    def _read_head(connection: Any) -> tuple[int, str, str] | None:
        table = AuditChainHead._meta.db_table
        rows = fetch_all(connection, f"SELECT last_seq, last_hash, head_mac FROM {table} WHERE id = 1", ())  # noqa: S608 - a table name from our models, no input
        return (int(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None


_FIND_EVENT = f"SELECT 1 FROM {AuditEvent._meta.db_table} WHERE event_id = %s"  # noqa: S608 - a table name from our models


def _once(
    batch: Sequence[dict[str, Any]], new: tuple[int, str]
) -> Callable[[Any, str, Any], list[tuple[Any, ...]]]:
    """Sends the batch statement; sent again (`fetch_on_first_use`: the connection died under the request's first
    statement), it is sent first and, if that wrote nothing, the batch's first event is looked for: the earlier
    sending may have committed before its answer was lost, or (the server still running it) only while the
    second waited for the head's lock, which it then found moved. Either way the batch is in the chain once: the
    answer is then "written", so no request of it is failed or served again when its event is already there."""
    sent = False

    def send(connection: Any, sql: str, params: Any) -> list[tuple[Any, ...]]:
        nonlocal sent
        if not sent:
            sent = True
            return fetch_all(connection, sql, params)
        rows = fetch_all(connection, sql, params)
        if (
            rows
            and int(rows[0][0]) < len(batch)
            and fetch_all(connection, _FIND_EVENT, [batch[0]["event_id"]])
        ):
            return [(len(batch), *rows[0][1:4], None)]
        return rows

    return send


_POSTGRES_CHAIN = _PostgresChain()


def write_batch(
    events: Sequence[dict[str, Any]], guards: Sequence[Guard] | None = None, using: str = DEFAULT_DB_ALIAS
) -> set[int]:
    """Append the events to the chain and commit them (the caller is in autocommit), but for those whose guard
    failed: their indexes are returned."""
    guards = guards or [None] * len(events)
    if connections[using].vendor == "postgresql":
        return _POSTGRES_CHAIN.write(events, using, guards)
    return _write_locked(events, guards, using)[0]


# --- Group commit ------------------------------------------------------------------------------------------


class _Pending:
    __slots__ = ("done", "error", "guard", "leads", "values", "woken")

    def __init__(self, values: dict[str, Any], guard: Guard) -> None:
        self.values = values
        self.guard = guard
        self.done = False
        self.leads = False  # handed the leadership: write the next batch
        self.error: BaseException | None = None
        # Held until its thread is woken, once: released by the leader (any thread may release a plain lock), so
        # the waiting thread's acquire returns. A threading.Event does the same through a Condition in Python
        # code, about 3 µs a request against 0.2 µs.
        self.woken = threading.Lock()
        self.woken.acquire()

    def wait(self) -> None:
        self.woken.acquire()

    def wake(self) -> None:
        self.woken.release()


class GroupCommit:
    """Leader/follower group commit of standalone events within one process (see the module docstring).

    Each waiting thread sleeps on its own lock, and is woken only when its event is written (or failed) or when
    it is handed the leadership: a leader wakes the threads of its batch and, if events are queued, the first of
    them to write the next batch. (A shared condition woke every waiting thread at each batch, most of them only to
    wait again: with eight threads a process, a herd of GIL hand-offs per batch.)
    """

    def __init__(
        self,
        write: Callable[[Sequence[dict[str, Any]], Sequence[Guard]], set[int]],
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._writing = False  # a leader is writing, or has been handed the leadership
        self.batches = 0
        self.events = 0

    def write(self, values: dict[str, Any], guard: Guard = None) -> None:
        """Return once `values` is durably part of the chain; raise what its write raised (`StaleRead` if its
        guard failed: then it was not written)."""
        pending = _Pending(values, guard)
        with self._lock:
            self._queue.append(pending)
            pending.leads = not self._writing
            self._writing = True
        if not pending.leads:
            pending.wait()
        if not pending.done:  # woken to lead: its event is first in the queue, so in the next batch
            self._lead()
        if pending.error is not None:
            raise pending.error

    def _lead(self) -> None:
        with self._lock:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        try:
            self._write_batch(batch)
        finally:
            for item in batch:
                if not item.leads:
                    item.wake()
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.leads = True
                    successor.wake()
                else:
                    self._writing = False

    def _write_batch(self, batch: list[_Pending]) -> None:
        try:
            self._left_out(
                batch, self._write([item.values for item in batch], [item.guard for item in batch])
            )
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
            else:
                logger.warning("A batch of %d audit events failed; writing them one by one", len(batch))
                for item in batch:
                    try:
                        self._left_out([item], self._write([item.values], [item.guard]))
                    except Exception as single:
                        item.error = single
        except BaseException as exc:  # interrupted (not an error of the events): none may pass as written
            for item in batch:
                item.error = item.error or exc
            raise
        finally:
            for item in batch:
                item.done = True
            self.batches += 1
            self.events += len(batch)

    @staticmethod
    def _left_out(batch: list[_Pending], stale: set[int]) -> None:
        for index in stale:
            batch[index].error = StaleRead()


_GROUP = GroupCommit(write_batch)


def write_standalone(values: dict[str, Any], using: str = DEFAULT_DB_ALIAS) -> None:
    """Write one standalone event: through the process's group commit in autocommit, else (inside a
    transaction) as part of that transaction. Raises `StaleRead`, writing nothing, if the running request is
    optimistic and a generation it relied on has moved."""
    guard = current_guard()
    if connections[using].in_atomic_block:
        with transaction.atomic(using):
            if guard and stale_generations(guard, using):
                raise StaleRead()
            insert_chained([values])
    else:
        _GROUP.write(values, guard)
