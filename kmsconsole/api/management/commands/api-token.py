"""`python manage.py api-token create|revoke`: REST API tokens from the shell, as the local operator, audited.

The token is printed once, in the JSON on stdout; only its prefix and a keyed hash are stored.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from kmsconsole.api.tokens import api_token_create, api_token_revoke
from kmsconsole.core import errors
from kmsconsole.core.context import RequestMeta, operator_caller
from kmsconsole.operations import OperationContext, perform
from policies.selectors import account_get

SERVICE_ERROR_EXIT = 254


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


class Command(BaseCommand):
    help = "Create or revoke REST API tokens (printed once, stored as a keyed hash)."

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", required=True)

        def sub(name: str, help_text: str) -> CommandParser:
            # Every subcommand takes the account as `manage.py iam`'s do: a user name is one account's (another
            # account may have a user of the same name).
            sp: CommandParser = subcommands.add_parser(name, help=help_text)
            sp.add_argument(
                "--account-id", default=settings.KMS_ACCOUNT_ID, help="Default: the configured account."
            )
            return sp

        create = sub("create", "Issue a token for an IAM user of the account.")
        create.add_argument("--user-name", required=True)
        create.add_argument("--name", default="", help="A label to recognize the token by.")
        create.add_argument(
            "--expires-in-days", type=int, default=None, help="1-3650. Default: KMS_API_TOKEN_TTL_DAYS (90)."
        )
        revoke = sub("revoke", "Revoke a token of the account at once (recorded in its trail).")
        revoke.add_argument("--token-id", type=int, required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        account_id = options["account_id"]
        holder: dict[str, Any] = {}

        def create(ctx: OperationContext) -> dict[str, Any]:
            created = api_token_create(
                ctx=ctx,
                account=account_get(account_id),
                user_name=options["user_name"],
                name=options["name"],
                expires_in_days=options["expires_in_days"],
            )
            token = created.token
            holder["out"] = {
                "TokenId": token.pk,
                "Token": created.plaintext,
                "Prefix": str(token),
                "UserArn": token.principal.arn,
                "ExpiresAt": _iso(token.expires_at),
            }
            return holder["out"]

        def revoke(ctx: OperationContext) -> dict[str, Any]:
            # Only a token of the named account: the revocation is recorded in that account's trail, which must be
            # the token owner's (kmsconsole.api.token_dependents revokes in the owner's account likewise).
            token = api_token_revoke(ctx=ctx, token_id=options["token_id"], account=account_get(account_id))
            holder["out"] = {"TokenId": token.pk, "Prefix": str(token), "RevokedAt": _iso(token.revoked_at)}
            return holder["out"]

        subcommand = options["subcommand"]
        name, service, params = (
            ("kmsconsole:CreateApiToken", create, {"UserName": options.get("user_name")})
            if subcommand == "create"
            else ("kmsconsole:RevokeApiToken", revoke, {"TokenId": options.get("token_id")})
        )
        try:
            perform(
                name,
                caller=operator_caller(account_id, "manage.py api-token"),
                meta=RequestMeta(interface="cli"),
                params=params,
                service=service,
            )
        except errors.KmsError as exc:
            sys.stderr.write(json.dumps({"Error": {"Code": exc.code, "Message": exc.message}}) + "\n")
            raise SystemExit(SERVICE_ERROR_EXIT) from None
        self.stdout.write(json.dumps(holder["out"], indent=2))
