"""Verifying the audit chain: `manage.py audit verify`, the periodic job (beat, every 10 minutes) and the
console's "Verify now" all run `verify_chain()`.

The chain in the database starts after the archive boundary (AuditChainBase, moved by retention) and ends at the
chain head. The head is read first and only events up to it are walked, so requests committing meanwhile are
not mistaken for events beyond a rewound head; events that committed during the walk are verified next, from
where the walk ended, until the head stops moving (or a few rounds have passed). An event beyond a head that
no longer moves was not written by the service.

The periodic job walks only what was written since the checkpoint (kmsconsole.audit.checkpoint) while a walk of
the whole chain ended there less than KMS_AUDIT_FULL_VERIFY_SECONDS ago (a day by default), so its cost follows
the rate of new events, not the size of the trail; the start is the checkpoint's seq and hash, which only the
root key could have vouched for, and the checkpoint's own check (the database still holds that event with that
hash) runs first; the walk goes on in the epoch of that event's link (kmsconsole.audit.chain), so an incremental
walk refuses a link under an older root key as a whole walk does. Once a day, and always on demand ("Verify now",
`manage.py audit verify`), the whole chain is walked: an old event edited in the database is named by the next
whole walk, not by the periodic ones between.
A problem an incremental walk finds is confirmed by a whole walk before it is reported.

The walk also checks each event's derived, unchained columns (the key owner's side of the trail,
kmsconsole.audit.derived) against its chained fields: a difference is a finding beside the result
(`ChainResult.derived`: `manage.py audit verify` prints it, a worker logs it), not a broken chain, since the chain
itself holds and `manage.py audit reindex-key-owners` sets the columns again.

Each run, `manage.py audit verify`'s too, is kept as a ChainVerification (shown on the dashboard with the first
broken event) and leaves a JobRun like every periodic job.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from kmsconsole.audit.chain import CHAINED_FIELDS, GENESIS_HASH, ChainProblem, ChainWalk
from kmsconsole.audit.checkpoint import check_checkpoint, head_key_problem, read_checkpoint, record_checkpoint
from kmsconsole.audit.derived import DERIVED_FIELDS, mismatched
from kmsconsole.audit.models import AuditChainBase, AuditChainHead, AuditEvent, ChainVerification
from kmsconsole.core.rootkey import mac_matches, subkey
from kmsconsole.jobs.runs import job_run
from kmsconsole.operations import OperationContext
from policies.authorization import authorize

logger = logging.getLogger(__name__)

VERIFY_JOB = "verify-audit-chain"
PERIODIC = "periodic"
ON_DEMAND = "on demand"
COMMAND_LINE = "command line"
_BATCH = 2000
# Rounds of "verify what committed while we walked" before the result is taken as it stands.
_ROUNDS = 5
# The chained fields and the links, and the derived columns, checked on the way (kmsconsole.audit.derived).
_FIELDS = (*CHAINED_FIELDS, "prev_hash", "hash", *DERIVED_FIELDS)
BASE_PURPOSE = "audit-chain/base/v1"


def base_mac(seq: int, last_hash: str, key: bytes | None = None, *, epoch: str = "") -> str:
    """The archive boundary's MAC: without the root key nobody can claim that removed events were archived, nor
    move the boundary's epoch (`epoch`: the id of the root key the link at `seq` is under). Written under the
    current root key (`key`: a root key's BASE_PURPOSE subkey, for the re-seal)."""
    return hmac.new(
        key or subkey(BASE_PURPOSE), _base_message(seq, last_hash, epoch), hashlib.sha256
    ).hexdigest()


def _base_message(seq: int, last_hash: str, epoch: str = "") -> bytes:
    # Boundaries written before the epoch was kept carry a MAC over seq and hash only, and still verify.
    return (f"{seq}:{last_hash}" + (f":{epoch}" if epoch else "")).encode()


def base_mac_matches(seq: int, last_hash: str, mac: str, epoch: str = "") -> bool:
    """Whether `mac` is the boundary's MAC under a readable root key: a previous key's until `rootkey reseal`
    MACs it again (kmsconsole.audit.rootkeys), never a retired key's."""
    return mac_matches(BASE_PURPOSE, _base_message(seq, last_hash, epoch), mac)


@dataclass(frozen=True)
class ChainBase:
    seq: int
    hash: str
    archive_file: str = ""
    # The id of the root key the link at `seq` is under, when known ("": the next link may be under any key).
    epoch: str = ""


GENESIS = ChainBase(0, GENESIS_HASH)


def chain_base() -> tuple[ChainBase, ChainProblem | None]:
    """Where the chain in the database begins, and a problem if the boundary's MAC does not match."""
    row = AuditChainBase.objects.filter(pk=1).first()
    if row is None:
        return GENESIS, None
    base = ChainBase(row.seq, row.hash, row.archive_file, epoch=row.key_id)
    if not base_mac_matches(row.seq, row.hash, row.mac, row.key_id):
        return base, ChainProblem(
            row.seq, "", "the archive boundary was altered (its MAC does not match): events may be missing"
        )
    return base, None


@dataclass(frozen=True)
class DerivedFinding:
    """Events whose derived, unchained columns (kmsconsole.audit.derived) differ from what their chained fields
    give: the chain holds, but the key owner's side of the trail may miss them until `manage.py audit
    reindex-key-owners` sets the columns again. A finding, not a broken chain."""

    count: int
    first: ChainProblem

    def __str__(self) -> str:
        return (
            f"{self.count} events' key owner columns differ from their chained fields (first: {self.first}); "
            "`manage.py audit reindex-key-owners` sets them again"
        )


@dataclass(frozen=True)
class ChainResult:
    first_seq: int  # the first event in the database that was walked (the one after the archive boundary)
    last_seq: int
    verified: int
    problem: ChainProblem | None
    derived: DerivedFinding | None = None
    # The id of the root key the head's MAC is under ("" without a head).
    head_key: str = ""

    @property
    def intact(self) -> bool:
        return self.problem is None


class _Counted:
    """The walked rows, counted, with each row's derived columns checked against its chained fields on the way
    (a regular expression on the key ARN and a look into a ReEncrypt's response: cheap beside the row's HMAC)."""

    def __init__(self, rows: Iterator[dict[str, Any]]) -> None:
        self.rows = rows
        self.count = 0
        self.mismatches = 0
        self.first_mismatch: ChainProblem | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for row in self.rows:
            self.count += 1
            columns = mismatched(row)
            if columns:
                self.mismatches += 1
                if self.first_mismatch is None:
                    self.first_mismatch = ChainProblem(
                        row["seq"],
                        str(row["event_id"]),
                        f"{', '.join(columns)} differ from the chained fields",
                    )
            yield row

    @property
    def finding(self) -> DerivedFinding | None:
        if self.first_mismatch is None:
            return None
        return DerivedFinding(self.mismatches, self.first_mismatch)


def _head() -> tuple[int, str, str]:
    head = AuditChainHead.objects.filter(pk=1).first()
    return (head.last_seq, head.last_hash, head.head_mac) if head else (0, GENESIS_HASH, "")


def _walk(
    events: QuerySet[AuditEvent], head: tuple[int, str, str], walk: ChainWalk
) -> tuple[_Counted, ChainProblem | None]:
    """Walk `events` from where `walk` stands up to `head` (the walk then stands at the head)."""
    rows = events.order_by("seq").values(*_FIELDS).iterator(chunk_size=_BATCH)
    counted = _Counted(rows)
    # closing(): stopping at a broken link must release PostgreSQL's server-side cursor now, not at GC.
    with closing(rows):
        problem = walk.up_to_head(counted, *head)
    return counted, problem


def _merged(finding: DerivedFinding | None, more: DerivedFinding | None) -> DerivedFinding | None:
    if finding is None or more is None:
        return finding or more
    return DerivedFinding(finding.count + more.count, finding.first)


def verify_chain(*, since_checkpoint: bool = False, base_epoch: str = "") -> ChainResult:
    """Walk the chain in the database from the archive boundary to the head; name the first broken event.
    `since_checkpoint` (the periodic job): from the checkpoint instead, when a whole walk ended there recently.
    `base_epoch`: the key of the boundary's link as the archive's walk found it (`audit verify --archive`), for a
    boundary written before its own epoch was kept.

    Retention may archive (and delete) the oldest events during the walk: a problem found while the boundary
    moved is checked again from the new boundary before it is reported."""
    start = _recent_checkpoint() if since_checkpoint else None
    if start is not None:
        result = _verify_from(start)
        if result.problem is None and head_key_problem(result.last_seq, result.head_key) is None:
            _advance_checkpoint(result, whole_chain=False)
            return result
    result = _verify_from(None, base_epoch)
    if result.problem is not None and chain_base()[0].seq != result.first_seq - 1:
        result = _verify_from(None, base_epoch)
    if result.problem is None:
        # The database's chain holds together; it must also still reach what an earlier run vouched for, with a
        # head under a key no older than the one that run saw.
        problem = check_checkpoint(archived_through=result.first_seq - 1) or head_key_problem(
            result.last_seq, result.head_key
        )
        if problem is not None:
            return replace(result, problem=problem)
        _advance_checkpoint(result, whole_chain=True)
    return result


def _recent_checkpoint() -> ChainBase | None:
    """Where an incremental walk may start: the checkpoint, if it is genuine, a whole walk ended there within
    KMS_AUDIT_FULL_VERIFY_SECONDS, it lies at or after the archive boundary, and the database still holds it."""
    checkpoint, problem = read_checkpoint()
    if problem is not None or checkpoint is None or not checkpoint.full_at:
        return None
    try:
        full_at = datetime.fromisoformat(checkpoint.full_at)
    except ValueError:
        return None
    if (timezone.now() - full_at).total_seconds() >= settings.KMS_AUDIT_FULL_VERIFY_SECONDS:
        return None
    base, base_problem = chain_base()
    if base_problem is not None or checkpoint.seq < base.seq:
        return None
    if check_checkpoint(archived_through=base.seq) is not None:
        return None  # the whole walk that follows reports it
    # The walk goes on in the epoch of the checkpoint's own link (one more HMAC): a link after it under an older
    # key is refused here as in a whole walk. Not found (its key is no longer configured): a whole walk decides.
    row = AuditEvent.objects.filter(seq=checkpoint.seq).values(*_FIELDS).first()
    key = ChainWalk().key_of(row["prev_hash"], row) if row is not None else None
    if key is None:
        return None
    return ChainBase(checkpoint.seq, checkpoint.hash, epoch=key.key_id)


def _advance_checkpoint(result: ChainResult, *, whole_chain: bool) -> None:
    last = AuditEvent.objects.filter(seq=result.last_seq).values_list("hash", flat=True).first()
    if last is not None:
        record_checkpoint(result.last_seq, last, whole_chain=whole_chain, key_id=result.head_key)


def _verify_from(first: ChainBase | None, base_epoch: str = "") -> ChainResult:
    """Walk from `first` (None: the archive boundary, in its epoch, else `base_epoch`) to the head, and past it
    while the head keeps moving."""
    base, problem = chain_base()
    if problem is not None:
        return ChainResult(base.seq + 1, base.seq, 0, problem)
    first = first or (base if base.epoch else replace(base, epoch=base_epoch))
    head = _head()
    # One walk through every round: the epoch reached in one round binds the next.
    walk, verified = ChainWalk(seq=first.seq, hash=first.hash, epoch=first.epoch), 0
    derived: DerivedFinding | None = None
    for _ in range(_ROUNDS):
        # Without a head row every event is walked: deleting the head must not hide the events after it.
        events = AuditEvent.objects.filter(seq__gt=walk.seq)
        if head[0]:
            events = events.filter(seq__lte=head[0])
        walked, problem = _walk(events, head, walk)
        verified += walked.count
        derived = _merged(derived, walked.finding)
        if problem is not None:
            break
        newer = _head()
        if newer[0] == head[0]:
            stray = AuditEvent.objects.filter(seq__gt=head[0]).order_by("seq").first()
            if stray is not None:
                problem = ChainProblem(
                    stray.seq,
                    str(stray.event_id),
                    "it lies beyond the chain head: the service did not write it",
                )
            break
        head = newer
    return ChainResult(first.seq + 1, head[0], verified, problem, derived, walk.head_key)


def _finish(verification: ChainVerification, result: ChainResult) -> None:
    problem = result.problem
    verification.finished_at = timezone.now()
    verification.status = (
        ChainVerification.Status.INTACT if problem is None else ChainVerification.Status.BROKEN
    )
    verification.events_verified = result.verified
    verification.first_seq, verification.last_seq = result.first_seq, result.last_seq
    if problem is not None:
        verification.problem_seq = problem.seq
        verification.problem_event_id = problem.event_id
        verification.problem = problem.what


def run_verification(verification: ChainVerification, *, since_checkpoint: bool = False) -> ChainVerification:
    """Verify the chain for this (claimed) record, with a JobRun beside it; a failure to verify at all (the
    database went away) is recorded as an error, not as a broken chain."""
    _walk_for(verification, since_checkpoint=since_checkpoint)
    return verification


def _walk_for(
    verification: ChainVerification, *, since_checkpoint: bool = False, base_epoch: str = ""
) -> ChainResult:
    """`run_verification`'s walk, its result kept on `verification` and a JobRun; the result itself for the
    shell, which prints more of it (where the walk began, the derived columns' finding)."""
    try:
        with job_run(VERIFY_JOB) as run:
            result = verify_chain(since_checkpoint=since_checkpoint, base_epoch=base_epoch)
            run.processed = result.verified
            if result.derived is not None:
                # Not a broken chain: said in the worker log for the operator (`manage.py audit verify` says it too).
                logger.warning("Audit verification: %s", result.derived)
            if result.problem is not None:
                run.fail(f"Audit chain broken at {result.problem}")
            _finish(verification, result)
    except Exception as exc:
        verification.status = ChainVerification.Status.ERROR
        verification.finished_at = timezone.now()
        verification.problem = f"The verification could not run: {type(exc).__name__}"
        verification.save()
        raise
    verification.save()
    # Requests queued meanwhile (their message may be lost) are answered by this run.
    ChainVerification.objects.filter(
        status=ChainVerification.Status.QUEUED, requested_at__lte=verification.started_at
    ).update(
        status=verification.status,
        started_at=verification.started_at,
        finished_at=verification.finished_at,
        events_verified=verification.events_verified,
        first_seq=verification.first_seq,
        last_seq=verification.last_seq,
        problem_seq=verification.problem_seq,
        problem_event_id=verification.problem_event_id,
        problem=verification.problem,
    )
    return result


def verify_periodically() -> ChainVerification:
    """The beat job: a new record, verified now (from the checkpoint while a whole walk is recent)."""
    now = timezone.now()
    verification = ChainVerification.objects.create(
        trigger=PERIODIC, requested_at=now, started_at=now, status=ChainVerification.Status.RUNNING
    )
    return run_verification(verification, since_checkpoint=True)


def verify_requested(verification_id: int) -> ChainVerification | None:
    """A worker's run of a verification asked for on demand: claimed with a conditional UPDATE (only one worker
    wins); None when it was already claimed or answered."""
    now = timezone.now()
    claimed = ChainVerification.objects.filter(
        pk=verification_id, status=ChainVerification.Status.QUEUED
    ).update(status=ChainVerification.Status.RUNNING, started_at=now)
    if not claimed:
        return None
    return run_verification(ChainVerification.objects.get(pk=verification_id))


def chain_verification_request(*, ctx: OperationContext) -> ChainVerification:
    """kmsconsole:VerifyAuditChain: queue a verification of the chain; a worker runs it after commit."""
    authorize(ctx, resource="*")
    verification = ChainVerification.objects.create(
        trigger=ON_DEMAND, requested_by=ctx.caller.arn, requested_at=timezone.now()
    )
    transaction.on_commit(partial(_enqueue_verification, verification.pk), robust=True)
    return verification


def chain_verification_run(
    *, ctx: OperationContext, base_epoch: str = ""
) -> tuple[ChainVerification, ChainResult]:
    """kmsconsole:VerifyAuditChain at the shell (`manage.py audit verify`): the whole chain walked now (from the
    archive's epoch, `base_epoch`, when its files were checked first), kept as the console's request and the
    periodic job keep theirs, a ChainVerification and a JobRun, so the dashboard's chain status and the overview's
    verification job show it."""
    authorize(ctx, resource="*")
    now = timezone.now()
    verification = ChainVerification.objects.create(
        trigger=COMMAND_LINE,
        requested_by=ctx.caller.arn,
        requested_at=now,
        started_at=now,
        status=ChainVerification.Status.RUNNING,
    )
    return verification, _walk_for(verification, base_epoch=base_epoch)


def _enqueue_verification(verification_id: int) -> None:
    """Ask a worker to run the request now. With the broker down this gives up at once instead of holding the
    console's request until Redis returns: the next periodic run answers every request queued before it."""
    from kmsconsole.audit.tasks import verify_audit_chain_requested
    from kmsconsole.celery import publish_or_skip

    if not publish_or_skip(verify_audit_chain_requested, (verification_id,)):
        logger.warning("Could not enqueue verification %s; the next periodic run answers it", verification_id)


def latest_verification() -> tuple[ChainVerification | None, ChainVerification | None]:
    """(the newest finished verification, a newer one still queued or running)."""
    finished = (
        ChainVerification.objects.exclude(
            status__in=(ChainVerification.Status.QUEUED, ChainVerification.Status.RUNNING)
        )
        .order_by("-requested_at", "-id")
        .first()
    )
    pending = ChainVerification.objects.filter(
        status__in=(ChainVerification.Status.QUEUED, ChainVerification.Status.RUNNING)
    )
    if finished is not None:
        pending = pending.filter(requested_at__gte=finished.requested_at)
    return finished, pending.order_by("-requested_at", "-id").first()
