"""Audit events: one per request on every interface, allowed, denied or failed.

Append-only and hash-chained: each event stores the chain hash of its predecessor and its own, an HMAC under
a key derived from the root key, so an operator with database access can neither edit, remove nor reorder
events without `manage.py audit verify` naming the first broken one.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import F, Q

from kmsconsole.audit.expressions import KEY_POLICY_OPERATIONS, RE_ENCRYPT, Negated, ReEncryptSource

_ARN_TIME_SEQ_OPCLASSES = ["varchar_pattern_ops", "timestamptz_ops", "int8_ops"]

# The operations GetKeyLastUsage reports as a key's use: botocore's KeyLastUsageTrackingOperation, every
# cryptographic operation that uses the key's secret material (GetPublicKey and GenerateRandom are not uses). Sorted:
# one order for the index's predicate and every query's IN list.
KEY_USAGE_OPERATIONS = tuple(
    sorted(
        (
            "Decapsulate",
            "Decrypt",
            "DeriveSharedSecret",
            "Encapsulate",
            "Encrypt",
            "GenerateDataKey",
            "GenerateDataKeyPair",
            "GenerateDataKeyPairWithoutPlaintext",
            "GenerateDataKeyWithoutPlaintext",
            "GenerateMac",
            "ReEncrypt",
            "Sign",
            "Verify",
            "VerifyMac",
        )
    )
)


class Decision(models.TextChoices):
    """An audit event's decision (`AuditEvent.Decision`): "allowed" only for a request that succeeded."""

    ALLOWED = "allowed"
    DENIED = "denied"
    FAILED = "failed"


class AuditEvent(models.Model):
    Decision = Decision

    seq = models.BigIntegerField(unique=True, help_text="Position in the chain, gapless from 1.")
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    time = models.DateTimeField()
    # Indexed in Meta.indexes: one index serves both `=` and the trail's prefix search.
    request_id = models.CharField(max_length=64)
    interface = models.CharField(max_length=16)
    operation = models.CharField(max_length=64)
    caller_arn = models.CharField(max_length=2048, blank=True)
    caller_account = models.CharField(max_length=12, blank=True)
    access_key_id = models.CharField(max_length=128, blank=True)
    source_ip = models.CharField(max_length=45, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    key_arn = models.CharField(max_length=2048, blank=True)
    request_parameters = models.JSONField(null=True, blank=True)
    response_elements = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    decision = models.CharField(max_length=8, choices=Decision.choices)
    reason = models.TextField(blank=True, help_text="Why the request was allowed or denied, in plain words.")
    decided_by = models.CharField(
        max_length=512, blank=True, help_text="The statement or grant that decided."
    )
    notable = models.CharField(
        max_length=128, blank=True, help_text="Why an auditor should look at this event, if at all."
    )
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    # Not chained: derived from the chained key_arn, caller_account and (an allowed ReEncrypt) the source key in
    # response_elements by the recorder (kmsconsole.audit.scope), so the key's owner finds another account's requests
    # on its keys with an index. Readers check those fields too; `audit verify` reports a value that differs. A
    # database default too: a process still running the code before this column writes events without it.
    key_owner_account = models.CharField(
        max_length=12,
        blank=True,
        default="",
        db_default="",
        help_text="The account that owns the event's key (an allowed ReEncrypt: its source key first) when the "
        "caller is of another account, else blank.",
    )
    # Not chained either: derived from the chained decided_by (kmsconsole.audit.shown.hidden_from_key_owner), so the
    # key owner's "decided by" filter finds "an identity policy of the caller's account" with a partial index
    # instead of a regular expression on each of its events; the filter still tests decided_by.
    decided_by_caller_policy = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Whether the key's owner is shown decided_by as an identity policy of the caller's account.",
    )

    class Meta:
        ordering = ["-seq"]
        # The audit dashboard pages newest first by (time, seq) with a keyset cursor, always within one side of the
        # reader's trail (the caller's account, or the key owner's: kmsconsole.audit.scope) and a time range, and
        # filters by one column at a time: each filter has an index that ends in
        # (time, seq), so a filtered page is one index range scan, never a sort of the whole trail. Columns
        # that are mostly empty get partial indexes.
        indexes = [
            # The trail's request id filter is a prefix search. `db_index=True` made two indexes on PostgreSQL (a plain
            # one and a pattern one); the pattern one serves `=` too, so the plain one was only an insert per event.
            models.Index(
                fields=["request_id"], name="audit_request_id_idx", opclasses=["varchar_pattern_ops"]
            ),
            models.Index(fields=["caller_account", "time", "seq"], name="audit_account_time_idx"),
            # Pattern operator classes (PostgreSQL; ignored elsewhere) serve both the exact filter and a prefix:
            # a key's account (arn:...:<account>:key/) and a role's sessions (arn:...:assumed-role/<name>/).
            models.Index(
                fields=["key_arn", "time", "seq"],
                name="audit_key_time_idx",
                opclasses=_ARN_TIME_SEQ_OPCLASSES,
            ),
            models.Index(
                fields=["caller_arn", "time", "seq"],
                name="audit_caller_time_idx",
                opclasses=_ARN_TIME_SEQ_OPCLASSES,
            ),
            models.Index(fields=["operation", "time", "seq"], name="audit_operation_time_idx"),
            models.Index(fields=["decision", "time", "seq"], name="audit_decision_time_idx"),
            models.Index(fields=["decided_by", "time", "seq"], name="audit_decided_by_time_idx"),
            models.Index(fields=["source_ip", "time", "seq"], name="audit_source_ip_time_idx"),
            # The REST list's interface filter (a handful of values: one interface's events, a page at a time).
            models.Index(fields=["interface", "time", "seq"], name="audit_interface_time_idx"),
            models.Index(
                fields=["error_code", "time", "seq"], name="audit_error_time_idx", condition=~Q(error_code="")
            ),
            models.Index(
                fields=["notable", "time", "seq"], name="audit_notable_time_idx", condition=~Q(notable="")
            ),
            # The key owner's side of the trail (kmsconsole.audit.scope): a small share of the events. By time for
            # the dashboard's pages, by seq for the REST list's cursor (kmsconsole.api.filters.AuditCursor).
            models.Index(
                fields=["key_owner_account", "time", "seq"],
                name="audit_key_owner_time_idx",
                condition=~Q(key_owner_account=""),
            ),
            models.Index(
                fields=["key_owner_account", "seq"],
                name="audit_key_owner_seq_idx",
                condition=~Q(key_owner_account=""),
            ),
            # ... and its "an identity policy of the caller's account" filter (kmsconsole.audit.shown).
            models.Index(
                fields=["key_owner_account", "time", "seq"],
                name="audit_key_owner_policy_idx",
                condition=~Q(key_owner_account="") & Q(decided_by_caller_policy=True),
            ),
            # GetKeyLastUsage (kmsconsole.audit.last_usage): a key's latest successful cryptographic use is the
            # first entry of one index range, however many other events the key has (reads, refusals, failures),
            # so the answer costs the same on a key with millions of DescribeKey events. Only allowed uses are in
            # it: one more index entry for each of those events, written by the same INSERT, and no other write.
            # Ordered by -seq, an order no other index gives: by seq (or time) the planner may walk the seq index
            # or audit_key_time_idx back through other events instead, on a guess that uses are spread evenly.
            models.Index(
                F("key_arn"),
                Negated("seq"),
                name="audit_key_use_idx",
                condition=Q(decision=Decision.ALLOWED, operation__in=KEY_USAGE_OPERATIONS),
            ),
            # ... and an allowed ReEncrypt's source key, which its chained response elements name (the event is
            # filed under the destination): an expression over the chained field, so no column to keep in step.
            models.Index(
                ReEncryptSource(),
                Negated("seq"),
                name="audit_reencrypt_source_idx",
                condition=Q(decision=Decision.ALLOWED, operation=RE_ENCRYPT),
            ),
            # A key's previous policy in the trail (kmsconsole.audit.policy_history, an event's page): the newest
            # allowed policy-setting event of the key before a given one is the first entry of a range of this
            # index, however many Encrypts the key has. By -seq for the reason above.
            models.Index(
                F("key_arn"),
                Negated("seq"),
                name="audit_key_policy_idx",
                condition=Q(decision=Decision.ALLOWED, operation__in=KEY_POLICY_OPERATIONS),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.operation} {self.decision}"


class AuditContextEntry(models.Model):
    """One encryption-context pair of an event's request (EncryptionContext, the source and destination
    contexts of ReEncrypt, a grant's constraints), so the dashboard can filter by key and value with an index
    instead of reading every event's JSON. Filled when the event is written (kmsconsole.audit.context_index);
    not chained: the event's own request_parameters are, and this table is rebuilt from them."""

    event = models.ForeignKey(AuditEvent, on_delete=models.CASCADE, related_name="context_entries")
    key = models.CharField(max_length=128)
    # The value's first characters: enough to tell values apart, short enough for an index entry.
    value = models.CharField(max_length=256)

    class Meta:
        indexes = [models.Index(fields=["key", "value"], name="audit_context_pair_idx")]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class AuditChainHead(models.Model):
    """The last link of the chain. Appenders lock this single row, so links are assigned one at a time, and it
    lets `audit verify` notice events removed from the end of the chain."""

    last_seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64)
    # An HMAC over (last_seq, last_hash) under the root key: rewinding the head to hide removed events needs it.
    head_mac = models.CharField(max_length=64, default="")

    def __str__(self) -> str:
        return f"head at #{self.last_seq}"


class AuditChainBase(models.Model):
    """Where the chain in the database begins once retention has archived older events: the last archived
    event's seq and hash, with an HMAC under the root key, so `audit verify` checks that the first remaining
    event continues it and nobody can drop old events by claiming they were archived. Moved forward in the same
    transaction as each batch of archived events is deleted. No row: the chain begins at event #1."""

    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64)
    mac = models.CharField(max_length=64)
    archive_file = models.CharField(max_length=255, blank=True, help_text="The archive holding event #seq.")
    # The epoch of the boundary (covered by the MAC): the walk from it refuses a next link under an older key.
    key_id = models.CharField(
        max_length=16,
        blank=True,
        default="",
        help_text="The id of the root key event #seq's link is under (empty on boundaries written before it was kept).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"archived through #{self.seq}"


class ChainVerification(models.Model):
    """One verification of the chain: periodic (beat) or asked for from the console. A request is queued by the
    console and claimed by a worker; the result names the first broken event, if any."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        INTACT = "intact"
        BROKEN = "broken"
        ERROR = "error"

    trigger = models.CharField(max_length=16)  # "periodic", "on demand" or "command line"
    requested_by = models.CharField(max_length=2048, blank=True)
    requested_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    events_verified = models.BigIntegerField(default=0)
    first_seq = models.BigIntegerField(
        default=0, help_text="The first event in the database that was checked."
    )
    last_seq = models.BigIntegerField(default=0)
    problem_seq = models.BigIntegerField(null=True, blank=True)
    problem_event_id = models.CharField(max_length=36, blank=True)
    problem = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["status", "requested_at"], name="audit_verification_status_idx")]

    def __str__(self) -> str:
        return f"verification {self.pk} {self.status}"
