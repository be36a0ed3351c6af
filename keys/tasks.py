"""Celery tasks for keys. Thin: each calls one service, which is safe to run twice and concurrently.

A database that is briefly unreachable (a restart, a failover) is retried with backoff; anything else fails the
run, which its JobRun records. Either way the due dates stay in the database, so the next beat tick catches up.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from keys.services.deletion import keys_destroy_due
from keys.services.rotation import key_rotate_due

TRANSIENT = (OperationalError, InterfaceError)
RETRY = {"autoretry_for": TRANSIENT, "retry_backoff": True, "retry_backoff_max": 60, "max_retries": 5}


@shared_task(name="keys.tasks.rotate_due_keys", ignore_result=True, **RETRY)
def rotate_due_keys() -> int:
    """Beat, every minute: rotate the keys whose automatic rotation is due. Returns how many this run rotated."""
    return key_rotate_due().processed


@shared_task(name="keys.tasks.destroy_due_keys", ignore_result=True, **RETRY)
def destroy_due_keys() -> int:
    """Beat, every minute: destroy the keys whose deletion window has ended. Returns how many this run destroyed."""
    return keys_destroy_due().processed
