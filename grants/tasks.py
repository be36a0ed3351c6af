"""Celery tasks for grants. Thin: each takes ids, calls one service, and is safe to run twice or concurrently.

`propagate_grant` is enqueued after a CreateGrant (or a delayed retirement) commits, due when the grant is; it
only makes propagation prompt. The beat sweeper `propagate_due_grants` finds every due grant by its columns, so a
lost message (Redis flushed, a worker killed before it acknowledged) only delays a grant by one sweep.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from grants.services.propagation import grant_propagate, grants_propagate_due

# Transient database failures (a restart, a dropped connection) are retried with exponential backoff.
MAX_RETRIES = 8
BACKOFF_CAP_SECONDS = 60


def _transient(exc: BaseException) -> bool:
    """A database hiccup, raised directly or wrapped by the audit layer (which turns failures into KMS errors)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OperationalError | InterfaceError):
            return True
        seen = seen.__cause__
    return False


@shared_task(bind=True, name="grants.tasks.propagate_grant", acks_late=True, ignore_result=True)
def propagate_grant(self: Any, grant_id: str) -> str | None:
    """Make one grant effective (or complete its delayed removal) once it is due; nothing when already done."""
    try:
        return grant_propagate(grant_id=grant_id)
    except Exception as exc:
        if not _transient(exc):
            raise
        countdown = min(2**self.request.retries, BACKOFF_CAP_SECONDS)
        raise self.retry(exc=exc, countdown=countdown, max_retries=MAX_RETRIES) from exc


@shared_task(name="grants.tasks.propagate_due_grants", acks_late=True, ignore_result=True)
def propagate_due_grants() -> int:
    """Beat, every few seconds: propagate the grants that are due. Returns how many this run changed. Not retried:
    the next beat run is the retry, and every run leaves its JobRun record (with the error, if it failed)."""
    return grants_propagate_due().processed
