"""`python manage.py simulate`: would this principal's request be allowed? The engine decides, as for a real request.

    python manage.py simulate --principal arn:aws:iam::111122223333:user/alice --action kms:Decrypt \\
        --key 1234abcd-... [--context dept=finance ...] [--grant-token T ...] [--source-ip 10.0.0.1] \\
        [--time 2026-01-01T00:00:00Z] [--secure-transport | --no-secure-transport] \\
        [--draft-key-policy file://draft.json] [--draft-identity-policy NAME=file://policy.json] [--json]

Runs as the local operator through `perform()` (kmsconsole:SimulatePolicy, audited). Prints the decision and its
explanation (with the engine's trace), or the result as JSON with --json. Exit code 0 when the request would be
allowed, 1 when denied; a service error prints `{"Error": {"Code", "Message"}}` on stderr and exits 254.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from kmsconsole.core import errors
from kmsconsole.core.context import command_line_meta, operator_caller
from kmsconsole.operations import perform
from policies.analyzer.services import policy_simulate
from policies.analyzer.simulator import Simulation
from policies.management.commands.iam import SERVICE_ERROR_EXIT, _read_document

DENIED_EXIT = 1


def _pair(value: str) -> tuple[str, str]:
    name, sep, text = value.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {value!r}")
    return name, text


def _time(value: str) -> datetime:
    parsed = parse_datetime(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}")
    return parsed


def render(simulation: Simulation) -> str:
    """The decision, its explanation in plain words, notes, and the engine's trace."""
    data = simulation.to_dict()
    lines = [
        f"{data['decision'].upper()}: {data['principal']} ({data['caller_arn']}) {data['action']} on {data['key_arn']}",
        f"Why: {data['explanation']}",
    ]
    if data["access_denied_message"]:
        lines.append(f"A real request would get: AccessDeniedException: {data['access_denied_message']}")
    lines += [f"Note: {note}" for note in data["notes"]]
    lines.append("Trace:")
    lines += [f"  {note}" for note in data["trace"]]
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Simulate a KMS request: the decision of the policy engine and its explanation (exit 0 allowed, 1 denied)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--principal", required=True, help="ARN of a user, role, role session or account root"
        )
        parser.add_argument("--action", required=True, help="e.g. kms:Encrypt")
        parser.add_argument("--key", required=True, help="key id, key ARN, alias name or alias ARN")
        parser.add_argument("--context", type=_pair, action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--grant-token", action="append", default=[], dest="grant_tokens")
        parser.add_argument("--source-ip")
        parser.add_argument("--time", type=_time, help="ISO 8601, e.g. 2026-01-01T00:00:00Z (default: now)")
        parser.add_argument("--secure-transport", action=argparse.BooleanOptionalAction, default=None)
        parser.add_argument("--draft-key-policy", help="JSON text, or file://path")
        parser.add_argument("--draft-identity-policy", type=_pair, metavar="NAME=file://path")
        parser.add_argument("--account-id", default=settings.KMS_ACCOUNT_ID, help="the account the key is in")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            draft_key = _read_document(options["draft_key_policy"]) if options["draft_key_policy"] else None
            identity = options["draft_identity_policy"]
            draft_identity = (identity[0], _read_document(identity[1])) if identity else None
        except OSError as exc:
            raise CommandError(f"cannot read the draft: {exc}") from None
        context = dict(options["context"]) or None
        params: dict[str, Any] = {
            "Principal": options["principal"],
            "Action": options["action"],
            "KeyId": options["key"],
            "EncryptionContext": context,
            "GrantTokens": options["grant_tokens"],
            "SourceIp": options["source_ip"],
            "Time": options["time"].isoformat() if options["time"] else None,
            "SecureTransport": options["secure_transport"],
            "DraftKeyPolicy": draft_key,
            "DraftIdentityPolicy": {"Name": draft_identity[0], "Document": draft_identity[1]}
            if draft_identity
            else None,
        }
        holder: dict[str, Simulation] = {}

        def service(ctx: Any) -> dict[str, Any]:
            holder["result"] = policy_simulate(
                ctx=ctx,
                principal=options["principal"],
                action=options["action"],
                key_id=options["key"],
                encryption_context=context,
                grant_tokens=options["grant_tokens"],
                source_ip=options["source_ip"],
                time=options["time"],
                secure_transport=options["secure_transport"],
                draft_key_policy=draft_key,
                draft_identity_policy=draft_identity,
            )
            return {"Decision": "allowed" if holder["result"].allowed else "denied"}

        try:
            perform(
                "kmsconsole:SimulatePolicy",
                caller=operator_caller(options["account_id"]),
                meta=command_line_meta("manage.py simulate", options["account_id"]),
                params={name: value for name, value in params.items() if value not in (None, [], "")},
                service=service,
            )
        except errors.KmsError as exc:
            sys.stderr.write(json.dumps({"Error": {"Code": exc.code, "Message": exc.message}}) + "\n")
            raise SystemExit(SERVICE_ERROR_EXIT) from None
        simulation = holder["result"]
        self.stdout.write(
            json.dumps(simulation.to_dict(), indent=2) if options["json"] else render(simulation)
        )
        if not simulation.allowed:
            raise SystemExit(DENIED_EXIT)
