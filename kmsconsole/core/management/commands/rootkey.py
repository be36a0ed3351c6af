"""`python manage.py rootkey init|rotate|status|reseal|retire`: the root key from the shell.

`init` creates the root key (and SECRET_KEY) in KMS_DATA_DIR once. The others rotate it
(`kmsconsole.core.rootkey_rotation`, where the procedure is described): each runs one service as the local
operator, through `perform()` (authorized and audited) but for `status`, a read. They print key ids, never a key.
A refusal prints its reason on stderr and exits 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from kmsconsole.core import errors
from kmsconsole.core.context import command_line_meta, operator_caller
from kmsconsole.core.rootkey import create_root_key_file, create_secret_key_file, root_key_path
from kmsconsole.core.rootkey_movers import KEPT_CHANGING
from kmsconsole.core.rootkey_rotation import (
    DEFAULT_BATCH_SIZE,
    key_file_held,
    root_key_rotate,
    root_keys_reseal,
    root_keys_retire,
    root_keys_status,
)
from kmsconsole.operations import OperationContext, perform

ROTATED = (
    "No restart is needed: every process reads the rewritten key file within seconds (one that cannot logs an "
    "error and keeps its keys). Run `manage.py rootkey reseal` now."
)


class Command(BaseCommand):
    help = (
        "The root key: init (create one in KMS_DATA_DIR if none is configured), rotate (a new current key first "
        "in the key file), status (the keys by id and role, and what is still under a previous key), reseal "
        "(move it to the current key), retire (mark the previous keys retired once nothing needs them)."
    )
    # `init` must run where the checks would refuse (no root key yet); the others need a configured key anyway.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["init", "rotate", "status", "reseal", "retire"])
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=(
                f"reseal: items per transaction (default {DEFAULT_BATCH_SIZE}); a family (a key with its aliases "
                "and tags, a principal with its inline policies) moves in a transaction of its own, one per parent."
            ),
        )
        parser.add_argument(
            "--end-unmovable",
            action="store_true",
            help="retire: first end what no re-seal can move (revoke the tokens whose digests need a previous key).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "init":
            self._init()
        elif action == "status":
            self._status(root_keys_status())
        elif action == "rotate":
            self._rotated(
                self._rewriting("kmsconsole:RotateRootKey", {}, lambda ctx: root_key_rotate(ctx=ctx))
            )
        elif action == "reseal":
            size = options["batch_size"]
            self._resealed(
                self._perform(
                    "kmsconsole:ResealRootKeys",
                    {"BatchSize": size},
                    lambda ctx: root_keys_reseal(ctx=ctx, batch_size=size),
                )
            )
        else:
            end = options["end_unmovable"]
            self._retired(
                self._rewriting(
                    "kmsconsole:RetireRootKeys",
                    {"EndUnmovable": end},
                    lambda ctx: root_keys_retire(ctx=ctx, end_unmovable=end),
                )
            )

    def _rewriting(
        self, name: str, params: dict[str, Any], service: Callable[[OperationContext], dict[str, Any]]
    ) -> dict[str, Any]:
        """`_perform` with the key file held from the operation's planning to its rename after the commit."""
        with key_file_held() as held:
            result = self._perform(name, params, service)
        if held is not None and held.failure:
            raise CommandError(held.failure)
        return result

    def _perform(
        self, name: str, params: dict[str, Any], service: Callable[[OperationContext], dict[str, Any]]
    ) -> dict[str, Any]:
        try:
            return perform(
                name,
                caller=operator_caller(settings.KMS_ACCOUNT_ID, "manage.py rootkey"),
                meta=command_line_meta("manage.py rootkey", settings.KMS_ACCOUNT_ID),
                params=params,
                service=service,
            )
        except errors.KmsError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None

    def _init(self) -> None:
        made = create_root_key_file()
        create_secret_key_file()
        if made:
            self.stdout.write(f"Root key created at {root_key_path()}")
        else:
            self.stdout.write("A root key is already configured; nothing changed.")

    def _rotated(self, result: dict[str, Any]) -> None:
        self.stdout.write(f"New current root key: {result['CurrentKeyId']}")
        for key_id in result["PreviousKeyIds"]:
            self.stdout.write(f"Previous root key (still readable): {key_id}")
        self.stdout.write(ROTATED)

    def _status(self, status: dict[str, Any]) -> None:
        self.stdout.write(f"Root keys ({status['Source']}):")
        for key in status["Keys"]:
            self.stdout.write(f"  {key['KeyId']}  {key['Role']}")
        left = 0
        self.stdout.write("Under a previous root key:")
        for entry in status["Dependents"]:
            left += entry["Remaining"]
            how = f" ({entry['HowTheyMove']})" if entry["Remaining"] else ""
            self.stdout.write(f"  {entry['Name']}: {entry['Remaining']}{how}")
        previous = any(key["Role"] == "previous" for key in status["Keys"])
        if left:
            self.stdout.write("Run `manage.py rootkey reseal`; retire refuses until nothing remains.")
        elif previous:
            self.stdout.write("Nothing remains: `manage.py rootkey retire` may retire the previous keys.")

    def _resealed(self, result: dict[str, Any]) -> None:
        for entry in result["Dependents"]:
            failed = f", {entry['Failed']} failed their integrity check" if entry["Failed"] else ""
            self.stdout.write(f"{entry['Name']}: {entry['Moved']} moved{failed}")
            for name in entry["FailedItems"]:
                why = "run reseal again" if KEPT_CHANGING in name else "verifies under no readable root key"
                self.stdout.write(f"  left as it is ({why}): {name}")
        self.stdout.write(
            f"{result['Moved']} moved to root key {result['CurrentKeyId']}, {result['Failed']} left as they are."
        )
        if result["Failed"]:
            raise CommandError(
                "Some items were left as they are (named above): restore or delete those that verify under no "
                "readable root key, and run `manage.py rootkey reseal` again for families whose children kept "
                "changing; retire refuses while they remain."
            )

    def _retired(self, result: dict[str, Any]) -> None:
        for name, count in result["Ended"].items():
            self.stdout.write(f"{name}: {count} ended")
        if not result["RetiredKeyIds"]:
            self.stdout.write("No previous root key to retire; nothing changed.")
            return
        for key_id in result["RetiredKeyIds"]:
            self.stdout.write(f"Retired root key: {key_id}")
        self.stdout.write(
            f"Current root key: {result['CurrentKeyId']}. Every process stops accepting the retired keys within "
            "seconds, with no restart."
        )
