"""`python manage.py audit verify [--archive DIR]`: walk the hash chain; exit 1 naming the first broken event.

The chain in the database starts where retention's archive ends (kmsconsole.audit.verification); with
`--archive DIR` the archive files are checked too, and that the database continues them.
`python manage.py audit reindex-context` fills the encryption-context index for events written before it existed.
`python manage.py audit reindex-key-owners` sets each event's key owner columns (the key owner's side of the trail,
kmsconsole.audit.derived) from its chained fields where they differ: events written by a process still running older
code, or a value edited in the database (`verify` reports those).

Each runs as the operator through perform(), audited like any other operation (kmsconsole:VerifyAuditChain,
kmsconsole:ReindexAuditContext, kmsconsole:ReindexAuditKeyOwners); a verify is kept where the dashboard's chain
status and the overview's verification job read it (kmsconsole.audit.verification.chain_verification_run).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from kmsconsole.audit.maintenance import audit_context_index_rebuild, audit_key_owners_rebuild
from kmsconsole.audit.models import ChainVerification
from kmsconsole.audit.retention import verify_archive
from kmsconsole.audit.verification import ChainResult, chain_verification_run
from kmsconsole.core import errors
from kmsconsole.core.context import command_line_meta, operator_caller
from kmsconsole.operations import OperationContext, perform


class Command(BaseCommand):
    help = (
        "Verify the audit trail's hash chain (and its archive), or rebuild the encryption-context index or the "
        "key owner column. Each is an audited operation of the operator's."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["verify", "reindex-context", "reindex-key-owners"])
        parser.add_argument("--archive", type=Path, help="Also verify the archive files in this folder.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "reindex-context":
            indexed = self._perform(action, "kmsconsole:ReindexAuditContext", {}, audit_context_index_rebuild)
            self.stdout.write(f"Indexed the encryption contexts of {indexed['EventsIndexed']} events.")
            return
        if action == "reindex-key-owners":
            changed = self._perform(action, "kmsconsole:ReindexAuditKeyOwners", {}, audit_key_owners_rebuild)
            self.stdout.write(
                f"Set the key owner columns of {changed['EventsChanged']} events from their chained fields."
            )
            return
        self._verify(options["archive"])

    def _verify(self, folder: Path | None) -> None:
        base_epoch = ""
        params: dict[str, Any] = {}
        if folder is not None:
            # The archive's files are read before the operation (as `iam` reads a policy file): the database's
            # walk goes on in the epoch the archive reached (a boundary written before it kept its own names none).
            if not folder.is_dir():
                raise CommandError(f"{folder} is not a folder.")
            archive = verify_archive(folder)
            if archive.problem:
                raise CommandError(f"Audit archive broken: {archive.problem}")
            self.stdout.write(
                f"Audit archive intact: {archive.events} events in {archive.files} files, through #{archive.last_seq}."
            )
            base_epoch = archive.base_epoch
            params = {
                "Archive": {"Files": archive.files, "Events": archive.events, "LastSeq": archive.last_seq}
            }
        held: dict[str, ChainResult] = {}

        def verify(ctx: OperationContext) -> dict[str, Any]:
            verification, held["result"] = chain_verification_run(ctx=ctx, base_epoch=base_epoch)
            return _verification_elements(verification)

        unrecorded = ""
        try:
            self._perform("verify", "kmsconsole:VerifyAuditChain", params, verify)
        except CommandError as exc:
            if "result" not in held:
                raise
            # The walk ended (and is kept for the dashboard) but its event could not be written: a chain head
            # changed behind the service's back refuses new events. The walk's finding comes first.
            unrecorded = f" (its audit event could not be written: {exc})"
        result = held["result"]
        if result.problem is not None:
            raise CommandError(f"Audit chain broken at {result.problem}{unrecorded}")
        if unrecorded:
            raise CommandError(f"Audit chain intact{unrecorded}")
        archived = f" after the archive's #{result.first_seq - 1}" if result.first_seq > 1 else ""
        self.stdout.write(f"Audit chain intact: {result.verified} events verified{archived}.")
        if result.derived is not None:
            # A finding beside an intact chain: the key owner's side may miss these events until they are rebuilt.
            self.stdout.write(f"Found: {result.derived}.")

    @staticmethod
    def _perform(
        action: str,
        operation: str,
        params: dict[str, Any],
        service: Callable[..., dict[str, Any]],
    ) -> dict[str, Any]:
        try:
            return perform(
                operation,
                caller=operator_caller(settings.KMS_ACCOUNT_ID, "manage.py audit"),
                meta=command_line_meta(f"manage.py audit {action}", settings.KMS_ACCOUNT_ID),
                params=params,
                service=lambda ctx: service(ctx=ctx),
            )
        except errors.KmsError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None


def _verification_elements(verification: ChainVerification) -> dict[str, Any]:
    """What the event records of the walk: the record the dashboard shows, and what it found."""
    elements: dict[str, Any] = {
        "VerificationId": verification.pk,
        "Status": verification.status,
        "EventsVerified": verification.events_verified,
        "FirstSeq": verification.first_seq,
        "LastSeq": verification.last_seq,
    }
    if verification.problem_seq is not None:
        elements["ProblemSeq"] = verification.problem_seq
    return elements
