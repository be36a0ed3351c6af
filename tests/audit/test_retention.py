"""Retention: events older than KMS_AUDIT_RETENTION_DAYS are archived to JSON Lines files (each event with its
chain hashes, and a manifest) before they are removed, and the chain still verifies across the archive."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from kmsconsole.audit import retention
from kmsconsole.audit.chain import GENESIS_HASH
from kmsconsole.audit.models import AuditChainBase, AuditEvent
from kmsconsole.jobs.models import JobRun
from tests.audit.dashboard_support import append, event_values, hours_ago

pytestmark = pytest.mark.django_db

DAYS = 30


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Path:
    folder = tmp_path / "audit-archive"
    monkeypatch.setattr(retention, "archive_dir", lambda: folder)
    monkeypatch.setattr(retention, "BATCH", 7)  # several deletion transactions per run
    settings.KMS_AUDIT_RETENTION_DAYS = DAYS
    return folder


def seed(old: int, recent: int) -> list[AuditEvent]:
    """`old` events 40 days ago, then `recent` events an hour ago."""
    append(event_values(time=hours_ago(40 * 24 - i / 60)) for i in range(old))
    append(event_values(time=hours_ago(1 - i / 3600)) for i in range(recent))
    return list(AuditEvent.objects.order_by("seq"))


def verify(*extra: str) -> str:
    out = StringIO()
    call_command("audit", "verify", *extra, stdout=out)
    return out.getvalue()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_keep_forever_by_default(archive: Path, settings: Any) -> None:
    settings.KMS_AUDIT_RETENTION_DAYS = 0
    seed(5, 1)
    run = retention.archive_due()
    assert (run.job, run.processed, run.error, run.finished_at is not None) == (
        "archive-audit-events",
        0,
        "",
        True,
    )
    assert AuditEvent.objects.count() == 6 and not archive.exists()


def test_old_events_are_archived_with_their_hashes_then_removed(archive: Path) -> None:
    trail = seed(20, 5)
    run = retention.archive_due()
    assert (run.processed, run.error) == (20, "")

    files = sorted(archive.iterdir())
    assert [f.name for f in files] == ["audit-000000000001-000000000020.jsonl"]
    assert files[0].stat().st_mode & 0o777 == 0o600
    records = lines(files[0])
    manifest = records[-1]["manifest"]
    archived = records[:-1]
    # Every archived event, whole: the same fields and the same links as in the database before.
    assert [r["seq"] for r in archived] == list(range(1, 21))
    for record, event in zip(archived, trail[:20], strict=True):
        assert (record["event_id"], record["prev_hash"], record["hash"]) == (
            str(event.event_id),
            event.prev_hash,
            event.hash,
        )
        assert record["request_parameters"] == event.request_parameters
    assert archived[0]["prev_hash"] == GENESIS_HASH
    assert (manifest["first_seq"], manifest["last_seq"], manifest["count"]) == (1, 20, 20)
    assert (manifest["prev_hash"], manifest["last_hash"]) == (GENESIS_HASH, trail[19].hash)

    # The old events are gone, the recent ones (and the run's own audit event) stay, and the first remaining
    # event continues the archive.
    remaining = list(AuditEvent.objects.order_by("seq"))
    assert [e.seq for e in remaining[:5]] == [21, 22, 23, 24, 25]
    assert remaining[0].prev_hash == manifest["last_hash"]
    base = AuditChainBase.objects.get()
    assert (base.seq, base.hash, base.archive_file) == (20, trail[19].hash, files[0].name)
    recorded = AuditEvent.objects.get(operation="kmsconsole:ArchiveAuditEvents")
    assert (recorded.interface, recorded.decision) == ("worker", "allowed")
    assert recorded.response_elements == {"ArchiveFile": files[0].name, "FirstSeq": 1, "LastSeq": 20}

    assert "events verified after the archive's #20" in verify()
    assert "20 events in 1 files, through #20" in verify("--archive", str(archive))


def test_each_run_writes_one_file_continuing_the_last(archive: Path) -> None:
    seed(10, 0)
    now = timezone.now()
    assert retention.archive_due(now).processed == 10
    # Ten more events age past the limit (the first run's own audit event is among the old ones by then).
    append(event_values(time=hours_ago(1)) for _ in range(10))
    second = retention.archive_due(now + timedelta(days=DAYS + 1))
    assert second.processed == 11  # the first run's audit event (#11) and the ten new ones
    files = sorted(archive.iterdir())
    assert len(files) == 2
    first_manifest, second_manifest = (lines(f)[-1]["manifest"] for f in files)
    assert second_manifest["first_seq"] == first_manifest["last_seq"] + 1 == 11
    assert second_manifest["prev_hash"] == first_manifest["last_hash"]
    verify("--archive", str(archive))


def test_an_event_newer_than_the_limit_stops_the_archive_there(archive: Path) -> None:
    """The archive is always a whole prefix of the chain: an old event after a recent one waits."""
    append(
        [
            event_values(time=hours_ago(50 * 24)),
            event_values(time=hours_ago(2)),  # recent
            event_values(time=hours_ago(50 * 24)),
        ]
    )
    assert retention.archive_due().processed == 1
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)[:2]) == [2, 3]


def test_a_broken_chain_is_never_archived(archive: Path) -> None:
    trail = seed(10, 2)
    AuditEvent.objects.filter(pk=trail[4].pk).update(caller_arn="arn:aws:iam::111122223333:user/mallory")
    run = retention.archive_due()
    assert run.processed == 0 and "event #5 was changed; nothing was archived" in run.error
    assert AuditEvent.objects.count() == 12 and not list(archive.glob("*"))
    assert not AuditChainBase.objects.exists()


def test_removing_old_events_without_archiving_them_is_noticed(archive: Path) -> None:
    seed(10, 3)
    retention.archive_due()
    # An operator drops the oldest remaining events and claims they were archived: the boundary's MAC stops them.
    AuditEvent.objects.filter(seq__in=[11, 12]).delete()
    with pytest.raises(CommandError, match=r"event #13 .*removed or reordered"):
        verify()
    AuditChainBase.objects.update(seq=12)
    with pytest.raises(CommandError, match="the archive boundary was altered"):
        verify()


def test_an_edited_or_missing_archive_file_is_noticed(archive: Path) -> None:
    seed(12, 2)
    retention.archive_due()
    path = next(archive.iterdir())
    records = path.read_text().splitlines()
    edited = json.loads(records[3])
    edited["caller_arn"] = "arn:aws:iam::111122223333:user/mallory"
    records[3] = json.dumps(edited)
    path.write_text("\n".join(records) + "\n")
    with pytest.raises(CommandError, match=r"event #4 \(.*\): its contents were changed"):
        verify("--archive", str(archive))
    path.unlink()
    with pytest.raises(CommandError, match="events #1 to #12 were removed but are in no archive"):
        verify("--archive", str(archive))


def test_a_run_stopped_between_batches_is_finished_by_the_next(
    archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(20, 2)
    real = retention._delete_batch
    calls: list[int] = []

    def failing(first: int, last: int, archive_file: str) -> None:
        calls.append(first)
        if len(calls) == 2:
            raise RuntimeError("the worker was killed")
        real(first, last, archive_file)

    monkeypatch.setattr(retention, "_delete_batch", failing)
    with pytest.raises(RuntimeError):
        retention.archive_due()
    # The first batch (with the run's audit event) committed; the rest is still in the database.
    assert AuditChainBase.objects.get().seq == 7
    assert AuditEvent.objects.filter(seq__lte=20).count() == 13
    assert JobRun.objects.filter(job="archive-audit-events").exclude(error="").exists()
    verify("--archive", str(archive))  # the chain holds at every step

    monkeypatch.setattr(retention, "_delete_batch", real)
    run = retention.archive_due()
    assert run.processed == 13 and len(list(archive.iterdir())) == 1
    assert AuditChainBase.objects.get().seq == 20
    assert "after the archive's #20" in verify("--archive", str(archive))
