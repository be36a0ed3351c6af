"""A key's last successful cryptographic use, read from the audit trail (GetKeyLastUsage).

The trail already records every request, so nothing is written on the cryptographic path to answer this: no "last
used" row to update per Encrypt. A use is an event of one of `KEY_USAGE_OPERATIONS` whose decision is "allowed"
(the recorder writes "allowed" only for a request that succeeded: a refusal is "denied", an error after the
decision, a dry run or a mismatched signature or MAC "failed"). It counts for the key the event is filed under
(`key_arn`, whoever the caller, any interface), and an allowed ReEncrypt counts for its source key as well, which
its chained response elements name (`SourceKeyId`; the event is filed under the destination).

"Last" is the chain's order: the use with the largest `seq`. The answer reports that event's own time, which is
its writer's clock when it recorded the request: writers racing into one group commit may chain a use whose time is
a little earlier than another use's, so another use may have a later time than the one reported.

On PostgreSQL each of the two is the first entry of one range of a partial index by (key, -seq)
(`audit_key_use_idx`, `audit_reencrypt_source_idx`, kmsconsole.audit.models): the answer costs two index probes
however many other events the key has. The queries order by the same `-seq` (`Negated`), which no other index
gives, so the planner has no ordered path but these (by seq it could walk the seq index back through every newer
event, guessing that the key's uses are spread evenly among them). On SQLite the ReEncrypt query
uses its partial index too (SQLite matches a predicate's plain equalities against the bound values), but not the
IN list of the other: that query orders by (-time, -seq) and keeps its decision and operation terms off every
index (`NotIndexed`), so SQLite walks audit_key_time_idx (key, time, seq) backwards within the key, to the key's
latest use: no scan of the trail, no sort, but a walk over the key's newer events that are no use.

The trail in the database may not reach back to a key's creation: retention archives old events
(kmsconsole.audit.retention) and moves the archive boundary (AuditChainBase). Usage is tracked from the first event
the database still holds (`trail_begins`), or the key's creation if that is later: AWS's TrackingStartDate.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import F, Q, QuerySet
from django.db.models.lookups import Exact, In

from kmsconsole.audit.expressions import RE_ENCRYPT, Negated, NotIndexed, ReEncryptSource
from kmsconsole.audit.models import KEY_USAGE_OPERATIONS, AuditChainBase, AuditEvent

_FIELDS = ("operation", "time", "seq", "event_id", "request_id")


@dataclass(frozen=True)
class LastUse:
    """The event of a key's last successful cryptographic operation."""

    operation: str
    time: datetime
    event_id: uuid.UUID
    request_id: str


def uses_filed_under(key_arn: str) -> QuerySet[AuditEvent]:
    """The allowed cryptographic events filed under the key, latest first (`audit_key_use_idx` on PostgreSQL,
    audit_key_time_idx elsewhere: see the module's docstring)."""
    if connection.vendor == "postgresql":
        return AuditEvent.objects.filter(
            key_arn=key_arn, decision=AuditEvent.Decision.ALLOWED, operation__in=KEY_USAGE_OPERATIONS
        ).order_by(Negated("seq"))
    return AuditEvent.objects.filter(
        Q(key_arn=key_arn),
        Exact(NotIndexed("decision"), AuditEvent.Decision.ALLOWED),
        In(NotIndexed("operation"), KEY_USAGE_OPERATIONS),
    ).order_by(F("time").desc(), F("seq").desc())


def re_encryptions_from(key_arn: str) -> QuerySet[AuditEvent]:
    """The allowed ReEncrypts whose source is the key, latest first (`audit_reencrypt_source_idx`, on SQLite too:
    its predicate's terms are plain equalities, which SQLite matches against the bound values; the filter is the
    index's own expression, `ReEncryptSource`, compared with a plain `=`)."""
    return (
        AuditEvent.objects.annotate(source_key=ReEncryptSource())
        .filter(source_key=key_arn, decision=AuditEvent.Decision.ALLOWED, operation=RE_ENCRYPT)
        .order_by(Negated("seq"))
    )


def last_use(key_arn: str) -> LastUse | None:
    """The key's latest successful cryptographic use still in the trail, None if there is none."""
    found: list[dict[str, Any]] = [
        row
        for row in (
            uses_filed_under(key_arn).values(*_FIELDS).first(),
            re_encryptions_from(key_arn).values(*_FIELDS).first(),
        )
        if row is not None
    ]
    if not found:
        return None
    latest = max(found, key=lambda row: row["seq"])
    return LastUse(latest["operation"], latest["time"], latest["event_id"], latest["request_id"])


def trail_begins() -> datetime | None:
    """When the trail the database holds begins, once retention has archived older events; None while it holds
    every event since the first (then a key's use is tracked from its creation, itself an event).

    The first event after the archive boundary (by seq: the unique index); with none left, the boundary's last
    move, after which nothing was archived."""
    boundary = AuditChainBase.objects.filter(pk=1).values_list("seq", "updated_at").first()
    if boundary is None or boundary[0] <= 0:
        return None
    seq, moved_at = boundary
    first = AuditEvent.objects.filter(seq__gt=seq).order_by("seq").values_list("time", flat=True).first()
    return first if first is not None else moved_at


def tracking_start(created_at: datetime) -> datetime:
    """AWS's TrackingStartDate for a key created at `created_at`: when the trail the database holds begins, or the
    key's creation, whichever is later."""
    begins = trail_begins()
    return created_at if begins is None else max(created_at, begins)
