"""`python manage.py audit verify [--archive DIR]`: walk the hash chain; exit 1 naming the first broken event.

The chain in the database starts where retention's archive ends (kmsconsole.audit.verification); with
`--archive DIR` the archive files are checked too, and that the database continues them.
`python manage.py audit reindex-context` fills the encryption-context index for events written before it existed.
`python manage.py audit reindex-key-owners` sets each event's key owner columns (the key owner's side of the trail,
kmsconsole.audit.derived) from its chained fields where they differ: events written by a process still running older
code, or a value edited in the database (`verify` reports those).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kmsconsole.audit.context_index import reindex
from kmsconsole.audit.derived import reindex as reindex_derived
from kmsconsole.audit.retention import verify_archive
from kmsconsole.audit.verification import verify_chain


class Command(BaseCommand):
    help = (
        "Verify the audit trail's hash chain (and its archive), or rebuild the encryption-context index or the "
        "key owner column."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["verify", "reindex-context", "reindex-key-owners"])
        parser.add_argument("--archive", type=Path, help="Also verify the archive files in this folder.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "reindex-context":
            self.stdout.write(f"Indexed the encryption contexts of {reindex()} events.")
            return
        if options["action"] == "reindex-key-owners":
            self.stdout.write(
                f"Set the key owner columns of {reindex_derived()} events from their chained fields."
            )
            return
        folder, base_epoch = options["archive"], ""
        if folder is not None:
            if not folder.is_dir():
                raise CommandError(f"{folder} is not a folder.")
            archive = verify_archive(folder)
            if archive.problem:
                raise CommandError(f"Audit archive broken: {archive.problem}")
            self.stdout.write(
                f"Audit archive intact: {archive.events} events in {archive.files} files, through #{archive.last_seq}."
            )
            # The database's walk goes on in the epoch the archive's reached (a boundary written before it kept
            # its own names none).
            base_epoch = archive.base_epoch
        result = verify_chain(base_epoch=base_epoch)
        if result.problem is not None:
            raise CommandError(f"Audit chain broken at {result.problem}")
        archived = f" after the archive's #{result.first_seq - 1}" if result.first_seq > 1 else ""
        self.stdout.write(f"Audit chain intact: {result.verified} events verified{archived}.")
        if result.derived is not None:
            # A finding beside an intact chain: the key owner's side may miss these events until they are rebuilt.
            self.stdout.write(f"Found: {result.derived}.")
