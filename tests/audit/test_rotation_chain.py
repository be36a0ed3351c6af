"""The audit chain across root-key rotations (kmsconsole.audit.chain, kmsconsole.audit.writer): links are made
under the current key and verified epoch by epoch, so a chain across rotations verifies, old events stay
verifiable once their key is retired, and whoever still holds a previous or a retired key can neither link an
event after the chain moved past that key nor rewind the head to behind a newer key's event that stays. (Deleting
everything written since the rotation and MACing the head under the previous key is the checkpoint's to name:
tests/audit/test_rotation_anchors.py.) A writer never moves the chain back: one whose ring lacks the head's key
reads the ring again, fails closed if that does not help, and refuses a head under a retired key."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.core.management import CommandError

from kmsconsole.audit import headkeys
from kmsconsole.audit.chain import ChainWalk
from kmsconsole.audit.models import AuditChainHead, AuditEvent
from kmsconsole.audit.verification import verify_periodically
from kmsconsole.core import errors
from kmsconsole.core.rootkey import root_keys
from policies import services
from policies.models import IamGroup
from tests.audit.rotation_support import (
    FIELDS,
    head_mac_under,
    key,
    link_key_ids,
    relink,
    retire_previous,
    set_head,
    verify,
    write_events,
)
from tests.conftest import RootKeyFile, as_operator

pytestmark = pytest.mark.django_db


def rotated_chain(root_key_file: RootKeyFile, *counts: int) -> list[str]:
    """Events in epochs: `counts[0]` under the key the test starts with, then a rotation before each next count.
    Returns the epochs' key ids, oldest first."""
    epochs = [root_keys().current.key_id]
    write_events(counts[0])
    for count in counts[1:]:
        epochs.append(root_key_file.rotate())
        write_events(count)
    return epochs


def test_a_chain_across_two_rotations_verifies(root_key_file: RootKeyFile) -> None:
    first, second, third = rotated_chain(root_key_file, 3, 3, 2)
    assert link_key_ids() == [first] * 3 + [second] * 3 + [third] * 2
    assert "Audit chain intact: 8 events verified." in verify()
    # The dashboard's state comes from the workers' runs of the same verification.
    run = verify_periodically()
    assert (run.status, run.events_verified) == ("intact", 9)  # and the command-line verify's own event


def test_old_events_still_verify_once_their_keys_are_retired(root_key_file: RootKeyFile) -> None:
    first, second, _third = rotated_chain(root_key_file, 2, 2, 1)
    retire_previous(root_key_file)
    assert [k.key_id for k in root_keys().retired] == [second, first]
    assert "Audit chain intact: 5 events verified." in verify()
    assert verify_periodically().status == "intact"


@pytest.mark.parametrize("retired", [False, True], ids=["previous-key", "retired-key"])
def test_an_event_after_the_switch_relinked_under_an_older_key_is_named(
    root_key_file: RootKeyFile, retired: bool
) -> None:
    old, new = rotated_chain(root_key_file, 3, 3)
    if retired:
        retire_previous(root_key_file)
    # Whoever holds the old key changes the newest event, links it again and MACs the head under that key.
    forged = relink(6, key(old), error_message="nothing happened")
    set_head(6, forged, key(old))
    target = AuditEvent.objects.get(seq=6)
    with pytest.raises(CommandError) as raised:
        verify()
    problem = str(raised.value)
    if retired:
        assert f"event #6 (): the chain head's MAC is under a retired root key ({old})" in problem
    else:
        assert (
            f"event #6 ({target.event_id}): it is linked under an older root key ({old}) than the event before "
            f"it ({new})"
        ) in problem
    # The link itself is refused, whatever the head says.
    link = ChainWalk().events(AuditEvent.objects.order_by("seq").values(*FIELDS))
    assert link is not None and (link.seq, link.event_id) == (6, str(target.event_id))
    assert f"older root key ({old})" in link.what


def test_a_head_remaced_under_a_retired_key_is_refused(root_key_file: RootKeyFile) -> None:
    old, _new = rotated_chain(root_key_file, 3, 3)
    retire_previous(root_key_file)
    # An old, genuine head put back after the newer events were deleted, or one MACed by the retired key's holder.
    third = AuditEvent.objects.get(seq=3)
    AuditEvent.objects.filter(seq__gt=3).delete()
    set_head(3, third.hash, key(old))
    with pytest.raises(
        CommandError, match=rf"#3 \(\): the chain head's MAC is under a retired root key \({old}\)"
    ):
        verify()


def test_a_writer_refuses_to_extend_a_head_under_a_retired_key(
    root_key_file: RootKeyFile, account: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The holder of a retired key rewinds the chain and MACs the head under that key. The verifier refuses that
    head; the writer must too, or the next event (under the current key) would make the rewound chain verify."""
    old, _new = rotated_chain(root_key_file, 3, 3)
    # The procedure done right: rotated, the head moved by the events after it, the old key retired.
    retire_previous(root_key_file)
    third = AuditEvent.objects.get(seq=3)
    AuditEvent.objects.filter(seq__gt=3).delete()
    set_head(3, third.hash, key(old))
    head = AuditChainHead.objects.values().get()

    with pytest.raises(headkeys.ChainHeadUnderRetiredKey):
        write_events(1)
    with pytest.raises(errors.KMSInternalException):
        group_create(account, "refused")  # a change: its event in its transaction
    assert AuditEvent.objects.count() == 3 and AuditChainHead.objects.values().get() == head
    assert not IamGroup.objects.filter(name="refused").exists()
    assert f"under a retired root key ({old})" in caplog.text and head["head_mac"] not in caplog.text
    with pytest.raises(CommandError, match="retired root key"):
        verify()


def test_a_head_rewound_under_a_previous_key_behind_its_last_event_is_refused(
    root_key_file: RootKeyFile,
) -> None:
    old, new = rotated_chain(root_key_file, 3, 3)
    fifth = AuditEvent.objects.get(seq=5)
    AuditEvent.objects.filter(seq=6).delete()
    set_head(5, fifth.hash, key(old))  # the previous key still MACs heads, but not one behind a newer link
    with pytest.raises(CommandError) as raised:
        verify()
    assert (
        f"event #5 ({fifth.event_id}): the chain head's MAC is under an older root key ({old}) than its last "
        f"event's ({new}): it was rewound"
    ) in str(raised.value)


def test_a_writer_not_restarted_after_a_rotation_follows_the_chain_forward(
    root_key_file: RootKeyFile,
) -> None:
    """Another process moved the chain to the new key; this one still has the ring it read at its start. It reads
    the file again and links under the new key, never under its old current one."""
    started_with = root_key_file.path.read_text()
    old, new = rotated_chain(root_key_file, 2, 2)  # the other process's events, under the new key
    rotated = root_key_file.path.read_text()
    root_key_file.write(started_with)  # this process's ring, as it read it before the rotation...
    root_key_file.path.write_text(rotated)  # ...while the file holds the new one
    assert root_keys().current.key_id == old
    write_events(1)
    assert root_keys().current.key_id == new
    assert link_key_ids() == [old, old, new, new, new]
    assert "intact: 5 events" in verify()


def stale_ring(root_key_file: RootKeyFile, *counts: int) -> list[str]:
    """`rotated_chain` written by another process; this one still has the ring it read before the rotation, and
    has not looked at the file since (it does every RECHECK_SECONDS, or when it meets an unknown key)."""
    started_with = root_key_file.path.read_text()
    epochs = rotated_chain(root_key_file, *counts)
    rotated = root_key_file.path.read_text()
    root_key_file.write(started_with)
    root_key_file.path.write_text(rotated)
    assert root_keys().current.key_id == epochs[0]
    return epochs


def test_a_verifier_not_restarted_after_a_rotation_takes_up_the_new_ring(root_key_file: RootKeyFile) -> None:
    """A head and links under a key the verifier has not read yet are not a broken chain: it looks at the file."""
    _old, new = stale_ring(root_key_file, 2, 2)
    run = verify_periodically()
    assert (run.status, run.events_verified, run.problem) == ("intact", 4, "")
    assert root_keys().current.key_id == new


def test_a_walk_that_takes_up_a_new_ring_keeps_its_epoch(root_key_file: RootKeyFile) -> None:
    """A walk that began before the rotation (a round of the verification) and meets the new key in a later round:
    the ring it takes up lists the keys in another order, and the epoch it reached still binds by key id."""
    old, new = stale_ring(root_key_file, 3, 1)
    events = list(AuditEvent.objects.order_by("seq").values(*FIELDS))
    walk = ChainWalk()
    # The first round saw the head at #2 (under the old key, the only one this process had).
    assert (
        walk.up_to_head(events[:2], 2, events[1]["hash"], head_mac_under(key(old), 2, events[1]["hash"]))
        is None
    )
    assert walk.epoch == old
    head = AuditChainHead.objects.get()
    assert walk.up_to_head(events[2:], head.last_seq, head.last_hash, head.head_mac) is None  # #3 old, #4 new
    assert (walk.epoch, walk.ring.current.key_id) == (new, new)


def group_create(account: Any, name: str) -> Any:
    return as_operator(
        "iam:CreateGroup", lambda ctx: services.group_create(ctx=ctx, account=account, group_name=name)
    )


def test_a_writer_whose_ring_lacks_the_heads_key_fails_closed_until_the_file_has_it(
    root_key_file: RootKeyFile, account: Any, caplog: pytest.LogCaptureFixture
) -> None:
    started_with = root_key_file.path.read_text()
    _old, new = rotated_chain(root_key_file, 1, 2)
    rotated = root_key_file.path.read_text()
    root_key_file.write(started_with)  # the process and its file both lack the key the head is under
    head = AuditChainHead.objects.values().get()
    count = AuditEvent.objects.count()
    caplog.set_level(logging.INFO)

    with pytest.raises(errors.KMSInternalException):
        group_create(account, "refused")  # a change: its event in its transaction (the locked path)
    with pytest.raises(headkeys.ChainHeadUnderUnknownKey):
        write_events(1)
    # Nothing half-written: no group, no event, the head where it was.
    assert not IamGroup.objects.filter(name="refused").exists()
    assert AuditEvent.objects.count() == count and AuditChainHead.objects.values().get() == head
    assert "under no root key this process has" in caplog.text
    assert head["head_mac"] not in caplog.text and head["last_hash"] not in caplog.text
    # Every request fails on that head: logged once, not once a request.
    for _ in range(3):
        with pytest.raises(headkeys.ChainHeadUnderUnknownKey):
            write_events(1)
    refusals = [r for r in caplog.records if "under no root key this process has" in r.getMessage()]
    assert [r.levelno for r in refusals] == [logging.ERROR]

    root_key_file.path.write_text(rotated)  # the operator puts the key back; the process reads it by itself
    group_create(account, "accepted")
    assert IamGroup.objects.filter(name="accepted").exists()
    assert root_keys().current.key_id == new and link_key_ids()[-1] == new
    assert "intact" in verify()
