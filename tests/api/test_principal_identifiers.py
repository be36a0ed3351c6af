"""Identifiers of principals on the REST API: a path the policy engine could not read back from the principal's ARN
is a 400 (and a user stored with one before is left out of the analyzer and refused, where it used to make both
fail with a 500); a name in the URL that breaks IAM's rule (a NUL: PostgreSQL text cannot hold it) is a 404
NoSuchEntity like any unknown name; an account id of other digits than ASCII is a 400."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from policies.models import Account, IamRole, IamUser
from tests.api.conftest import People, World, client_with, token_for
from tests.conftest import ALLOW_ALL
from tests.policies.analyzer_support import ROOT, policy, stored_before_the_path_rule

pytestmark = pytest.mark.django_db
# 444455556667 in full-width digits, which str.isdigit() and a Unicode \d take for digits.
FULL_WIDTH_ACCOUNT = "\uff14\uff14\uff14\uff14\uff15\uff15\uff15\uff15\uff16\uff16\uff16\uff17"


@pytest.mark.parametrize("collection", ["users", "roles", "groups"])
@pytest.mark.parametrize("path", ["/a//b/", "/a*/", "/a?/"])
def test_a_path_the_engine_could_not_read_is_a_400(
    collection: str, path: str, people: People, admin_api: APIClient
) -> None:
    response = admin_api.post(f"/api/v1/{collection}", {"name": "x3", "path": path}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "ValidationException" and "Empty names (//)" in error["message"]
    assert admin_api.get(f"/api/v1/{collection}/x3").status_code == 404


@pytest.fixture
def legacy(account: Account, people: People, make_user: Any) -> APIClient:
    """User legacy (Allow * on *) and role app stored at path /a//b/ before the service refused it (rows sealed
    with that path, as the service sealed them then), and an API client signed in as legacy."""
    make_user("legacy", ALLOW_ALL)
    stored_before_the_path_rule(IamUser, "legacy")
    stored_before_the_path_rule(IamRole, "app")
    return client_with(token_for(account, "legacy"))


def test_the_analyzer_leaves_out_a_user_the_engine_cannot_read(
    legacy: APIClient, world: World, admin_api: APIClient
) -> None:
    legacy_arn = IamUser.objects.get(name="legacy").arn
    findings = admin_api.get("/api/v1/findings")
    assert findings.status_code == 200, findings.content
    access = admin_api.get(f"/api/v1/keys/{world.key}/access")
    assert access.status_code == 200, access.content
    assert legacy_arn not in access.content.decode() and world.admin_arn in access.content.decode()
    compare = admin_api.post(
        f"/api/v1/keys/{world.key}/policy/compare", {"policy": policy(ROOT)}, format="json"
    )
    assert compare.status_code == 200, compare.content


def test_a_user_the_engine_cannot_read_is_refused_not_a_500(legacy: APIClient) -> None:
    for response in (legacy.get("/api/v1/users"), legacy.get("/api/v1/findings")):
        assert response.status_code == 403, response.content
        error = response.json()["error"]
        assert error["code"] == "AccessDeniedException"
        assert "the policy engine cannot read this principal's ARN" in error["message"]


NUL_NAMES = [
    ("get", "/api/v1/users/%00", None),
    ("get", "/api/v1/roles/%00", None),
    ("get", "/api/v1/groups/%00", None),
    ("get", "/api/v1/users/%00/policies", None),
    ("get", "/api/v1/users/alice/policies/%00", None),
    ("put", "/api/v1/users/%00/policies/p2", {"document": policy(ROOT)}),
    ("get", "/api/v1/users/%00/access-keys", None),
    ("post", "/api/v1/users/%00/access-keys", None),
    ("patch", "/api/v1/users/alice/access-keys/%00", {"status": "Inactive"}),
    ("delete", "/api/v1/users/alice/access-keys/%00", None),
    ("delete", "/api/v1/groups/devs/members/%00", None),
]


@pytest.mark.parametrize(("method", "path", "body"), NUL_NAMES, ids=[f"{m} {p}" for m, p, _ in NUL_NAMES])
def test_a_nul_in_a_name_is_not_found(
    method: str, path: str, body: Any, people: People, admin_api: APIClient
) -> None:
    unknown = getattr(admin_api, method)(path.replace("%00", "nobody"), body, format="json")
    response = getattr(admin_api, method)(path, body, format="json")
    assert response.status_code == unknown.status_code == 404, response.content
    assert response.json()["error"]["code"] == unknown.json()["error"]["code"] == "NoSuchEntity"


def test_a_nul_in_a_name_is_still_refused_without_permission(people: People, outsider_api: APIClient) -> None:
    # As for any unknown name: the caller learns nothing about which names exist.
    assert outsider_api.get("/api/v1/users/%00").status_code == 403


def test_an_account_id_of_full_width_digits_is_a_400(people: People, admin_api: APIClient) -> None:
    response = admin_api.post("/api/v1/accounts", {"account_id": FULL_WIDTH_ACCOUNT}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "ValidationException"
    assert not Account.objects.exclude(account_id__regex=r"^[0-9]{12}$").exists()
