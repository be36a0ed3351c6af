"""Retention: events older than KMS_AUDIT_RETENTION_DAYS are archived to JSON Lines files under
KMS_DATA_DIR/audit-archive/ and then removed, so the chain stays verifiable across the archive.

One run writes one file, `audit-<first seq>-<last seq>.jsonl`: a line per event (every chained field with its
prev_hash and hash, as the JSON Lines export writes it) and a last line, the manifest, with the first and last
seq, the hash the file continues from and the hash to continue from, under an HMAC. The run checks every link
while it writes, and only a complete, synced file is renamed into place. Then the events are deleted in
batches, one transaction each, which also moves the archive boundary (AuditChainBase, with its own HMAC) to the
batch's last event: `audit verify` starts the chain there, and `audit verify --archive DIR` checks the files
and that they end where the database begins. A run interrupted between batches is finished by the next one.

Root keys rotate (kmsconsole.core.rootkey): the links are checked epoch by epoch (kmsconsole.audit.chain), one
walk through every file, and new manifests and boundaries are MACed under the current key (`manifest_matches` says
why an old manifest keeps verifying).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from kmsconsole.audit.chain import CHAINED_FIELDS, GENESIS_HASH, ChainProblem, ChainWalk, mac_under
from kmsconsole.audit.export import EVENT_FIELDS, json_line, record_values
from kmsconsole.audit.models import AuditChainBase, AuditChainHead, AuditEvent
from kmsconsole.audit.verification import base_mac, chain_base
from kmsconsole.core.context import RequestMeta, operator_caller
from kmsconsole.core.durable import fsync_folder
from kmsconsole.core.rootkey import RootKey, refresh_root_keys, root_keys, subkey
from kmsconsole.jobs.models import JobRun
from kmsconsole.jobs.runs import job_run
from kmsconsole.operations import OperationContext, perform
from policies.authorization import authorize

ARCHIVE_JOB = "archive-audit-events"
ARCHIVE_FOLDER = "audit-archive"
# Events per deletion transaction, and at most per run (the rest is archived by the next run).
BATCH = 2000
MAX_PER_RUN = 200_000
MANIFEST_FORMAT = 1
MANIFEST_PURPOSE = "audit-archive/manifest/v1"


class ArchiveError(Exception):
    """The archive could not be written or does not hold together."""


def archive_dir() -> Path:
    return Path(settings.KMS_DATA_DIR) / ARCHIVE_FOLDER


def manifest_mac(manifest: dict[str, Any], key: bytes | None = None) -> str:
    """A manifest's MAC, under the current root key (`key`: another root key's MANIFEST_PURPOSE subkey)."""
    material = json.dumps(
        {k: v for k, v in manifest.items() if k != "mac"}, sort_keys=True, separators=(",", ":")
    ).encode()
    return hmac.new(key or subkey(MANIFEST_PURPOSE), material, hashlib.sha256).hexdigest()


def manifest_matches(manifest: dict[str, Any]) -> bool:
    """Whether the manifest's MAC is under a configured root key, **retired keys included**.

    Unlike the boundary and the checkpoint, which `rootkey reseal` MACs again, a manifest keeps the key it was
    written under: an archive file is immutable (written once, synced and renamed into place; rewriting it to
    move its MAC would put the evidence itself at risk), so it must verify after its key is retired. That costs
    nothing in strength, because the manifest is not what vouches for the events: every archived event is covered
    by its link, which verifies under its epoch's key (retired keys included, by design, kmsconsole.audit.chain),
    each file must continue the one before it from event #1, and the last must reach the boundary, whose MAC must
    be under a readable key. A holder of a retired key who forged a manifest (or re-linked archived events) would
    still have to make the archive end at the boundary's hash, which continues into the database's chain, itself
    anchored by the head and the checkpoint under readable keys. (Those anchors do not stop a holder of a
    *previous* key, before `rootkey retire`, from rewinding the database's chain to the checkpoint:
    kmsconsole.audit.checkpoint.) An unconfigured key's MAC is refused, after a look
    at the key file (another process may have rotated it since this one read it)."""
    return _manifest_under(manifest, root_keys().everything) or (
        refresh_root_keys() and _manifest_under(manifest, root_keys().everything)
    )


def _manifest_under(manifest: dict[str, Any], keys: tuple[RootKey, ...]) -> bool:
    return mac_under(
        str(manifest.get("mac", "")), keys, lambda key: manifest_mac(manifest, key.subkey(MANIFEST_PURPOSE))
    )


def file_name(first_seq: int, last_seq: int) -> str:
    return f"audit-{first_seq:012d}-{last_seq:012d}.jsonl"


# --- Choosing and writing ----------------------------------------------------------------------------------


def last_due_seq(base_seq: int, cutoff: datetime) -> int:
    """The end of the run: the event before the first one at or after the cutoff (so the archive is always a
    whole prefix of the chain), capped at MAX_PER_RUN events and at the chain head."""
    head = AuditChainHead.objects.filter(pk=1).values_list("last_seq", flat=True).first() or 0
    first_kept = (
        AuditEvent.objects.filter(seq__gt=base_seq, time__gte=cutoff)
        .order_by("seq")
        .values_list("seq", flat=True)
        .first()
    )
    last = head if first_kept is None else min(head, first_kept - 1)
    return min(last, base_seq + MAX_PER_RUN)


def write_archive(folder: Path, base_seq: int, base_hash: str, last_seq: int, *, epoch: str = "") -> Path:
    """Write events (base_seq, last_seq] to one file, checking each link as it goes (from the boundary's `epoch`:
    a link under an older key than the boundary's is refused); raise ArchiveError (and leave nothing behind) if a
    link is broken: evidence that does not verify is never removed."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    # A file a run wrote before it stopped, without removing anything, holds only events still in the
    # database: this run writes them again.
    for stale in folder.glob(f"audit-{base_seq + 1:012d}-*.jsonl"):
        stale.unlink()
    final = folder / file_name(base_seq + 1, last_seq)
    partial = final.with_suffix(".partial")
    rows = (
        AuditEvent.objects.filter(seq__gt=base_seq, seq__lte=last_seq)
        .order_by("seq")
        .values(*EVENT_FIELDS)
        .iterator(chunk_size=BATCH)
    )
    walk = ChainWalk(seq=base_seq, hash=base_hash, epoch=epoch)
    try:
        with open(partial, "w", encoding="ascii", opener=lambda p, f: os.open(p, f, 0o600)) as out:
            for row in rows:
                if row["seq"] != walk.seq + 1 or row["prev_hash"] != walk.hash:
                    raise ArchiveError(
                        f"event #{walk.seq + 1} is missing or out of place; nothing was archived"
                    )
                problem = walk.events([row])
                if problem is not None:
                    raise ArchiveError(
                        f"event #{row['seq']} was changed; nothing was archived ({problem.what})"
                    )
                out.write(json_line(row))
            expected, prev_hash = walk.seq + 1, walk.hash
            if expected != last_seq + 1:
                raise ArchiveError(f"event #{expected} is missing; nothing was archived")
            manifest = {
                "format": MANIFEST_FORMAT,
                "first_seq": base_seq + 1,
                "last_seq": last_seq,
                "prev_hash": base_hash,
                "last_hash": prev_hash,
                "count": last_seq - base_seq,
                "created_at": timezone.now().isoformat(timespec="seconds"),
            }
            manifest["mac"] = manifest_mac(manifest)
            out.write(json.dumps({"manifest": manifest}, sort_keys=True, separators=(",", ":")) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, final)
        fsync_folder(folder)
    finally:
        partial.unlink(missing_ok=True)
    return final


# --- Removing ----------------------------------------------------------------------------------------------


def _delete_batch(first: int, last: int, archive_file: str) -> None:
    """Delete events first..last and move the boundary to `last`, in the caller's transaction."""
    row = AuditEvent.objects.filter(seq=last).values(*CHAINED_FIELDS, "prev_hash", "hash").first()
    if row is None:
        raise ArchiveError(f"event #{last} is gone from the database before it was removed")
    # The boundary keeps its link's key (its epoch), under its MAC: the walk from it goes on in that epoch.
    key = ChainWalk().key_of(row["prev_hash"], row)
    if key is None:
        raise ArchiveError(f"event #{last} was changed before it was removed; nothing more was removed")
    last_hash = str(row["hash"])
    AuditEvent.objects.filter(seq__gte=first, seq__lte=last).delete()
    AuditChainBase.objects.update_or_create(
        pk=1,
        defaults={
            "seq": last,
            "hash": last_hash,
            "mac": base_mac(last, last_hash, epoch=key.key_id),
            "key_id": key.key_id,
            "archive_file": archive_file,
        },
    )


def _batches(first: int, last: int) -> Iterator[tuple[int, int]]:
    for start in range(first, last + 1, BATCH):
        yield start, min(start + BATCH - 1, last)


@dataclass(frozen=True)
class ArchiveRun:
    archive_file: str
    first_seq: int
    last_seq: int

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1


def _remove(run: ArchiveRun, *, retention_days: int, cutoff: datetime) -> None:
    """Remove the archived events, batch by batch; the run's audit event is written with the first batch."""
    batches = list(_batches(run.first_seq, run.last_seq))
    first, last = batches[0]

    def service(ctx: OperationContext) -> dict[str, Any]:
        authorize(ctx, resource="*")
        _delete_batch(first, last, run.archive_file)
        return {"ArchiveFile": run.archive_file, "FirstSeq": run.first_seq, "LastSeq": run.last_seq}

    perform(
        "kmsconsole:ArchiveAuditEvents",
        caller=operator_caller(settings.KMS_ACCOUNT_ID, "audit-retention"),
        meta=RequestMeta(interface="worker", user_agent="kmsconsole audit retention"),
        params={"RetentionDays": retention_days, "OlderThan": cutoff.isoformat(), "Count": run.count},
        service=service,
    )
    for first, last in batches[1:]:
        with transaction.atomic():
            _delete_batch(first, last, run.archive_file)


def _unfinished(folder: Path, base_seq: int, archive_file: str) -> ArchiveRun | None:
    """The rest of a run that stopped between batches: its file holds events the database still has."""
    if not archive_file:
        return None
    manifest = read_manifest(folder / archive_file)
    if manifest is None or manifest["last_seq"] <= base_seq:
        return None
    return ArchiveRun(archive_file, base_seq + 1, manifest["last_seq"])


def archive_due(now: datetime | None = None) -> JobRun:
    """The beat job: archive and remove what retention no longer keeps in the database. Does nothing when
    KMS_AUDIT_RETENTION_DAYS is not set (keep forever). Leaves a JobRun with the number of events archived."""
    with job_run(ARCHIVE_JOB) as job:
        days = settings.KMS_AUDIT_RETENTION_DAYS
        if not days:
            return job.run
        cutoff = (now or timezone.now()) - timedelta(days=days)
        base, problem = chain_base()
        if problem is not None:
            job.fail(f"Nothing archived: {problem}")
            return job.run
        folder = archive_dir()
        run = _unfinished(folder, base.seq, base.archive_file)
        if run is None:
            last = last_due_seq(base.seq, cutoff)
            if last <= base.seq:
                return job.run
            try:
                path = write_archive(folder, base.seq, base.hash, last, epoch=base.epoch)
            except ArchiveError as error:
                job.fail(str(error))
                return job.run
            run = ArchiveRun(path.name, base.seq + 1, last)
        _remove(run, retention_days=days, cutoff=cutoff)
        job.processed = run.count
    return job.run


# --- Reading and verifying archives ------------------------------------------------------------------------


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest (last line) of an archive file, or None if the file has none."""
    try:
        with open(path, "rb") as source:
            source.seek(0, os.SEEK_END)
            size = source.tell()
            source.seek(max(0, size - 4096))
            tail = source.read().decode("ascii", errors="replace").rstrip("\n").rsplit("\n", 1)[-1]
    except OSError:
        return None
    try:
        manifest = json.loads(tail).get("manifest")
    except (ValueError, AttributeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _events_of(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="ascii") as source:
        for line in source:
            record = json.loads(line)
            if "manifest" in record:
                return
            yield record_values(record)


@dataclass(frozen=True)
class ArchiveCheck:
    files: int
    events: int
    last_seq: int
    last_hash: str
    problem: str = ""
    # The id of the key the boundary's link is under, as the archive's walk found it ("" if not reached).
    base_epoch: str = ""


def verify_archive(folder: Path) -> ArchiveCheck:
    """Check every archive file in `folder`: each manifest's MAC, each event's link, that each file continues
    the one before it from event #1, and that the last file ends where the database's chain begins, in the
    boundary's epoch (the key its link is under, which the database's walk starts in: `base_epoch`)."""
    paths = sorted(folder.glob("audit-*.jsonl"))
    files = events = 0
    last_seq, last_hash = 0, GENESIS_HASH
    base, base_problem = chain_base()
    walk = ChainWalk()  # one walk through every file: an epoch reached in one binds the next
    base_epoch: list[str] = []
    for path in paths:
        manifest = read_manifest(path)
        if manifest is None or not manifest_matches(manifest):
            return ArchiveCheck(
                files, events, last_seq, last_hash, f"{path.name}: its manifest is missing or altered"
            )
        first = manifest["first_seq"]
        if first != last_seq + 1 or manifest["prev_hash"] != last_hash:
            return ArchiveCheck(
                files,
                events,
                last_seq,
                last_hash,
                f"{path.name}: it does not continue from event #{last_seq}",
            )
        end, end_hash = manifest["last_seq"], manifest["last_hash"]
        problem = walk.events(_noting_epoch(walk, _events_of(path), base.seq, base_epoch))
        if problem is None and (walk.seq != end or not hmac.compare_digest(walk.hash, str(end_hash))):
            problem = ChainProblem(
                walk.seq,
                walk.last_event_id,
                f"the manifest records event #{end}: events after this one were removed",
            )
        if problem is not None:
            return ArchiveCheck(files, events, last_seq, last_hash, f"{path.name}: {problem}")
        files, events, last_seq, last_hash = files + 1, events + manifest["count"], end, end_hash
    if base_problem is not None:
        return ArchiveCheck(files, events, last_seq, last_hash, str(base_problem))
    if base.seq > last_seq:
        return ArchiveCheck(
            files,
            events,
            last_seq,
            last_hash,
            f"events #{last_seq + 1} to #{base.seq} were removed but are in no archive",
        )
    if base.seq and _hash_at(paths, base.seq) != base.hash:
        return ArchiveCheck(
            files,
            events,
            last_seq,
            last_hash,
            f"the database's chain does not begin where the archive has event #{base.seq}",
        )
    epoch = base_epoch[0] if base_epoch else ""
    if base.epoch and epoch and base.epoch != epoch:
        return ArchiveCheck(
            files,
            events,
            last_seq,
            last_hash,
            f"the archive boundary names root key {base.epoch}, but event #{base.seq} is linked under {epoch}",
        )
    return ArchiveCheck(files, events, last_seq, last_hash, base_epoch=epoch)


def _noting_epoch(
    walk: ChainWalk, events: Iterator[dict[str, Any]], seq: int, noted: list[str]
) -> Iterator[dict[str, Any]]:
    """`events`, noting the walk's epoch once it has taken event #`seq` (the boundary's)."""
    for event in events:
        yield event
        if walk.seq == seq and not noted:  # the walk asks for the next event only after taking this one
            noted.append(walk.epoch)


def _hash_at(paths: list[Path], seq: int) -> str:
    for path in reversed(paths):
        manifest = read_manifest(path)
        if manifest is not None and manifest["first_seq"] <= seq <= manifest["last_seq"]:
            for values in _events_of(path):
                if values["seq"] == seq:
                    return str(values["hash"])
    return ""
