"""The processes of one host take turns at the audit chain head (kmsconsole.audit.turns): writers that share the
turn file never lose a race to each other; the head they pass along is only a hint (a forged or stale one costs a
retry, never a broken chain); a turn held too long is skipped; without a usable file, writing goes on.

Two `HostTurns` on the same file exclude each other exactly as two processes do (flock locks belong to the open
file, and each opens its own), so each writer here is a `_PostgresChain` with its own `HostTurns`, as in one web
worker, on its own thread and database connection."""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections

from kmsconsole.audit import turns, writer
from kmsconsole.audit.models import AuditEvent
from tests.audit.test_group_commit import values

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'", reason="turns are taken by the PostgreSQL writer"
    ),
]


def chain_on(path: Path) -> writer._PostgresChain:
    """A writer as one process has it: its own turns on the shared file."""
    host_turns = turns.HostTurns(path)
    return writer._PostgresChain(turns_for=lambda _using: host_turns)


def write_from_threads(chains: list[writer._PostgresChain], per_chain: int) -> None:
    start = threading.Barrier(len(chains))
    failures: list[BaseException] = []

    def run(chain: writer._PostgresChain) -> None:
        start.wait()
        try:
            for _ in range(per_chain):
                chain.write([values()], "default")
        except BaseException as exc:
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(chain,)) for chain in chains]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def assert_chain_intact(count: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, count + 1))
    call_command("audit", "verify")
    assert f"Audit chain intact: {count} events verified." in capsys.readouterr().out


def test_writers_taking_turns_never_lose_a_race_to_each_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(turns, "TURN_WAIT_SECONDS", 60.0)  # a loaded machine must not skip a turn here
    path = tmp_path / "turn.lock"
    chains = [chain_on(path) for _ in range(3)]
    chains[0].write(
        [values()], "default"
    )  # creates the head row (the locked path), so every write below races
    write_from_threads(chains, per_chain=40)
    assert sum(chain.lost_races for chain in chains) == 0
    assert sum(chain.fallbacks for chain in chains) == 1  # only the very first event (no head row yet)
    assert sum(chain._turns_for("default").turns for chain in chains) == 121
    assert_chain_intact(121, capsys)


def test_without_shared_turns_a_writer_with_a_stale_head_loses_a_race(tmp_path: Path) -> None:
    """The control for the test above and the next: the same writers, each with its own turn file, race."""
    first, second = chain_on(tmp_path / "first.lock"), chain_on(tmp_path / "second.lock")
    first.write([values()], "default")
    second.write([values()], "default")
    first.write([values()], "default")  # its own head is one event old and nobody told it
    assert (first.lost_races, second.lost_races) == (1, 0)
    assert AuditEvent.objects.count() == 3


def test_the_head_passed_along_saves_the_read(tmp_path: Path) -> None:
    """The next holder starts where the last one left the head: no lost race, although its own idea is stale."""
    path = tmp_path / "turn.lock"
    first, second = chain_on(path), chain_on(path)
    first.write([values()], "default")
    second.write([values()], "default")
    first.write([values()], "default")  # its own head is two events old; the file says where the head is now
    assert first.lost_races == second.lost_races == 0
    assert first.head is not None and first.head[0] == 3
    assert path.read_text().split() == [str(first.head[0]), first.head[1]]


@pytest.mark.parametrize(
    ("hint", "lost_races"),
    [
        ("7 " + "0" * 64, 1),  # well-formed, wrong seq: the database refuses it, the writer retries
        ("2 " + "f" * 64, 1),  # well-formed, wrong hash
        ("99999999999999999999 " + "a" * 64, 0),  # beyond PostgreSQL's bigint: not a hint at all
        ("-3 " + "a" * 64, 0),
        ("2 " + "A" * 64, 0),
        ("not a head", 0),
        ("\x00" * 40, 0),
    ],
)
def test_a_wrong_hint_costs_a_retry_never_a_request_or_the_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hint: str, lost_races: int
) -> None:
    path = tmp_path / "turn.lock"
    chain = chain_on(path)
    chain.write([values()], "default")
    chain.write([values()], "default")
    path.write_text(hint)
    chain.write([values()], "default")
    chain.write([values()], "default")
    assert chain.lost_races == lost_races
    assert_chain_intact(4, capsys)


def test_a_turn_held_too_long_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(turns, "TURN_WAIT_SECONDS", 0.05)
    path = tmp_path / "turn.lock"
    chain = chain_on(path)
    chain.write([values()], "default")
    stuck = os.open(path, os.O_RDWR)  # another process, stuck while holding the turn
    try:
        fcntl.flock(stuck, fcntl.LOCK_EX)
        chain.write([values()], "default")
    finally:
        os.close(stuck)
    host_turns = chain._turns_for("default")
    assert (host_turns.turns, host_turns.skipped) == (1, 1)
    assert_chain_intact(2, capsys)


def _in_a_missing_directory(tmp_path: Path) -> Path:  # a read-only or absent data directory
    return tmp_path / "missing-directory" / "turn.lock"


def _symlink_to_a_key(
    tmp_path: Path,
) -> Path:  # planted at the predictable name: never followed, never written
    target = tmp_path / "root.key"
    target.write_bytes(b"precious")
    target.chmod(0o600)
    (tmp_path / "turn.lock").symlink_to(target)
    return tmp_path / "turn.lock"


def _made_by_someone_else(tmp_path: Path) -> Path:  # anyone could open it, lock it, forge the hint
    path = tmp_path / "turn.lock"
    path.write_text("")
    path.chmod(0o666)
    return path


UNUSABLE = {
    "missing-directory": _in_a_missing_directory,
    "symlink-planted": _symlink_to_a_key,
    "others-could-open": _made_by_someone_else,
}


@pytest.mark.parametrize("case", sorted(UNUSABLE))
def test_without_a_usable_turn_file_writing_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    chain = chain_on(UNUSABLE[case](tmp_path))
    for _ in range(3):
        chain.write([values()], "default")
    assert chain._turns_for("default").turns == 0
    assert_chain_intact(3, capsys)
    key = tmp_path / "root.key"
    assert not key.exists() or key.read_bytes() == b"precious"


def test_a_file_system_without_flock_means_no_turns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(turns.fcntl, "flock", no_locks)
    chain = chain_on(tmp_path / "turn.lock")
    chain.write([values()], "default")
    chain.write([values()], "default")
    host_turns = chain._turns_for("default")
    assert (host_turns.turns, host_turns._unusable) == (0, True)
    # Locks back before the verify: a command-line verify writes an event of its own through the service's writer,
    # which would otherwise give up its turns for the rest of this process.
    monkeypatch.undo()
    assert_chain_intact(2, capsys)


def test_a_forked_child_starts_with_its_own_file_and_lock(tmp_path: Path) -> None:
    """A child forked while a thread of the parent held the turn (its lock and the parent's open file) must not
    deadlock on that lock nor keep the parent's file, whose flock would then outlive the parent."""
    host_turns = turns.HostTurns(tmp_path / "turn.lock")
    with host_turns.turn() as turn:
        assert turn.held
        parent_fd = host_turns._fd
        pid = os.fork()
        if pid == 0:  # the child: report by exit status only, touch nothing else
            fresh = host_turns._fd is None and host_turns._threads.acquire(timeout=2)
            try:
                os.fstat(parent_fd)  # type: ignore[arg-type]
                closed = False
            except OSError:
                closed = True
            os._exit(0 if fresh and closed else 1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_each_database_has_its_own_turn_file(tmp_path: Path) -> None:
    assert turns.turn_file(tmp_path, {"NAME": "a"}) != turns.turn_file(tmp_path, {"NAME": "b"})
    assert turns.turn_file(tmp_path, {"NAME": "a", "HOST": "h"}) == turns.turn_file(
        tmp_path, {"NAME": "a", "HOST": "h"}
    )


def test_the_service_writer_takes_turns_on_its_database() -> None:
    writer.write_standalone(values())
    host_turns = writer._host_turns("default")
    assert host_turns.path == turns.turn_file(settings.KMS_DATA_DIR, connection.settings_dict)
    before = host_turns.turns
    writer.write_standalone(values())
    assert host_turns.turns == before + 1
