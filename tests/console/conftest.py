"""Console fixtures: a browser session (Django's test client) signed in as a persona's IAM user, with or without
a fresh sudo confirmation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from kmsconsole.audit.models import AuditEvent
from kmsconsole.console.sudo import SUDO_AT
from policies.models import ConsoleIdentity, IamUser
from tests.conftest import Persona
from tests.secrets_watch import WATCH

PASSWORD = "a long console password 1"


def console_login_for(persona: Persona) -> Any:
    """A console login (Django user) linked to the persona's IAM user."""
    account_id = persona.arn.split(":")[4]
    user = IamUser.objects.get(account__account_id=account_id, name=persona.arn.rsplit("/", 1)[-1])
    login, _ = get_user_model().objects.get_or_create(username=persona.name)
    WATCH.register(PASSWORD)  # the console password is a secret the test handles
    login.set_password(PASSWORD)
    login.save()
    ConsoleIdentity.objects.get_or_create(login=login, defaults={"iam_user": user})
    return login


@pytest.fixture
def console() -> Callable[..., Client]:
    """`console(persona, sudo=True)`: a client signed in as the persona; `sudo=False` leaves sudo mode closed."""

    def make(persona: Persona, *, sudo: bool = True) -> Client:
        client = Client()
        client.force_login(console_login_for(persona))
        if sudo:
            session = client.session
            session[SUDO_AT] = int(time.time())
            session.save()
        return client

    return make


def audit_events(operation: str, **filters: Any) -> list[AuditEvent]:
    """Console audit events of one operation, oldest first."""
    return list(
        AuditEvent.objects.filter(operation=operation, interface="console", **filters).order_by("seq")
    )
