"""`python manage.py rootkey init`: create the root key (and SECRET_KEY) in KMS_DATA_DIR once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from kmsconsole.core.rootkey import create_root_key_file, create_secret_key_file, root_key_path


class Command(BaseCommand):
    help = "Create the root key and the Django secret key in KMS_DATA_DIR if none is configured (idempotent)."
    # The checks would refuse to run precisely because the root key this command creates is missing.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["init"])

    def handle(self, *args: Any, **options: Any) -> None:
        made = create_root_key_file()
        create_secret_key_file()
        if made:
            self.stdout.write(f"Root key created at {root_key_path()}")
        else:
            self.stdout.write("A root key is already configured; nothing changed.")
