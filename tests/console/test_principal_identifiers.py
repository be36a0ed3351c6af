"""Identifiers of principals in the console: a name or account id in the URL that breaks its rule (a NUL:
PostgreSQL text cannot hold it) is "cannot be found" like any unknown one, not an internal error; a user stored with
a path the policy engine cannot read (before the service refused such paths) leaves the analyzer pages working;
the audit trail's account filter takes 12 ASCII digits only."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from kmsconsole.console.views.audit_forms import TrailFilterForm
from policies.models import IamUser
from tests.conftest import ALLOW_ALL, Persona
from tests.console.principals_support import ACCOUNT, text
from tests.policies.analyzer_support import (
    ROOT,
    allow,
    make_key,
    policy,
    stored_before_the_path_rule,
    user_arn,
)

pytestmark = pytest.mark.django_db
# 444455556667 in full-width digits, which str.isdigit() and a Unicode \d take for digits.
FULL_WIDTH_ACCOUNT = "\uff14\uff14\uff14\uff14\uff15\uff15\uff15\uff15\uff16\uff16\uff16\uff17"

Console = Callable[..., Client]

NUL_PAGES = [
    f"/console/principals/{ACCOUNT}/users/%00/",
    f"/console/principals/{ACCOUNT}/roles/%00/",
    f"/console/principals/{ACCOUNT}/groups/%00/",
    f"/console/principals/{ACCOUNT}/users/admin/policies/%00/",
    "/console/principals/?account=%00",
    "/console/principals/%00/users/admin/",
]


@pytest.mark.parametrize("path", NUL_PAGES)
def test_a_nul_in_the_url_is_not_found(path: str, console: Console, admin: Persona) -> None:
    response = console(admin).get(path)
    assert response.status_code == 404
    assert "cannot be found" in text(response) and "internal error" not in text(response).lower()


def test_the_analyzer_pages_leave_out_a_user_the_engine_cannot_read(
    console: Console, admin: Persona, make_user: Callable[..., Persona]
) -> None:
    make_user("legacy", ALLOW_ALL)
    legacy_arn = stored_before_the_path_rule(IamUser, "legacy")
    key = make_key(policy(ROOT))
    client = console(admin)
    assert client.get(reverse("console:analyzer")).status_code == 200
    access = client.get(reverse("console:key-access", args=[key.key_id]))
    assert access.status_code == 200 and admin.arn in text(access) and legacy_arn not in text(access)
    draft = json.dumps(
        json.loads(policy(ROOT, allow(user_arn("admin"), "kms:Decrypt", sid="Named"))), indent=2
    )
    review = client.post(reverse("console:key-policy-review", args=[key.key_id]), {"policy": draft})
    assert review.status_code == 200 and "Who gains or loses access" in text(review)


def test_a_user_the_engine_cannot_read_is_refused_in_the_console(
    console: Console, make_user: Callable[..., Persona]
) -> None:
    legacy = make_user("legacy", ALLOW_ALL)
    stored_before_the_path_rule(IamUser, "legacy")
    client = console(legacy)
    for name in ("console:keys", "console:principals", "console:analyzer"):
        response = client.get(reverse(name))
        assert response.status_code == 403, name
        assert "the policy engine cannot read this principal" in text(response)


@pytest.mark.parametrize(
    ("account", "valid"),
    [
        ("111122223333", True),
        (FULL_WIDTH_ACCOUNT, False),
        ("٤٤٤٤٥٥٥٥٦٦٦٧", False),  # Arabic-Indic digits
        ("11112222333", False),
    ],
)
def test_the_trail_filters_by_an_account_of_twelve_ascii_digits(account: str, valid: bool) -> None:
    form = TrailFilterForm({"account": account}, account_id=ACCOUNT)
    assert form.is_valid() is valid
    if not valid:
        assert form.errors["account"] == ["An account id is 12 digits."]
