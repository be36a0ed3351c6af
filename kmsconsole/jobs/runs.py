"""The record every periodic job run leaves (DESIGN.md, Workers): `with job_run("name") as run: ...`.

The row is written when the run starts, outside any transaction, so a run that never finishes (a killed worker)
shows as started and unfinished. The job counts its work with `run.count(account_id)` (or, for work that belongs
to no account, `run.processed += 1`) and may note partial failures with `run.fail(..., account_id=...)`; an
exception escaping the block is recorded (about no account) and re-raised. Naming the account of each count and
failure is what lets each account see its own share of a sweep and nothing of the others'
(`JobRun.shown_to`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.utils import timezone

from kmsconsole.core import errors
from kmsconsole.jobs.models import JobRun

logger = logging.getLogger(__name__)

# An error column is for people reading the dashboard, not a log: long texts are cut.
ERROR_MAX_CHARS = 2000


def describe_error(exc: BaseException) -> str:
    """A one-line description of a failure. KMS errors carry messages written to be shown (never secrets); other
    exceptions are named by class only, since their text may quote anything."""
    if isinstance(exc, errors.KmsError):
        return str(exc)
    return f"{type(exc).__name__} (see the worker log)"


class RunRecorder:
    """What a job sees of its run: a counter and a place for failures that did not stop the run."""

    def __init__(self, run: JobRun) -> None:
        self.run = run
        self.processed = 0
        self.failures: list[str] = []
        self.by_account: dict[str, dict[str, Any]] = {}

    def _share(self, account_id: str) -> dict[str, Any]:
        return self.by_account.setdefault(account_id, {"processed": 0, "errors": []})

    def count(self, account_id: str) -> None:
        """One row of `account_id` processed."""
        self.processed += 1
        self._share(account_id)["processed"] += 1

    def fail(self, what: str, *, account_id: str = "") -> None:
        """A failure, about a key or grant of `account_id` ("" for one about no account: shown to the operator
        only, since its text may name anything)."""
        self.failures.append(what)
        self._share(account_id)["errors"].append(what)


@contextmanager
def job_run(job: str, *, counts_by_account: bool = False) -> Iterator[RunRecorder]:
    """Record one run of `job`: a row at the start, its counts and errors at the end. `counts_by_account`: the job
    counts what it processes with `RunRecorder.count(account_id)` (a sweep over keys or grants), so each account
    may see its own count; otherwise no account is shown a count."""
    recorder = RunRecorder(
        JobRun.objects.create(job=job, started_at=timezone.now(), counts_by_account=counts_by_account)
    )
    try:
        yield recorder
    except BaseException as exc:
        logger.exception("Job %s failed", job)
        recorder.fail(describe_error(exc))
        _finish(recorder)
        raise
    _finish(recorder)


def _finish(recorder: RunRecorder) -> None:
    run = recorder.run
    run.finished_at = timezone.now()
    run.processed = recorder.processed
    run.error = "; ".join(recorder.failures)[:ERROR_MAX_CHARS]
    run.by_account = {
        account_id: {"processed": share["processed"], "errors": _cut(share["errors"])}
        for account_id, share in recorder.by_account.items()
    }
    run.save(update_fields=["finished_at", "processed", "error", "by_account"])


def _cut(failures: list[str]) -> list[str]:
    """An account's failures, at most ERROR_MAX_CHARS of them in all (as the run's error column)."""
    kept: list[str] = []
    left = ERROR_MAX_CHARS
    for failure in failures:
        if left <= 0:
            break
        kept.append(failure[:left])
        left -= len(failure) + 2
    return kept
