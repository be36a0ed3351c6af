"""Celery tasks for keys. Thin: each calls one service, which is safe to run twice and concurrently."""

from __future__ import annotations

from celery import shared_task

from keys.services.rotation import key_rotate_due


@shared_task(name="keys.tasks.rotate_due_keys", ignore_result=True)
def rotate_due_keys() -> int:
    """Beat, every minute: rotate the keys whose automatic rotation is due. Returns how many this run rotated."""
    return key_rotate_due().processed
