"""The audit trail's anchors across root-key rotations: the retention boundary, the archive manifests and the
checkpoint verify under readable keys (manifests under retired ones too: kmsconsole.audit.retention explains
why), are written under the current key, and are what the trail registers as root-key dependents
(kmsconsole.audit.rootkeys) for `rootkey status`, `reseal` and `retire`."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError
from django.utils import timezone

from kmsconsole.audit import retention
from kmsconsole.audit.checkpoint import read_checkpoint, reseal_checkpoint
from kmsconsole.audit.models import AuditChainBase, AuditEvent, ChainVerification
from kmsconsole.audit.verification import base_mac, verify_periodically
from kmsconsole.core.rootkey import root_keys
from kmsconsole.core.rootkey_dependents import Moved, dependents
from tests.audit.dashboard_support import append, event_values, hours_ago
from tests.audit.rotation_support import (
    key,
    link_key_ids,
    link_under,
    relink,
    retire_previous,
    set_head,
    verify,
    write_events,
)
from tests.audit.test_checkpoint import checkpoint_file  # noqa: F401 - the fixture
from tests.audit.test_retention import DAYS, archive  # noqa: F401 - the fixture
from tests.conftest import RootKeyFile

pytestmark = pytest.mark.django_db


def dependent(name: str) -> Any:
    return next(d for d in dependents() if d.name == name)


def remaining(name: str) -> int:
    return int(dependent(name).remaining(root_keys()).count)


def reseal(name: str) -> Moved:
    moved: Moved = dependent(name).reseal(root_keys(), 100)
    return moved


def test_the_trails_anchors_are_registered_and_cheap(
    root_key_file: RootKeyFile,
    checkpoint_file: Path,  # noqa: F811 - the fixture
    django_assert_max_num_queries: Any,
) -> None:
    write_events(2)
    verify()
    names = [d.name for d in dependents()]
    assert {"audit chain head", "audit retention base", "audit checkpoint"} <= set(names)
    assert [remaining(name) for name in ("audit chain head", "audit checkpoint")] == [0, 0]
    root_key_file.rotate()
    with django_assert_max_num_queries(2):  # one row each, no walk
        assert [remaining(name) for name in ("audit chain head", "audit retention base")] == [1, 0]
    assert remaining("audit checkpoint") == 1
    # The head's re-seal MACs it again (its last link stays under the old key: a head may be newer, never older).
    assert reseal("audit chain head") == Moved(moved=1)
    assert (remaining("audit chain head"), reseal("audit chain head")) == (0, Moved())
    assert "intact: 3 events" in verify()  # the first verify's own event too
    write_events(1)
    assert remaining("audit chain head") == 0


def test_archive_and_boundary_across_a_rotation_and_after_retire(
    root_key_file: RootKeyFile,
    archive: Path,  # noqa: F811 - the fixture
) -> None:
    old = root_keys().current.key_id
    append(event_values(time=hours_ago(40 * 24 - i / 60)) for i in range(10))
    now = timezone.now()
    assert (
        retention.archive_due(now).processed == 10
    )  # the file, its manifest and the boundary: the old key's
    new = root_key_file.rotate()
    assert "Audit chain intact: 1 events verified after the archive's #10" in verify(
        "--archive", str(archive)
    )
    assert remaining("audit retention base") == 1
    assert reseal("audit retention base") == Moved(moved=1)
    assert (remaining("audit retention base"), reseal("audit retention base")) == (0, Moved())

    # A second run spans the rotation: the first run's own event (#11, the old key's), the verify's (#12) and ten
    # under the new key.
    append(event_values(time=hours_ago(1)) for _ in range(10))
    assert retention.archive_due(now + timedelta(days=DAYS + 1)).processed == 12
    second = json.loads(sorted(archive.iterdir())[-1].read_text().splitlines()[-1])["manifest"]
    assert (second["first_seq"], second["last_seq"]) == (11, 22)
    assert remaining("audit retention base") == 0  # moved by the run, under the new key
    assert link_key_ids() == [new]  # the second run's own event
    retire_previous(root_key_file)
    # The old manifest and the old links verify under the retired key; the boundary is under the current one.
    assert "22 events in 2 files, through #22" in verify("--archive", str(archive))
    assert old in [k.key_id for k in root_keys().retired]


def test_an_archive_written_under_a_key_the_verifier_has_not_read_yet_verifies(
    root_key_file: RootKeyFile,
    archive: Path,  # noqa: F811 - the fixture
) -> None:
    """Another process rotated the file and archived under the new key (manifest, boundary, links); this one has
    not looked at the file since: it does when it meets the manifest, instead of calling the archive altered."""
    started_with = root_key_file.path.read_text()
    new = root_key_file.rotate()
    append(event_values(time=hours_ago(40 * 24 - i / 60)) for i in range(5))
    assert retention.archive_due().processed == 5
    rotated = root_key_file.path.read_text()
    root_key_file.write(started_with)
    root_key_file.path.write_text(rotated)
    manifest = retention.read_manifest(next(archive.iterdir()))
    assert manifest is not None and retention.manifest_matches(manifest)
    assert root_keys().current.key_id == new
    assert "5 events in 1 files, through #5" in verify("--archive", str(archive))


def forge_after_boundary(seq: int, under: Any) -> None:
    """The holder of `under` replaces event #`seq` and everything after it by one forged event linked (with the
    head) under that key."""
    full = AuditEvent.objects.filter(seq=seq).values().get()
    full.pop("id")
    full["error_message"] = "forged"
    full["hash"] = link_under(under, full["prev_hash"], full)
    AuditEvent.objects.filter(seq__gte=seq).delete()
    AuditEvent.objects.create(**full)
    set_head(seq, full["hash"], under)


def test_the_archive_boundary_keeps_its_epoch(
    root_key_file: RootKeyFile,
    archive: Path,  # noqa: F811 - the fixture
) -> None:
    """Retention archived through a link under the new key: the walk from the boundary goes on in that epoch, so
    the previous key's holder cannot link events after it (as a whole walk would refuse)."""
    old = root_keys().current.key_id
    append(event_values(time=hours_ago(40 * 24 - i / 60)) for i in range(2))
    new = root_key_file.rotate()
    append(event_values(time=hours_ago(39 * 24 - i / 60)) for i in range(2))
    append(event_values(time=hours_ago(1)) for _ in range(2))
    assert retention.archive_due().processed == 4
    base = AuditChainBase.objects.get()
    assert (base.seq, base.key_id) == (4, new)
    assert "Audit chain intact: 3 events verified after the archive's #4" in verify("--archive", str(archive))

    forge_after_boundary(5, key(old))
    for extra in ((), ("--archive", str(archive))):
        with pytest.raises(
            CommandError, match=rf"older root key \({old}\) than the event before it \({new}\)"
        ):
            verify(*extra)
    # The epoch is under the boundary's MAC: a boundary that names another key (or none) is another message.
    AuditChainBase.objects.filter(pk=1).update(key_id=old)
    with pytest.raises(CommandError, match="the archive boundary was altered"):
        verify()
    # A boundary written before the epoch was kept (MACed over seq and hash only) still verifies alone; the
    # archive's walk carries the epoch it reached into the database's walk.
    AuditChainBase.objects.filter(pk=1).update(key_id="", mac=base_mac(4, base.hash))
    # The forged event and the three refused verifications' own events, linked after it under the current key.
    assert "Audit chain intact: 4 events verified" in verify()
    with pytest.raises(CommandError, match=rf"older root key \({old}\) than the event before it \({new}\)"):
        verify("--archive", str(archive))


def test_archiving_refuses_a_link_under_an_older_key_than_the_boundarys(
    root_key_file: RootKeyFile,
    archive: Path,  # noqa: F811 - the fixture
) -> None:
    old = root_keys().current.key_id
    append(event_values(time=hours_ago(45 * 24 - i / 60)) for i in range(2))
    root_key_file.rotate()
    append(event_values(time=hours_ago(44 * 24 - i / 60)) for i in range(2))
    append(event_values(time=hours_ago(35 * 24 - i / 60)) for i in range(2))
    now = timezone.now()
    assert retention.archive_due(now - timedelta(days=10)).processed == 4  # through #4 (the new key's)
    forge_after_boundary(5, key(old))
    run = retention.archive_due(now)
    assert f"older root key ({old})" in run.error
    assert AuditChainBase.objects.get().seq == 4 and AuditEvent.objects.filter(seq=5).exists()


def test_a_boundary_left_under_a_retired_key_no_longer_verifies(
    root_key_file: RootKeyFile,
    archive: Path,  # noqa: F811 - the fixture
) -> None:
    append(event_values(time=hours_ago(40 * 24)) for _ in range(5))
    retention.archive_due()
    root_key_file.rotate()
    assert "after the archive's #5" in verify()  # under the previous key: still readable
    retire_previous(root_key_file)  # what `rootkey retire` refuses to do while the boundary remains
    with pytest.raises(CommandError, match="the archive boundary was altered"):
        verify()
    assert AuditChainBase.objects.get().seq == 5


def test_the_checkpoint_across_a_rotation_and_after_retire(
    root_key_file: RootKeyFile,
    checkpoint_file: Path,  # noqa: F811 - the fixture
) -> None:
    write_events(3)
    verify_periodically()
    written = json.loads(checkpoint_file.read_text())
    root_key_file.rotate()
    checkpoint, problem = read_checkpoint()
    assert problem is None and checkpoint is not None and checkpoint.seq == 3  # the previous key's: readable
    # Every successful verification leaves it under the current key, even one that walked nothing new.
    run = verify_periodically()
    assert (run.status, run.events_verified) == ("intact", 0)
    rewritten = json.loads(checkpoint_file.read_text())
    assert rewritten["mac"] != written["mac"]
    assert {k: v for k, v in rewritten.items() if k != "mac"} == {
        k: v for k, v in written.items() if k != "mac"
    }
    assert remaining("audit checkpoint") == 0
    write_events(1)  # `rootkey retire` waits for the head to move too (an event, as the re-seal's own)
    retire_previous(root_key_file)
    assert read_checkpoint()[1] is None
    assert "intact: 4 events" in verify()
    assert verify_periodically().status == "intact"


def test_the_checkpoint_reseal_and_a_checkpoint_left_under_a_retired_key(
    root_key_file: RootKeyFile,
    checkpoint_file: Path,  # noqa: F811 - the fixture
) -> None:
    write_events(2)
    verify()
    saved = checkpoint_file.read_text()
    root_key_file.rotate()
    assert remaining("audit checkpoint") == 1
    assert reseal("audit checkpoint") == Moved(moved=1)
    assert (remaining("audit checkpoint"), reseal("audit checkpoint")) == (0, Moved())
    write_events(1)
    retire_previous(root_key_file)
    assert read_checkpoint()[1] is None
    checkpoint_file.write_text(saved)  # one left under the (now retired) old key is refused
    assert read_checkpoint()[1] is not None
    assert reseal("audit checkpoint") == Moved(failed=("audit checkpoint",))
    with pytest.raises(CommandError, match=r"checkpoint file .* was altered"):
        verify()


def test_an_incremental_walk_refuses_a_link_under_an_older_key_after_the_checkpoint(
    root_key_file: RootKeyFile,
    checkpoint_file: Path,  # noqa: F811 - the fixture
) -> None:
    """The periodic walk starts at the checkpoint in the epoch of the checkpoint's own link: an event after it
    linked (with the head) by the holder of the previous key is named as a whole walk names it."""
    old = root_keys().current.key_id
    write_events(2)
    root_key_file.rotate()
    write_events(2)
    assert verify_periodically().last_seq == 4
    write_events(1)
    forged = relink(5, key(old), error_message="nothing happened")
    set_head(5, forged, key(old))
    run = verify_periodically()
    assert (run.status, run.problem_seq) == ("broken", 5)
    assert f"older root key ({old})" in run.problem
    assert AuditEvent.objects.count() == 5


def reseal_the_trail() -> dict[str, Moved]:
    """What `rootkey reseal` does to the trail's dependents, in the registry's order."""
    return {d.name: d.reseal(root_keys(), 100) for d in dependents() if d.name.startswith("audit ")}


def rewind_behind_the_rotation(seq: int, under: Any) -> None:
    """The previous key's holder deletes every event after #`seq` (those written since the rotation) and MACs
    the head at #`seq` under that key."""
    kept = AuditEvent.objects.get(seq=seq)
    AuditEvent.objects.filter(seq__gt=seq).delete()
    set_head(seq, kept.hash, under)


def test_the_reseal_records_the_checkpoint_past_the_rotation(
    root_key_file: RootKeyFile,
    checkpoint_file: Path,  # noqa: F811 - the fixture
) -> None:
    """Verified before the rotation, the checkpoint stays at #3: deleting what came after the rotation and MACing
    the head under the previous key would pass. The re-seal verifies the chain once its head is under the current
    key, so the checkpoint passes the rotation and the rewind is named."""
    old = root_keys().current.key_id
    write_events(3)
    verify()
    new = root_key_file.rotate()
    write_events(3)
    moved = reseal_the_trail()
    assert moved["audit checkpoint"] == Moved(moved=1) and moved["audit chain head"] == Moved()
    checkpoint = read_checkpoint()[0]
    # #7: the verify's own event (#4, the old key's) came before the three written since the rotation.
    assert checkpoint is not None and (checkpoint.seq, checkpoint.key_id) == (7, new)
    rewind_behind_the_rotation(3, key(old))
    with pytest.raises(CommandError, match=r"#7 \(\): it was verified on .* no longer in the database"):
        verify()
    assert verify_periodically().status == "broken"


def test_a_head_under_an_older_key_than_the_checkpoints_is_a_rewind(
    root_key_file: RootKeyFile,
    checkpoint_file: Path,  # noqa: F811 - the fixture
) -> None:
    """Rotated and re-sealed before any new event: the head is MACed again under the new key and the checkpoint
    at it names that key. Events follow; the previous key's holder deletes them and MACs the head under the old
    key again: the checkpoint's event is still there, but its key says the head was rewound."""
    old = root_keys().current.key_id
    write_events(3)
    verify()
    new = root_key_file.rotate()
    moved = reseal_the_trail()
    assert moved["audit chain head"] == Moved(moved=1) and moved["audit checkpoint"] == Moved(moved=1)
    checkpoint = read_checkpoint()[0]
    # #4: the verify's own event, the last before the rotation.
    assert checkpoint is not None and (checkpoint.seq, checkpoint.key_id) == (4, new)
    write_events(3)  # no verification since: the checkpoint stays at #4
    rewind_behind_the_rotation(4, key(old))
    message = (
        rf"older root key \({old}\) than the head verified on .* \(checkpoint file, {new}\): it was rewound"
    )
    with pytest.raises(CommandError, match=message):
        verify()
    # The verify's own event, like any request's, was then written after the rewound head under the current key,
    # which signs the head again: a later verification reads the trail intact (documented in README, "Audit
    # trail"), so a rewind is read from the first finding, here the command's and its kept verification.
    first = ChainVerification.objects.latest("pk")
    assert (first.trigger, first.status) == ("command line", "broken") and "it was rewound" in first.problem
    run = verify_periodically()
    assert run.status == "intact", run.problem


def test_the_checkpoint_reseal_writes_only_under_the_processs_current_key(
    root_key_file: RootKeyFile,
    checkpoint_file: Path,  # noqa: F811 - the fixture
) -> None:
    """A re-seal still holding a ring that rotated again meanwhile does not write the file under its (no longer
    current) key: the file is left for the current one."""
    write_events(2)
    verify()
    saved = checkpoint_file.read_text()
    root_key_file.rotate()
    stale = root_keys()
    root_key_file.rotate()
    assert reseal_checkpoint(stale) is False
    assert checkpoint_file.read_text() == saved
    assert reseal_checkpoint(root_keys()) is True
