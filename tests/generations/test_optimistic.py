"""Optimistic snapshots: a request served from the caches reads no generation before it decides; its audit write
checks every generation it relied on, writes nothing if one has moved (or a trigger is missing), and the request
is served again from the database. So a change that commits between a request's decision and its audit write is
still seen by that request, and nothing is answered or recorded from the stale decision.

The writer's side (guards in the batch statement, in the locked path, inside a transaction) is tested on the
writer directly; the endpoint's side over boto3 against the live test server, whose audit writer is patched to
make a change at the worst moment: after the decision, before the write."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from keys.models import Key
from kmsconsole.audit import writer
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core import ratelimit
from kmsconsole.generations import cache, triggers
from kmsconsole.generations.cache import GenerationSnapshot, StaleRead, request_snapshot
from kmsconsole.generations.models import Generation
from kmsconsole.generations.scopes import bump, iam_scope, key_scope
from tests.audit.test_group_commit import _queue_behind_a_slow_batch, values
from tests.conftest import ALLOW_ALL, Persona, postgresql_only
from tests.generations.conftest import Servers
from tests.generations.test_invalidation import outcome

pytestmark = pytest.mark.django_db(transaction=True)

SCOPE = "key:" + "c" * 32
# The one-statement batch is PostgreSQL's (the suite runs on PostgreSQL in CI; SQLite takes the locked path).


def current(scope: str) -> int:
    return Generation.objects.get(scope=scope).value


def assert_chain_intact(capsys: pytest.CaptureFixture[str], events: int) -> None:
    call_command("audit", "verify")
    assert f"intact: {events} events" in capsys.readouterr().out


def written_operations() -> list[str]:
    return list(AuditEvent.objects.order_by("seq").values_list("operation", flat=True))


# --- The snapshot ---------------------------------------------------------------------------------------


def test_an_optimistic_snapshot_takes_entries_at_their_word_and_guards_them() -> None:
    bump(SCOPE)
    built: cache.GenerationalCache[str, str] = cache.GenerationalCache("optimistic", maxsize=4)
    built.put("entry", "value", ((SCOPE, current(SCOPE)),))
    snapshot = GenerationSnapshot(optimistic=True)
    snapshot.want(SCOPE, "iam:111122223333")
    assert built.get("entry", snapshot) == "value"
    assert snapshot.queries == 0  # nothing read before the decision
    # A miss reads the generations it builds under, but never re-reads one the request already relied on.
    bump(SCOPE)
    assert snapshot.value("iam:111122223333") == 0 and snapshot.queries == 1
    assert snapshot.value(SCOPE) != current(SCOPE)
    assert snapshot.guard() == (("iam:111122223333", 0), (SCOPE, built.peek("entry")[0][0][1]))  # type: ignore[index]
    # A snapshot that reads first has no guard, and checks the entry against the database.
    reading = GenerationSnapshot()
    assert reading.guard() is None and built.get("entry", reading) is None and reading.queries == 1


# --- The writer -----------------------------------------------------------------------------------------


@pytest.fixture(params=["one statement", "locked"])
def write(request: pytest.FixtureRequest) -> Callable[..., set[int]]:
    """The batch writer: PostgreSQL's one statement (when the tests run on PostgreSQL), and the locked path that
    SQLite and a batch that keeps losing its race take."""
    if request.param == "locked":
        return lambda events, guards: writer._write_locked(events, guards)[0]
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement batch is PostgreSQL's")
    return lambda events, guards: writer.write_batch(events, guards)


def test_an_event_whose_guard_fails_is_left_out_and_the_rest_are_written(
    write: Callable[..., set[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    bump(SCOPE)
    now = current(SCOPE)
    events = [values("held"), values("stale"), values("unguarded"), values("unknown scope")]
    guards = [((SCOPE, now),), ((SCOPE, now + 1), ("iam:1", 0)), None, (("key:" + "d" * 32, 0),)]
    assert write(events, guards) == {1}
    assert written_operations() == ["held", "unguarded", "unknown scope"]
    assert_chain_intact(capsys, 3)
    # Every guard failing writes nothing, and leaves the head where it was.
    assert write([values("late")], [((SCOPE, now - 1),)]) == {0}
    assert write([values("after")], [None]) == set()
    # The verification is itself an event, written after the three it walked.
    assert written_operations() == [
        "held",
        "unguarded",
        "unknown scope",
        "kmsconsole:VerifyAuditChain",
        "after",
    ]
    assert_chain_intact(capsys, 5)


@pytest.fixture
def a_trigger_dropped() -> Iterator[None]:
    """One generation trigger dropped (every one is back afterwards, and this process's caches on)."""
    watch = triggers.WATCHES[0]
    name = triggers._name(watch, watch.events[0])
    with connection.cursor() as cursor:
        on_table = f" ON {watch.table()}" if connection.vendor == "postgresql" else ""
        cursor.execute(f"DROP TRIGGER {name}{on_table}")
    yield
    triggers.install_triggers("default")
    cache._enabled.clear()


@pytest.mark.usefixtures("a_trigger_dropped")
def test_a_missing_trigger_fails_every_guard(write: Callable[..., set[int]]) -> None:
    bump(SCOPE)
    guards = [((SCOPE, current(SCOPE)),), None, ((SCOPE, current(SCOPE)),)]
    assert write([values("a"), values("b"), values("c")], guards) == {0, 2}
    assert written_operations() == ["b"]


def test_a_stale_request_is_told_and_nothing_is_written() -> None:
    """Through `write_standalone`, as a request writes: in autocommit (the group commit) and inside a transaction."""
    bump(SCOPE)
    for in_transaction in (False, True):
        with request_snapshot(optimistic=True) as snapshot:
            assert snapshot is not None
            snapshot.holds(SCOPE, current(SCOPE) + 1)  # an entry built before a change this process missed
            with pytest.raises(StaleRead):
                if in_transaction:
                    with transaction.atomic():
                        writer.write_standalone(values())
                else:
                    writer.write_standalone(values())
        with request_snapshot(optimistic=True) as snapshot:
            assert snapshot is not None and snapshot.holds(SCOPE, current(SCOPE))
            writer.write_standalone(values())
    assert written_operations() == ["Encrypt", "Encrypt"]


def test_a_stale_event_in_a_batch_that_failed_is_still_left_out() -> None:
    """A failed batch is written again one event at a time: a stale event there is left out as in the batch."""
    calls: list[list[str]] = []

    def write(events: Sequence[dict[str, Any]], guards: Sequence[writer.Guard]) -> set[int]:
        names = [event["operation"] for event in events]
        calls.append(names)
        if "bad" in names:
            raise RuntimeError("refused")
        return {index for index, guard in enumerate(guards) if guard == (("stale", 1),)}

    group = writer.GroupCommit(write)
    outcomes: dict[str, str] = {}
    release, threads = _queue_behind_a_slow_batch(
        group, ["bad", "stale", "ok"], outcomes, guards={"stale": (("stale", 1),)}
    )
    release.set()
    for thread in threads:
        thread.join(10)
    assert outcomes == {"first": "written", "bad": "RuntimeError", "stale": "StaleRead", "ok": "written"}
    assert sorted(map(tuple, calls[2:])) == [("bad",), ("ok",), ("stale",)]  # the batch failed: one by one


@postgresql_only
def test_a_batch_that_loses_its_races_and_holds_stale_events(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stale events are left out at the statement that saw them, even when it lost its race; the rest are written
    by the locked path once the attempts are used up, and the chain holds."""
    bump(SCOPE)
    writer.write_batch([values("earlier")])
    monkeypatch.setattr(writer, "_OPTIMISTIC_ATTEMPTS", 1)
    chain = writer._PostgresChain()
    now = current(SCOPE)
    events = [values("a"), values("stale"), values("b")]
    guards = [((SCOPE, now),), ((SCOPE, now + 1),), None]
    # Where the head was before "earlier": the statement loses its race and reports the stale event.
    stale = chain._write(events, guards, "default", old=(0, writer.GENESIS_HASH))
    assert stale == {1} and chain.fallbacks == 1
    assert written_operations() == ["earlier", "a", "b"]
    assert_chain_intact(capsys, 3)


@postgresql_only
def test_a_batch_sent_again_after_it_went_in_is_not_written_twice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The connection died under the batch statement after it committed: it is sent again on a new connection, and
    another writer moved the head meanwhile. The batch is found in the chain, not written again, and none of its
    requests is told to start over."""
    from kmsconsole.audit.recorder import AuditRecord, append_event
    from kmsconsole.core.context import RequestMeta

    def answer_lost_then_sent_again(connection: Any, sql: str, params: Any, fetch: Any) -> Any:
        fetch(connection, sql, params)  # committed; its answer never arrives
        with transaction.atomic():  # a change's event moves the head
            record = AuditRecord(operation="CreateKey", meta=RequestMeta(interface="cli"))
            record.authorized(allowed=True, reason="operator")
            append_event(record, AuditEvent.Decision.ALLOWED)
        return fetch(connection, sql, params)

    bump(SCOPE)
    writer.write_batch([values("earlier")])
    monkeypatch.setattr(writer, "fetch_on_first_use", answer_lost_then_sent_again)
    assert writer.write_batch([values("a"), values("b")], [((SCOPE, current(SCOPE)),), None]) == set()
    assert written_operations() == ["earlier", "a", "b", "CreateKey"]
    assert_chain_intact(capsys, 4)


@postgresql_only
def test_a_batch_sent_again_while_its_first_sending_still_runs_is_written_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The connection looked dead under the batch statement, but the server still ran it: it commits only after
    the batch was sent again, before that second sending reaches the head (which it then finds moved, by this very
    batch). The batch is answered as written, not retried into a duplicate event or a failure."""
    from django.db import OperationalError

    real_fetch_all = writer.fetch_all
    in_flight: list[tuple[str, list[Any]]] = []

    def fetch_all(conn: Any, sql: str, params: Any) -> Any:
        if sql.startswith("WITH "):  # the batch statement
            if not in_flight:
                in_flight.append((sql, list(params)))  # sent; the answer never comes back
                raise OperationalError("server closed the connection unexpectedly")
            if in_flight[0]:
                real_fetch_all(conn, *in_flight[0])  # the first sending commits now
                in_flight[0] = ()  # type: ignore[assignment]
        return real_fetch_all(conn, sql, params)

    def sent_again_on_a_new_connection(conn: Any, sql: str, params: Any, fetch: Any) -> Any:
        try:
            return fetch(conn, sql, params)
        except OperationalError:
            return fetch(conn, sql, params)

    writer.write_batch([values("earlier")])
    monkeypatch.setattr(writer, "fetch_all", fetch_all)
    monkeypatch.setattr(writer, "fetch_on_first_use", sent_again_on_a_new_connection)
    assert writer.write_batch([values("a"), values("b")]) == set()
    assert written_operations() == ["earlier", "a", "b"]
    assert_chain_intact(capsys, 3)


# --- The endpoint ---------------------------------------------------------------------------------------


@pytest.fixture
def live(live_server: Any, settings: Any) -> Servers:
    settings.KMS_GRANT_PROPAGATION_SECONDS = 0
    return Servers("threads", live_server.url, live_server.url)


class _ChangeBeforeTheWrite:
    """Wraps the process's group commit: the first batch holding an event of `operation` by `caller_arn` first
    runs `change` (as another request would, between this request's decision and its audit write)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, caller_arn: str, change: Callable[[], None]) -> None:
        self.caller_arn, self.change = caller_arn, change
        self.armed = False
        self.guards: list[writer.Guard] = []
        self.left_out = 0
        self._real = writer._GROUP._write
        monkeypatch.setattr(writer._GROUP, "_write", self)

    def __call__(self, events: Sequence[dict[str, Any]], guards: Sequence[writer.Guard]) -> set[int]:
        ours = [
            guard
            for event, guard in zip(events, guards, strict=True)
            if event["caller_arn"] == self.caller_arn
        ]
        self.guards += ours
        if self.armed and ours:
            self.armed = False
            self.change()
            stale = self._real(events, guards)
            self.left_out += len(stale)
            return stale
        return self._real(events, guards)


def _app_events(app: Persona) -> list[tuple[str, str, str]]:
    return list(
        AuditEvent.objects.filter(caller_arn=app.arn, operation="Encrypt")
        .order_by("seq")
        .values_list("decision", "error_code", "request_id")
    )


def test_a_cached_request_reads_no_generation_and_guards_what_it_used(
    live: Servers, make_user: Callable[..., Persona], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, app = make_user("admin", ALLOW_ALL), make_user("app", ALLOW_ALL)
    key_id = live.admin(admin).create_key()["KeyMetadata"]["KeyId"]
    client = live.user(app)
    watch = _ChangeBeforeTheWrite(monkeypatch, app.arn, lambda: None)
    reads: list[list[str]] = []
    real_read = GenerationSnapshot._read
    monkeypatch.setattr(
        GenerationSnapshot,
        "_read",
        lambda self, scopes: reads.append(sorted(scopes)) or real_read(self, scopes),
    )
    for _ in range(3):
        client.encrypt(KeyId=key_id, Plaintext=b"x")
    reads.clear()
    client.encrypt(KeyId=key_id, Plaintext=b"x")
    assert reads == []
    scopes = {scope for scope, _ in watch.guards[-1] or ()}
    assert {key_scope(Key.objects.get(key_id=key_id).key_id), iam_scope(app.arn.split(":")[4])} <= scopes


@pytest.mark.parametrize("direction", ["disabled", "enabled"])
def test_a_change_between_the_decision_and_the_audit_write_decides(
    direction: str,
    live: Servers,
    make_user: Callable[..., Persona],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin, app = make_user("admin", ALLOW_ALL), make_user("app", ALLOW_ALL)
    admin_client = live.admin(admin)
    key_id = admin_client.create_key()["KeyMetadata"]["KeyId"]
    client = live.user(app)
    encrypt = lambda: outcome(lambda: client.encrypt(KeyId=key_id, Plaintext=b"x"))  # noqa: E731
    if direction == "enabled":
        admin_client.disable_key(KeyId=key_id)
        change, before, after = (lambda: admin_client.enable_key(KeyId=key_id)), "DisabledException", "ok"
    else:
        change, before, after = (lambda: admin_client.disable_key(KeyId=key_id)), "ok", "DisabledException"
    watch = _ChangeBeforeTheWrite(monkeypatch, app.arn, change)
    for _ in range(3):
        assert encrypt() == before  # now cached
    events_before = _app_events(app)
    spent: list[tuple[str, str]] = []
    real_spend = ratelimit.spend_quota
    monkeypatch.setattr(ratelimit, "spend_quota", lambda *args: spent.append(args) or real_spend(*args))
    watch.armed = True
    with caplog.at_level(logging.INFO, logger="kmsconsole.awskms.views"):
        # Decided as `before` from the cache, then the change committed: served again.
        assert encrypt() == after
    assert watch.left_out == 1
    served_again = [record.getMessage() for record in caplog.records if "served again" in record.getMessage()]
    assert len(served_again) == 1 and served_again[0].startswith("Encrypt ")  # operators see the churn
    # Served twice, counted once against the account's quota (the admin's change is counted too: no quota there).
    assert [call for call in spent if call[1] == "Encrypt"] == [(app.arn.split(":")[4], "Encrypt")]
    events = _app_events(app)[len(events_before) :]
    assert len(events) == 1  # one event for the request, recording what it was answered
    decision, error_code, _ = events[0]
    assert (decision, error_code) == (("allowed", "") if after == "ok" else ("failed", "DisabledException"))
    call_command("audit", "verify")


def test_a_throttled_request_is_refused_as_what_the_database_says_the_caller_is(
    make_user: Callable[..., Persona], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A throttled request may be answered with no event, so with no guard checked: an optimistic attempt must not
    throttle a caller it authenticated from the caches (an access key deactivated since is unrecognized, not
    throttled)."""
    from policies import services as iam
    from policies.models import Account
    from tests.conftest import as_operator
    from tests.security.test_rate_limits import aws_error, send

    admin, app = make_user("admin", ALLOW_ALL), make_user("app", ALLOW_ALL)
    key_id = json.loads(send(admin, "CreateKey").content)["KeyMetadata"]["KeyId"]
    encrypt = {"KeyId": key_id, "Plaintext": "aGVsbG8="}
    for _ in range(2):
        assert send(app, "Encrypt", encrypt).status_code == 200  # the app's credentials are cached now
    monkeypatch.setattr(ratelimit.QuotaCounters, "spend", lambda *args, **kwargs: False)  # quota spent
    assert aws_error(send(app, "Encrypt", encrypt)) == "ThrottlingException"
    as_operator(
        "iam:UpdateAccessKey",
        lambda ctx: iam.access_key_set_status(
            ctx=ctx,
            account=Account.objects.get(account_id=app.arn.split(":")[4]),
            access_key_id=app.access_key_id,
            status="Inactive",
        ),
    )
    assert aws_error(send(app, "Encrypt", encrypt)) == "UnrecognizedClientException"


@postgresql_only
def test_the_guard_looks_each_scope_up_by_index_however_many_keys_there_are() -> None:
    """The batch statement's guard reads the few generations its events relied on, never the whole table: at
    10,000 keys a join planned as a hash join over a sequential scan of every key's generation cost 1.1 ms a batch
    and a fifth of the throughput."""
    Generation.objects.bulk_create(
        [Generation(scope=f"key:{index:032x}", value=index + 1) for index in range(20_000)]
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Generation._meta.db_table}")
        sql, pattern, expected = cache.guard_sql("postgresql")
        pairs = json.dumps(
            [{"s": f"key:{index:032x}", "v": index + 1} for index in (7, 19_000)]
            + [{"s": iam_scope("111122223333"), "v": 5}]
        )
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", [pairs, pattern, expected])
        plan = json.dumps(cursor.fetchone()[0])
        cursor.execute(sql, [pairs, pattern, expected])
        stale = cursor.fetchall()
    assert Generation._meta.db_table not in _seq_scanned(json.loads(plan))
    assert stale == [(iam_scope("111122223333"), 5)]  # the one pair whose generation is not current


@postgresql_only
def test_the_prepared_batch_statements_generic_plan_looks_each_scope_up_by_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The audit writer's batch statement is prepared once per connection (kmsconsole.core.prepared), and after a
    few runs PostgreSQL may keep a generic plan, made without the parameters' values: that plan too reads the few
    generations its events relied on by index, never the whole table (a join was planned as a hash join over a
    sequential scan of every key's generation)."""
    Generation.objects.bulk_create(
        [Generation(scope=f"key:{index:032x}", value=index + 1) for index in range(20_000)]
    )
    bump(SCOPE)
    writer.write_batch([values("earlier")])  # the chain's head exists: the next batch is one statement
    sent: set[str] = set()
    real = writer.fetch_on_first_use

    def spy(connection: Any, sql: str, params: Any, fetch: Any) -> Any:
        sent.add(sql)
        return real(connection, sql, params, fetch)

    monkeypatch.setattr(writer, "fetch_on_first_use", spy)
    guard = ((SCOPE, current(SCOPE)), (f"key:{7:032x}", 8))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Generation._meta.db_table}")
    assert writer.write_batch([values("guarded")], [guard]) == set()  # prepared and run on this connection
    assert written_operations() == ["earlier", "guarded"]
    (statement,) = sent
    with connection.cursor() as cursor:
        # The statement as the writer prepared it on this connection (its placeholders numbered: $1, $2, ...).
        cursor.execute(
            "SELECT name, statement, parameter_types::text[] FROM pg_prepared_statements WHERE NOT from_sql"
        )
        ((name, types),) = [
            (row[0], row[2]) for row in cursor.fetchall() if re.sub(r"\$\d+", "%s", row[1]) == statement
        ]
        # Values to run it with: the generic plan depends on none of them.
        arguments = [_ANY_VALUES[kind] for kind in types]
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        try:
            cursor.execute(
                f"EXPLAIN (FORMAT JSON) EXECUTE {name}({', '.join(['%s'] * len(arguments))})", arguments
            )
            plan = cursor.fetchone()[0]
        finally:
            cursor.execute("RESET plan_cache_mode")
    assert _MARK not in json.dumps(plan), "a generic plan: no parameter's value is in it"
    assert Generation._meta.db_table not in _seq_scanned(plan), json.dumps(plan, indent=1)


# A text that a custom plan, made for the values given, would show where the statement compares with a parameter.
_MARK = "given-value"
# A value of each type the batch statement's parameters have (as literals the server casts to them).
_ANY_VALUES = {
    "bigint": 1,
    "integer": 1,
    "text": _MARK,
    "character varying": _MARK,
    "jsonb": "[]",
    "uuid": "00000000-0000-0000-0000-000000000000",
    "timestamp with time zone": "2026-01-01T00:00:00Z",
    "boolean": False,
}


def _seq_scanned(plan: Any) -> set[str]:
    """The tables a JSON plan reads by sequential scan."""
    found: set[str] = set()
    nodes = [plan]
    while nodes:
        node = nodes.pop()
        if isinstance(node, list):
            nodes.extend(node)
        elif isinstance(node, dict):
            if node.get("Node Type") == "Seq Scan":
                found.add(node.get("Relation Name", ""))
            nodes.extend(node.values())
    return found
