"""`python manage.py audit verify`: walk the hash chain; exit 1 naming the first broken event."""

from __future__ import annotations

from contextlib import closing
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kmsconsole.audit.chain import CHAINED_FIELDS, GENESIS_HASH, verify_events
from kmsconsole.audit.models import AuditChainHead, AuditEvent

_BATCH = 2000


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["verify"])

    def handle(self, *args: Any, **options: Any) -> None:
        head = AuditChainHead.objects.filter(pk=1).first()
        head_seq, head_hash, mac = (
            (head.last_seq, head.last_hash, head.head_mac) if head else (0, GENESIS_HASH, "")
        )
        fields = (*CHAINED_FIELDS, "prev_hash", "hash")
        events = AuditEvent.objects.order_by("seq").values(*fields).iterator(chunk_size=_BATCH)
        # closing(): stopping at a broken link must release PostgreSQL's server-side cursor now, not at GC.
        with closing(events):
            problem = verify_events(events, head_seq, head_hash, mac)
        if problem is not None:
            raise CommandError(f"Audit chain broken at {problem}")
        self.stdout.write(f"Audit chain intact: {head_seq} events verified.")
