"""The REST API's restore of a key policy version names, instead of the ARN of a principal deleted and recreated
since, the unique id the version recorded, and says so in its answer (`rebound_principals`, `notes`)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from keys.models import Key
from policies.models import Account
from tests.conftest import Persona
from tests.keys.test_policy_restore import history, recreated, recreated_in_both_accounts

pytestmark = pytest.mark.django_db


def test_the_restore_answers_which_principals_it_named_by_unique_id(
    account: Account, admin: Persona, admin_api: APIClient
) -> None:
    key, old, _ = recreated(account, admin)
    # The history does not show the unique ids a version recorded: those of principals that still exist (of any
    # account) are not the key owner's to read; only a deleted one's is shown, once a restore names it.
    versions = admin_api.get(f"/api/v1/keys/{key.key_id}/policy/versions")
    assert versions.status_code == 200
    assert all("principal_ids" not in row for row in versions.json()["results"])

    response = admin_api.post(f"/api/v1/keys/{key.key_id}/policy/versions/1/restore", {}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["restored_version"] == 1 and body["version"] == 3
    assert body["rebound_principals"] == {old.arn: old.unique_id}
    [note] = body["notes"]
    assert old.arn in note and old.unique_id in note
    assert body["policy"] == Key.objects.get(pk=key.pk).policy and old.arn not in body["policy"]


def test_an_unchanged_version_is_restored_verbatim(
    account: Account, admin: Persona, admin_api: APIClient
) -> None:
    key, _ = history(account, admin)
    response = admin_api.post(f"/api/v1/keys/{key.key_id}/policy/versions/1/restore", {}, format="json")
    assert response.status_code == 200
    assert response.json()["notes"] == [] and response.json()["rebound_principals"] == {}
    assert Key.objects.get(pk=key.pk).policy == key.policy_versions.get(version=1).document


def test_another_accounts_unique_id_is_not_in_the_answers_words(
    account: Account, admin: Persona, admin_api: APIClient
) -> None:
    """The restored policy names bob's old unique id (it must: it is what is written); the answer's
    `rebound_principals` and `notes` do not, as bob is another account's."""
    key, alice, bob = recreated_in_both_accounts(account, admin)
    response = admin_api.post(f"/api/v1/keys/{key.key_id}/policy/versions/1/restore", {}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["rebound_principals"] == {alice.arn: alice.unique_id, bob.arn: None}
    [bob_note] = [note for note in body["notes"] if bob.arn in note]
    assert bob.unique_id not in bob_note and "deleted" not in bob_note
    assert bob.unique_id in body["policy"]
