"""Worker heartbeats, for /readyz and the dashboard, and the record of every periodic job run."""

from __future__ import annotations

from django.db import models


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
    what went wrong. Written by `kmsconsole.jobs.runs.job_run`; a run with no `finished_at` is running or died."""

    job = models.CharField(max_length=64, db_index=True)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    processed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.job} at {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def succeeded(self) -> bool:
        return self.finished_at is not None and not self.error
