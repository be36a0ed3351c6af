"""Worker heartbeats, for /readyz and the dashboard, and the record of every periodic job run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import models

# What a caller other than the operator reads in place of a failure that concerns no account (a run that stopped
# on an exception, a broken audit chain): that the run failed, not why, since the text may name anything.
FAILED_FOR_THE_OPERATOR = "The run failed; the reason is in the worker log, for the operator."


class WorkerHeartbeat(models.Model):
    """The last time a worker proved it consumes tasks: beat enqueues `heartbeat`, a worker runs it."""

    hostname = models.CharField(max_length=255, unique=True)
    seen_at = models.DateTimeField()

    class Meta:
        ordering = ["-seen_at"]

    def __str__(self) -> str:
        return f"{self.hostname} at {self.seen_at:%Y-%m-%d %H:%M:%S}"


class JobRun(models.Model):
    """One run of a periodic job (a beat sweeper): when it started and finished, how many rows it processed, and
    what went wrong. Written by `kmsconsole.jobs.runs.job_run`; a run with no `finished_at` is running or died.

    A sweep works over every account: `by_account` says what it did in each (account id -> {"processed": n,
    "errors": [...]}), so each account is shown its own share only (`shown_to`); `counts_by_account` says the job
    counts per account at all (the sweeps do; the audit jobs count the whole trail). `processed` and `error` are
    the whole run's, for the operator."""

    job = models.CharField(max_length=64, db_index=True)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    processed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    # Database defaults too: a worker still running code from before these columns can go on inserting runs.
    by_account = models.JSONField(default=dict, db_default={}, blank=True)
    counts_by_account = models.BooleanField(default=False, db_default=False)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.job} at {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def succeeded(self) -> bool:
        return self.finished_at is not None and not self.error

    def shown_to(self, account_id: str | None) -> ShownRun:
        """The run as a caller of `account_id` may see it (None: the operator, who sees all of it).

        Every run's job and times are shown (the sweeps run for every account; whether they run is each account's
        business). Of the counts and failures, only those about the account's own keys and grants: the count of a
        job that does not count per account (the audit jobs count the whole trail; any run recorded before runs
        were attributed) shows as None, whatever it is, and a failure about no account (or a run recorded before
        runs were attributed) as FAILED_FOR_THE_OPERATOR."""
        if account_id is None:
            return ShownRun(self.pk, self.job, self.started_at, self.finished_at, self.processed, self.error)
        parts: dict[str, Any] = self.by_account if isinstance(self.by_account, dict) else {}
        attributed = [part for owner, part in parts.items() if owner and isinstance(part, dict)]
        own = parts.get(account_id) if account_id else None
        own = own if isinstance(own, dict) else {}
        processed: int | None = int(own.get("processed", 0)) if self.counts_by_account else None
        failures = [str(failure) for failure in own.get("errors", ())]
        unattributed = parts.get("") if isinstance(parts.get(""), dict) else {}
        attributed_failures = any(part.get("errors") for part in attributed)
        if self.error and (unattributed.get("errors") or not attributed_failures):
            failures.append(FAILED_FOR_THE_OPERATOR)
        return ShownRun(self.pk, self.job, self.started_at, self.finished_at, processed, "; ".join(failures))


@dataclass(frozen=True)
class ShownRun:
    """A job run as one caller may see it (`JobRun.shown_to`)."""

    id: int
    job: str
    started_at: datetime
    finished_at: datetime | None
    processed: int | None
    error: str

    @property
    def succeeded(self) -> bool:
        return self.finished_at is not None and not self.error
