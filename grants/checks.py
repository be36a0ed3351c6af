"""`manage.py check --database default`: integrated services bound to a user or role name that nobody (or not the
principal meant) has.

Since 2026-11-29 a registration binds only principals that exist
(`grants.services.integrated_services.integrated_service_register`), and deleting one binds the service to its
unique id instead (`policies.deletion`). A registration made before could name any user or role ARN: one naming
nobody lets whoever is created with that name later act as the service, and one whose principal was created after
the registration may already have been so created. Which ones, only the database can tell, so this is a database
check (Django runs those only when asked with `--database`: starting the service, `make test` and `manage.py
check` without it need no database); it warns (kmsconsole.W001), naming each service and ARN and what to do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.checks import Tags, Warning, register
from django.db import DEFAULT_DB_ALIAS, DatabaseError

from grants.models import IntegratedService
from policies import engine
from policies.principal_locks import lock_named

NO_PRINCIPAL = (
    "Integrated service {service} is bound to {arn}, which names no user or role: whoever is created with that "
    "name would act as the service. (A registration made before 2026-11-29 could bind any name; one made since "
    "binds only principals that exist.)"
)
YOUNGER_PRINCIPAL = (
    "Integrated service {service} is bound to {arn}, whose principal was created after the service was "
    "registered: the registration bound the name before anyone had it (possible before 2026-11-29), so it may not "
    "be the principal meant."
)
HINT = (
    "If the principal of that name is the one meant, nothing is wrong. If not, delete it, or create one of that "
    "name and delete it: deleting a user or role binds every service bound to it to its unique id, which matches "
    "no one (`manage.py integrated-service list` shows the bindings)."
)


@register(Tags.database)
def integrated_services_bound_to_principals(
    app_configs: Any = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[Warning]:
    if not databases or DEFAULT_DB_ALIAS not in databases:
        return []
    try:
        services = list(IntegratedService.objects.order_by("name"))
        bound = [arn for service in services for arn in _principal_arns(service)]
        named = lock_named(bound, lock=False)
    except DatabaseError:  # not migrated yet: nothing registered to check
        return []
    problems = []
    for service in services:
        for arn in _principal_arns(service):
            created = named.created.get(arn)
            if created is None:
                problems.append(_warning(NO_PRINCIPAL, service, arn))
            elif created > service.created_at:
                problems.append(_warning(YOUNGER_PRINCIPAL, service, arn))
    return problems


def _principal_arns(service: IntegratedService) -> list[str]:
    """The user and role ARNs the service is bound to (a deleted principal's unique id binds no one)."""
    return [
        arn
        for arn in service.principals
        if isinstance(arn, str)
        and (parsed := engine.parse_principal_arn(arn)) is not None
        and parsed.kind in (engine.PrincipalKind.USER, engine.PrincipalKind.ROLE)
    ]


def _warning(message: str, service: IntegratedService, arn: str) -> Warning:
    return Warning(
        message.format(service=service.name, arn=arn), hint=HINT, obj=service, id="kmsconsole.W001"
    )
