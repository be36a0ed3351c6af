"""Celery tasks for the jobs app. Thin: they record one fact and return."""

from __future__ import annotations

import socket
from typing import Any

from celery import shared_task
from django.utils import timezone

from kmsconsole.jobs.models import WorkerHeartbeat


@shared_task(bind=True, name="kmsconsole.jobs.tasks.heartbeat", ignore_result=True)
def heartbeat(self: Any) -> None:
    """Record that a worker is alive and consuming the queue (idempotent: one row per worker)."""
    hostname = self.request.hostname or socket.gethostname()
    WorkerHeartbeat.objects.update_or_create(hostname=hostname, defaults={"seen_at": timezone.now()})
