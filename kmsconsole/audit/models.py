"""Audit events: one per request on every interface, allowed, denied or failed.

Append-only and hash-chained: each event stores the chain hash of its predecessor and its own, an HMAC under
a key derived from the root key, so an operator with database access can neither edit, remove nor reorder
events without `manage.py audit verify` naming the first broken one.
"""

from __future__ import annotations

import uuid

from django.db import models


class AuditEvent(models.Model):
    class Decision(models.TextChoices):
        ALLOWED = "allowed"
        DENIED = "denied"
        FAILED = "failed"

    seq = models.BigIntegerField(unique=True, help_text="Position in the chain, gapless from 1.")
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    time = models.DateTimeField(db_index=True)
    request_id = models.CharField(max_length=64, db_index=True)
    interface = models.CharField(max_length=16)
    operation = models.CharField(max_length=64, db_index=True)
    caller_arn = models.CharField(max_length=2048, blank=True, db_index=True)
    caller_account = models.CharField(max_length=12, blank=True)
    access_key_id = models.CharField(max_length=128, blank=True)
    source_ip = models.CharField(max_length=45, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    key_arn = models.CharField(max_length=2048, blank=True, db_index=True)
    request_parameters = models.JSONField(null=True, blank=True)
    response_elements = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    decision = models.CharField(max_length=8, choices=Decision.choices, db_index=True)
    reason = models.TextField(blank=True, help_text="Why the request was allowed or denied, in plain words.")
    decided_by = models.CharField(
        max_length=512, blank=True, help_text="The statement or grant that decided."
    )
    notable = models.CharField(
        max_length=128,
        blank=True,
        db_index=True,
        help_text="Why an auditor should look at this event, if at all.",
    )
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.operation} {self.decision}"


class AuditChainHead(models.Model):
    """The last link of the chain. Appenders lock this single row, so links are assigned one at a time, and it
    lets `audit verify` notice events removed from the end of the chain."""

    last_seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64)
    # An HMAC over (last_seq, last_hash) under the root key: rewinding the head to hide removed events needs it.
    head_mac = models.CharField(max_length=64, default="")

    def __str__(self) -> str:
        return f"head at #{self.last_seq}"
