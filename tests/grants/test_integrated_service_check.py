"""`manage.py check --database default` warns (kmsconsole.W001) about each integrated service bound, by a
registration made before bindings were checked (2026-11-29), to a user or role name nobody has, or whose principal
was created after the registration (`grants.checks`)."""

from __future__ import annotations

import io

import pytest
from django.core import checks
from django.core.management import call_command

from grants.models import IntegratedService
from policies.models import Account
from tests.conftest import Persona
from tests.grants.conftest import ACCOUNT
from tests.policies.test_principal_deletion import plain_user

pytestmark = pytest.mark.django_db

EC2 = "ec2.us-east-1.amazonaws.com"


def w001() -> list[str]:
    found = checks.run_checks(tags=[checks.Tags.database], databases=["default"])
    return [message.msg for message in found if message.id == "kmsconsole.W001"]


def test_a_binding_to_nobody_or_to_a_younger_principal_is_named(account: Account, admin: Persona) -> None:
    ghost, bob = f"arn:aws:iam::{ACCOUNT}:user/ghost", f"arn:aws:iam::{ACCOUNT}:user/bob"
    # As a registration before 2026-11-29 could bind them (register now refuses ghost and bob).
    IntegratedService.objects.create(name=EC2, principals=[admin.arn, ghost, bob, "AIDAOLDOLDOLDOLDOLDOL"])
    before = w001()
    assert [ghost in before[0], bob in before[1]] == [True, True] and "names no user or role" in before[1]
    plain_user(account, "bob")  # created after the registration: whoever took the name acts as EC2
    [to_ghost, to_bob] = w001()
    assert f"{EC2} is bound to {ghost}, which names no user or role" in to_ghost
    assert f"{EC2} is bound to {bob}, whose principal was created after the service was registered" in to_bob
    assert not [m for m in checks.run_checks(tags=[checks.Tags.database]) if m.id == "kmsconsole.W001"]
    err = io.StringIO()
    call_command("check", "--database", "default", stderr=err, stdout=io.StringIO())
    assert "kmsconsole.W001" in err.getvalue() and ghost in err.getvalue()


def test_bindings_made_since_are_not_named(admin: Persona) -> None:
    IntegratedService.objects.create(name=EC2, principals=[admin.arn])
    assert w001() == []
