"""The console's restore of a key policy version after a principal it names was deleted and recreated: the review
says, naming the ARN, that the restored policy names the deleted principal's unique id, and shows that in the
diff; the restore writes it and says so again; a version from before bindings warns that it cannot tell whether
the principal is the one meant (`keys.services.policy_restore`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from django.test import Client

from policies.models import Account, IamUser
from tests.conftest import PARTNER_ACCOUNT, Persona, create_user
from tests.console.conftest import audit_events
from tests.console.test_policy_editor import _identity, page, url
from tests.keys.test_policy_restore import (
    as_if_written_before_bindings,
    history,
    recreated,
    recreated_in_both_accounts,
    version,
)
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


def _notes(text: str) -> str:
    found = re.search(
        r'<div class="message warning" role="alert" id="restore-principals">.*?</div>', text, re.S
    )
    return found.group() if found else ""


def test_a_reader_of_the_history_sees_the_version_as_saved_and_no_principal_history(
    account: Account, admin: Persona, console: Console
) -> None:
    """The review runs as kmsconsole:ListKeyPolicyVersions (kms:GetKeyPolicy). A caller allowed only to read the
    key gets the version as saved: no notes, no unique id (old or new), nothing of who was deleted or recreated
    when, no restore form, and no principal looked up; its page's event is its only one. (Before, it was told
    that another account's principal was deleted and recreated, and its old unique id.)"""
    key, alice, bob = recreated_in_both_accounts(account, admin)
    reader = create_user(
        account, "reader", json.dumps(_identity("kms:GetKeyPolicy", "kms:DescribeKey", "kms:List*"))
    )
    response = console(reader).get(url("key-policy-restore", key, 1))
    assert response.status_code == 200
    text = page(response)
    assert 'id="restore-principals"' not in text and 'id="restore-read-only"' in text
    assert 'action="' + url("key-policy-restore", key, 1) not in text
    assert bob.arn in text and alice.arn in text  # the version, as saved
    now = IamUser.objects.filter(name__in=["alice", "bob"]).values_list("unique_id", flat=True)
    for unique_id in (alice.unique_id, bob.unique_id, *now):
        assert unique_id not in text
    assert "deleted since" not in text and "no longer the one" not in text
    assert [event.decision for event in audit_events("kmsconsole:ListKeyPolicyVersions")] == ["allowed"]
    assert audit_events("PutKeyPolicy") == [] and audit_events("kmsconsole:ValidateKeyPolicy") == []


def test_who_may_restore_hears_of_another_accounts_principal_without_its_history(
    account: Account, admin: Persona, console: Console
) -> None:
    """A caller allowed PutKeyPolicy on the key is told, of its own account's alice, that she was deleted and
    recreated and the unique id written; of the partner's bob, only that the principal named is no longer the one
    the version named: not his unique id (old or new), nor that he was deleted or recreated, nor when."""
    key, alice, bob = recreated_in_both_accounts(account, admin)
    text = page(console(admin).get(url("key-policy-restore", key, 1)))
    notes = _notes(text)
    assert f"The principal {alice.arn} named when version 1 was saved was deleted since, and another" in notes
    assert alice.unique_id in notes
    assert (
        f"The principal named {bob.arn} is no longer the one version 1 named: the restored policy names it by the "
        "unique id of the one it named, which matches no one." in notes
    )
    new_bob = IamUser.objects.get(account__account_id=PARTNER_ACCOUNT, name="bob")
    assert bob.unique_id not in notes and new_bob.unique_id not in text
    bob_note = next(line for line in notes.split("<li>") if bob.arn in line)
    assert "deleted" not in bob_note and "created" not in bob_note
