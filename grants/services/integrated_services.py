"""Registering an integrated service and the users and roles that act as it."""

from __future__ import annotations

import re
from collections.abc import Sequence

from grants.models import IntegratedService
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies import engine
from policies.authorization import authorize
from policies.principal_locks import lock_named

INTEGRATED_SERVICE_NAME = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")


def integrated_service_register(
    *, ctx: OperationContext, name: str, principals: Sequence[str], description: str = ""
) -> IntegratedService:
    """Register a service (e.g. `ec2.us-east-1.amazonaws.com`) and the user and role ARNs that act as it
    (see grants.models.IntegratedService)."""
    authorize(ctx, resource="*")
    parsed_all = []
    for arn in principals:
        parsed = engine.parse_principal_arn(arn)
        if parsed is None or parsed.kind not in (engine.PrincipalKind.USER, engine.PrincipalKind.ROLE):
            raise errors.ValidationException(f"{arn[:256]} is not a user or role ARN.")
        parsed_all.append(parsed)
    # Only principals that exist, their rows locked as a grant's (`policies.principal_locks`): a binding to a name
    # nobody has, or to one being deleted, would let whoever is created with that name later act as the service.
    # A deletion racing this either sees the new service and rebinds it to the unique id, or is seen.
    found = lock_named(list(principals)).existing(parsed_all)
    for arn, exists in zip(principals, found, strict=True):
        if not exists:
            raise errors.ValidationException(
                f"{arn[:256]} names no user or role: an integrated service is bound only to principals that exist."
            )
    if len(name) > 128 or not INTEGRATED_SERVICE_NAME.match(name):
        raise errors.ValidationException(
            "An integrated service is named like a service principal: lower-case labels separated by dots, "
            "such as ec2.us-east-1.amazonaws.com (at most 128 characters)."
        )
    service, created = IntegratedService.objects.get_or_create(
        name=name, defaults={"description": description, "principals": list(principals)}
    )
    if not created:
        raise errors.AlreadyExistsException(f"The integrated service {name} is already registered.")
    return service
