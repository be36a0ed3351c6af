"""The console's restore of a key policy version after a principal it names was deleted and recreated: the review
says, naming the ARN, that the restored policy names the deleted principal's unique id, and shows that in the
diff; the restore writes it and says so again; a version from before bindings warns that it cannot tell whether
the principal is the one meant (`keys.services.policy_restore`)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.test import Client

from policies.models import Account
from tests.conftest import Persona, create_user
from tests.console.test_policy_editor import page, url
from tests.keys.test_policy_restore import as_if_written_before_bindings, history, recreated, version
from tests.policies.test_principal_deletion import delete_as

pytestmark = pytest.mark.django_db

Console = Callable[..., Client]


def test_the_review_and_the_restore_say_the_principal_is_named_by_its_unique_id(
    account: Account, admin: Persona, console: Console
) -> None:
    key, old, _ = recreated(account, admin)
    client = console(admin)

    review = client.get(url("key-policy-restore", key, 1))
    assert review.status_code == 200
    text = page(review)
    assert 'id="restore-principals"' in text
    assert (
        f"The principal {old.arn} named when version 1 was saved was deleted since, and another principal of "
        f"that name created: the restored policy names its unique id {old.unique_id} instead" in text
    )
    # What will be written, in the diff; and nobody gains anything by it.
    assert re.search(rf'<span class="diff-add">\+\s+"{old.unique_id}",?</span>', text)
    assert 'id="access-diff-none"' in text

    restored = client.post(url("key-policy-restore", key, 1), {}, follow=True)
    assert restored.status_code == 200
    assert f"the restored policy names its unique id {old.unique_id} instead" in page(restored)
    key.refresh_from_db()
    assert old.arn not in key.policy and old.unique_id in key.policy


def test_the_review_of_an_old_version_warns_it_cannot_tell(
    account: Account, admin: Persona, console: Console
) -> None:
    key, old = history(account, admin)
    as_if_written_before_bindings(version(key, 1))
    client = console(admin)
    assert 'id="restore-principals"' not in page(client.get(url("key-policy-restore", key, 1)))
    delete_as(admin, "user", "alice")
    create_user(account, "alice")
    text = page(client.get(url("key-policy-restore", key, 1)))
    assert 'id="restore-principals"' in text
    assert f"and {old.arn} names a principal created after it" in text
    assert "cannot tell whether it is the principal the version meant" in text


def test_an_unchanged_version_shows_no_warning(account: Account, admin: Persona, console: Console) -> None:
    key, _ = history(account, admin)
    response = console(admin).get(url("key-policy-restore", key, 1))
    assert response.status_code == 200 and 'id="restore-principals"' not in page(response)
