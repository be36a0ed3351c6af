"""Writers of standalone events (group commit, one statement per batch on PostgreSQL) across root-key rotations:
concurrent requests keep one chain while the ring rotates under them, a batch writer whose ring lacks the head's
key reads the ring again and otherwise fails closed, and writing after itself costs no HMAC beyond the links'."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections  # noqa: F401 - `connection` for the skipif condition

from kmsconsole.audit import checkpoint, headkeys, writer
from kmsconsole.audit.models import AuditChainHead, AuditEvent
from kmsconsole.audit.recorder import AuditRecord, audited
from kmsconsole.core import errors
from kmsconsole.core.context import RequestMeta
from kmsconsole.core.rootkey import root_keys
from tests.audit.rotation_support import key, link_key_ids, verify
from tests.audit.test_checkpoint import checkpoint_file  # noqa: F401 - the fixture
from tests.audit.test_group_commit import values
from tests.audit.test_turns import chain_on
from tests.conftest import RootKeyFile

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_writers_across_two_rotations_keep_one_chain(root_key_file: RootKeyFile) -> None:
    epochs = [root_keys().current.key_id]
    written, failures, stop = [0], [], threading.Event()
    lock = threading.Lock()

    def run() -> None:
        try:
            while not stop.is_set():
                writer.write_standalone(values())
                with lock:
                    written[0] += 1
        except Exception as exc:
            failures.append(exc)
        finally:
            connections.close_all()

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 60
        while written[0] < count and time.monotonic() < deadline and not failures:
            time.sleep(0.005)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        wait_for(30)
        epochs.append(root_key_file.rotate())  # while the threads write: this process reads the new ring
        wait_for(written[0] + 30)
        epochs.append(root_key_file.rotate())
        wait_for(written[0] + 30)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    total = AuditEvent.objects.count()
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, total + 1))
    # Each epoch in turn, never back: the links' keys only move forward.
    ids = link_key_ids()
    assert [epochs.index(key_id) for key_id in ids] == sorted(epochs.index(key_id) for key_id in ids)
    assert ids[0] == epochs[0] and ids[-1] == epochs[2] and epochs[1] in ids
    assert f"Audit chain intact: {total} events verified." in verify()


def test_a_batch_writer_whose_ring_lacks_the_heads_key_fails_closed_until_the_file_has_it(
    root_key_file: RootKeyFile,
) -> None:
    started_with = root_key_file.path.read_text()
    new = root_key_file.rotate()
    for _ in range(
        3
    ):  # the first creates the head (the locked path), the others go through the batch statement
        writer.write_standalone(values())
    rotated = root_key_file.path.read_text()
    root_key_file.write(started_with)
    head = AuditChainHead.objects.values().get()

    record = AuditRecord(operation="GenerateRandom", meta=RequestMeta(interface="kms"))
    with pytest.raises(errors.KMSInternalException), audited(record, standalone=True):
        record.authorized(allowed=True, reason="allowed by test")
    assert AuditEvent.objects.count() == 3 and AuditChainHead.objects.values().get() == head

    root_key_file.path.write_text(rotated)  # the process reads it again by itself at its next write
    writer.write_standalone(values())
    assert root_keys().current.key_id == new and link_key_ids() == [new] * 4
    assert "intact: 4 events" in verify()


def test_a_batch_writer_refuses_to_extend_a_head_under_a_retired_key(root_key_file: RootKeyFile) -> None:
    """The batch statement finds the head under a key it does not expect; the ring says retired: nothing written,
    even though this process remembers having written that very head under that key (since retired)."""
    old = root_keys().current.key_id
    for _ in range(3):
        writer.write_standalone(values())  # the head, remembered by this process under `old`
    head = AuditChainHead.objects.values().get()
    third = AuditEvent.objects.get(seq=3)
    root_key_file.rotate()
    for _ in range(2):
        writer.write_standalone(values())
    text = root_key_file.path.read_text().split()
    root_key_file.write("\n".join([text[0], "retired:" + text[1]]))
    assert key(old).retired
    # The retired key's holder puts the old, genuine head back (its MAC under `old`) after deleting #4 and #5.
    AuditEvent.objects.filter(seq__gt=3).delete()
    AuditChainHead.objects.filter(pk=1).update(last_seq=3, last_hash=third.hash, head_mac=head["head_mac"])
    for _ in range(2):  # a refused head is not remembered: refused again
        with pytest.raises(headkeys.ChainHeadUnderRetiredKey):
            writer.write_standalone(values())
    # A head this process remembers under a key retired since vouches for nothing either.
    headkeys.remember(key(old), 3, third.hash, head["head_mac"])
    with pytest.raises(headkeys.ChainHeadUnderRetiredKey):
        writer.write_standalone(values())
    assert AuditEvent.objects.count() == 3


def test_writing_after_itself_costs_no_check_of_the_head(
    root_key_file: RootKeyFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The head this process wrote last is remembered with its key: the next batch extends it with no HMAC of the
    head beyond its new MAC, also after a rotation (the remembered key is still readable), and moves forward."""
    writer.write_standalone(values())
    checks: list[int] = []
    real = headkeys.head_key
    monkeypatch.setattr(headkeys, "head_key", lambda *args: checks.append(1) or real(*args))
    for _ in range(5):
        writer.write_standalone(values())
    assert checks == []
    old = root_keys().current.key_id
    new = root_key_file.rotate()
    for _ in range(3):
        writer.write_standalone(values())
    assert checks == []  # the head it remembers is under the old key, still readable: the database compares
    assert link_key_ids() == [old] * 6 + [new] * 3


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="turns are taken by the PostgreSQL writer")
def test_a_writer_after_a_turn_of_a_process_with_a_newer_ring_follows_it(
    root_key_file: RootKeyFile, tmp_path: Path
) -> None:
    """Two processes of one host: the restarted one writes under the new key and leaves the head in the turn
    file; the other, never restarted, finds it there. The head's (seq, hash) match: only its MAC says that it is
    under a key the second process does not have, so the batch statement requires the MAC it expects."""
    started_with = root_key_file.path.read_text()
    old = root_keys().current.key_id
    not_restarted, restarted = chain_on(tmp_path / "turn.lock"), chain_on(tmp_path / "turn.lock")
    not_restarted.write([values()], "default")  # creates the head
    not_restarted.write([values()], "default")
    new = root_key_file.rotate()
    restarted.write([values()], "default")
    rotated = root_key_file.path.read_text()
    root_key_file.write(started_with)  # the other process's ring, as it read it at its start
    root_key_file.path.write_text(rotated)
    not_restarted.write([values()], "default")
    assert link_key_ids() == [old, old, new, new]
    assert "intact: 4 events" in verify()


def test_the_checkpoint_reseal_racing_a_verification_never_moves_the_file_back(
    root_key_file: RootKeyFile,
    checkpoint_file: Path,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`rootkey reseal` (one process) has read the checkpoint of the first verification and is about to write it
    again under the new key when a verification (a worker) records a newer one: the worker waits for the lock, and
    the file ends at the newer checkpoint, not the older. (A command-line verify writes an event of its own, after
    what it verified.)"""
    for _ in range(3):
        writer.write_standalone(values())
    verify()
    root_key_file.rotate()
    for _ in range(3):
        writer.write_standalone(values())
    newest = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    first_checkpoint = checkpoint.read_checkpoint()[0]
    assert newest is not None and first_checkpoint is not None and first_checkpoint.seq < newest
    verifications: list[threading.Thread] = []
    real_under = checkpoint._under

    def under(*args: Any) -> bool:
        if not verifications:  # the reseal has read the file: a worker's verification starts meanwhile
            worker = threading.Thread(target=lambda: (verify(), connections.close_all()))
            verifications.append(worker)
            worker.start()
            worker.join(timeout=1.0)  # it would be done by now, had nothing held it back
        return real_under(*args)

    monkeypatch.setattr(checkpoint, "_under", under)
    assert checkpoint.reseal_checkpoint(root_keys()) is True
    verifications[0].join(timeout=30)
    assert not verifications[0].is_alive()
    recorded, problem = checkpoint.read_checkpoint()
    assert problem is None and recorded is not None and recorded.seq == newest
