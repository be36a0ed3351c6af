"""Celery tasks for keys. Thin: each calls one service, which is safe to run twice and concurrently."""

from __future__ import annotations

from celery import shared_task

from keys.services.deletion import keys_destroy_due
from keys.services.rotation import key_rotate_due


@shared_task(name="keys.tasks.rotate_due_keys", ignore_result=True)
def rotate_due_keys() -> int:
    """Beat, every minute: rotate the keys whose automatic rotation is due. Returns how many this run rotated."""
    return key_rotate_due().processed


@shared_task(name="keys.tasks.destroy_due_keys", ignore_result=True)
def destroy_due_keys() -> int:
    """Beat, every minute: destroy the keys whose deletion window has ended. Returns how many this run destroyed."""
    return keys_destroy_due().processed
