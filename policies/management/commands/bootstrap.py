"""`python manage.py bootstrap`: the default account, an `admin` IAM user allowed everything, and a console
superuser linked to it. Idempotent: what exists is left alone, so `make run` calls it on every start."""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from kmsconsole.core.context import command_line_meta, operator_caller
from kmsconsole.operations import perform
from policies import services
from policies.models import Account, IamUser, IdentityPolicy

ADMIN_USER = "admin"
ADMIN_POLICY_NAME = "AdministratorAccess"
ADMIN_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}, indent=2
)


class Command(BaseCommand):
    help = "Create the default account, the admin IAM user and the console superuser if they are missing."

    def handle(self, *args: Any, **options: Any) -> None:
        account_id = settings.KMS_ACCOUNT_ID
        caller = operator_caller(account_id, "bootstrap")

        def run(operation: str, params: dict[str, Any], work: Any) -> Any:
            meta = command_line_meta("manage.py bootstrap", account_id)
            holder: dict[str, Any] = {}

            def service(ctx: Any) -> dict[str, Any]:
                holder["result"] = work(ctx)
                return {}

            perform(operation, caller=caller, meta=meta, params=params, service=service)
            return holder["result"]

        account = Account.objects.filter(account_id=account_id).first()
        if account is None:
            account = run(
                "iam:CreateAccount",
                {"AccountId": account_id},
                lambda ctx: services.account_create(ctx=ctx, account_id=account_id),
            )
            self.stdout.write(f"Created account {account_id}")
        admin = IamUser.objects.filter(account=account, name=ADMIN_USER).first()
        if admin is None:
            admin = run(
                "iam:CreateUser",
                {"UserName": ADMIN_USER},
                lambda ctx: services.user_create(ctx=ctx, account=account, user_name=ADMIN_USER),
            )
            self.stdout.write(f"Created IAM user {admin.arn}")
        if not IdentityPolicy.objects.filter(user=admin, name=ADMIN_POLICY_NAME).exists():
            run(
                "iam:PutUserPolicy",
                {"UserName": ADMIN_USER, "PolicyName": ADMIN_POLICY_NAME, "PolicyDocument": ADMIN_POLICY},
                lambda ctx: services.identity_policy_put(
                    ctx=ctx, owner=admin, policy_name=ADMIN_POLICY_NAME, document=ADMIN_POLICY
                ),
            )
            self.stdout.write(f"Attached {ADMIN_POLICY_NAME} (Allow * on *) to {ADMIN_USER}")
        if not get_user_model().objects.filter(username=ADMIN_USER).exists():
            password = os.environ.get("KMS_ADMIN_PASSWORD", "")
            generated = not password
            if generated:
                password = secrets.token_urlsafe(18)
            run(
                "kmsconsole:CreateConsoleLogin",
                {"Username": ADMIN_USER, "IamUser": admin.arn},
                lambda ctx: services.console_login_create(
                    ctx=ctx, iam_user=admin, username=ADMIN_USER, password=password, superuser=True
                ),
            )
            if generated:
                # Printed once, on the terminal that ran the first start; it is stored only as a hash.
                self.stdout.write(f"Console sign-in: user {ADMIN_USER!r}, password {password!r} (shown once)")
            else:
                self.stdout.write(
                    f"Console sign-in: user {ADMIN_USER!r} with the password from KMS_ADMIN_PASSWORD"
                )
        self.stdout.write("Bootstrap complete.")
