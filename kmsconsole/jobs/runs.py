"""The record every periodic job run leaves (DESIGN.md, Workers): `with job_run("name") as run: ...`.

The row is written when the run starts, outside any transaction, so a run that never finishes (a killed worker)
shows as started and unfinished. The job counts its work in `run.processed` and may note partial failures with
`run.fail(...)`; an exception escaping the block is recorded and re-raised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

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

    def fail(self, what: str) -> None:
        self.failures.append(what)


@contextmanager
def job_run(job: str) -> Iterator[RunRecorder]:
    """Record one run of `job`: a row at the start, its counts and errors at the end."""
    recorder = RunRecorder(JobRun.objects.create(job=job, started_at=timezone.now()))
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
    run.save(update_fields=["finished_at", "processed", "error"])
