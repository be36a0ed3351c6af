"""Celery tasks of the audit trail. Thin: each calls one function of kmsconsole.audit.verification or
kmsconsole.audit.retention, which records its JobRun; a database that is briefly unreachable is retried."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from kmsconsole.audit import retention, verification

RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 5,
}


@shared_task(name="kmsconsole.audit.tasks.verify_audit_chain", ignore_result=True, **RETRY)
def verify_audit_chain() -> int:
    """Beat, every 10 minutes: verify the chain; returns how many events were verified."""
    return verification.verify_periodically().events_verified


@shared_task(name="kmsconsole.audit.tasks.verify_audit_chain_requested", ignore_result=True, **RETRY)
def verify_audit_chain_requested(verification_id: int) -> None:
    """A verification asked for from the console (kmsconsole:VerifyAuditChain), by id."""
    verification.verify_requested(verification_id)


@shared_task(name="kmsconsole.audit.tasks.archive_old_audit_events", ignore_result=True, **RETRY)
def archive_old_audit_events() -> int:
    """Beat, hourly: archive and remove events older than KMS_AUDIT_RETENTION_DAYS (nothing when unset)."""
    return retention.archive_due().processed
