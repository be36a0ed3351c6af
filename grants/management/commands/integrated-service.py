"""`python manage.py integrated-service register NAME --principal ARN [--principal ARN ...] [--description TEXT]`
and `... list`: the services requests may come through (kms:ViaService, kms:GrantIsForAWSResource), and the
user and role ARNs that act as each. Only the operator binds them. Runs as the local operator, audited."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from grants.models import IntegratedService
from grants.services.integrated_services import integrated_service_register
from kmsconsole.core import errors
from kmsconsole.core.context import command_line_meta, operator_caller
from kmsconsole.operations import OperationContext, perform

SERVICE_ERROR_EXIT = 254


def _shape(service: IntegratedService) -> dict[str, Any]:
    return {
        "Name": service.name,
        "Description": service.description,
        "Principals": list(service.principals),
        "CreationDate": service.created_at.isoformat(),
    }


class Command(BaseCommand):
    help = "Register or list the integrated services requests may come through, and who acts as each."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["register", "list"])
        parser.add_argument("name", nargs="?", help="e.g. ec2.us-east-1.amazonaws.com (register)")
        parser.add_argument("--description", default="")
        parser.add_argument(
            "--principal",
            action="append",
            default=[],
            help="a user or role ARN that acts as the service (repeat)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            services = [_shape(service) for service in IntegratedService.objects.all()]
            self.stdout.write(json.dumps({"IntegratedServices": services}, indent=4))
            return
        name, principals, description = options["name"] or "", options["principal"], options["description"]

        def register(ctx: OperationContext) -> dict[str, Any]:
            service = integrated_service_register(
                ctx=ctx, name=name, principals=principals, description=description
            )
            return {"IntegratedService": _shape(service)}

        try:
            result = perform(
                "kmsconsole:RegisterIntegratedService",
                caller=operator_caller(settings.KMS_ACCOUNT_ID),
                meta=command_line_meta("manage.py integrated-service register", settings.KMS_ACCOUNT_ID),
                params={"Name": name, "Description": description, "Principals": principals},
                service=register,
            )
        except errors.KmsError as exc:
            sys.stderr.write(json.dumps({"Error": {"Code": exc.code, "Message": exc.message}}) + "\n")
            raise SystemExit(SERVICE_ERROR_EXIT) from None
        self.stdout.write(json.dumps(result, indent=4))
