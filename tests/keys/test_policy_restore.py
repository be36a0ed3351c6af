"""Restoring a key policy version is bound to the principals the version meant (`keys.services.policy_restore`):
every version records the unique ids of the users and roles it names; a restore names, instead of an ARN whose
principal was deleted (and perhaps recreated) since, the recorded unique id, so a new principal of the same name
gets nothing from it; a version whose principals are unchanged is restored verbatim; a version from before the
bindings restores as written, and its review warns about each ARN whose principal is younger than the version.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from keys.models import Key, KeyPolicyVersion
from keys.services import key_policy, lifecycle, policy_restore
from kmsconsole.core import errors
from policies import services
from policies.models import Account, IamRole, IamUser
from policies.principal_locks import NamedPrincipals
from tests.conftest import PARTNER_ACCOUNT, Persona, as_operator, create_user
from tests.policies.analyzer_support import run_as
from tests.policies.test_principal_deletion import (
    delete_as,
    describe_as,
    key_naming,
    plain_user,
    policy_naming,
)

pytestmark = pytest.mark.django_db

ACCOUNT = settings.KMS_ACCOUNT_ID


def put(key: Key, policy: str) -> None:
    as_operator(
        "PutKeyPolicy", lambda ctx: key_policy.key_policy_put(ctx=ctx, key_id=str(key.key_id), policy=policy)
    )


def restore(key: Key, version: int) -> policy_restore.RestoredPolicy:
    result: policy_restore.RestoredPolicy = as_operator(
        "PutKeyPolicy",
        lambda ctx: policy_restore.key_policy_restore(ctx=ctx, key_id=str(key.key_id), version=version),
    )
    return result


def preview(key: Key, version: int, persona: Persona | None = None) -> policy_restore.RestorePreview:
    """The review of a restore, as the persona (None: the operator)."""
    found: policy_restore.RestorePreview = run_as(
        persona,
        "kmsconsole:ListKeyPolicyVersions",
        lambda ctx: policy_restore.restore_preview(ctx=ctx, key_id=str(key.key_id), version=version),
    )
    return found


def plan_of(key: Key, version: int) -> policy_restore.RestorePlan:
    """The plan the operator's review shows."""
    plan = preview(key, version).plan
    assert plan is not None
    return plan


def unique_id_of(persona: Persona) -> str:
    return IamUser.objects.get(account__account_id=ACCOUNT, name=persona.arn.rsplit("/", 1)[-1]).unique_id


def version(key: Key, number: int) -> KeyPolicyVersion:
    return KeyPolicyVersion.objects.select_related("key").get(key=key, version=number)


def history(account: Account, admin: Persona) -> tuple[Key, IamUser]:
    """A key whose version 1 lets alice use it and version 2 (current) does not."""
    alice = plain_user(account, "alice")
    key = key_naming(alice.arn, admin.arn)
    put(key, policy_naming(admin.arn))
    return key, alice


def recreated(account: Account, admin: Persona) -> tuple[Key, IamUser, Persona]:
    """`history`, then alice deleted (the current policy does not name her: nothing rewritten) and a new alice
    (with an access key) created."""
    key, old = history(account, admin)
    delete_as(admin, "user", "alice")
    new = create_user(account, "alice")
    assert new.arn == old.arn
    return key, old, new


def recreated_in_both_accounts(account: Account, admin: Persona) -> tuple[Key, IamUser, IamUser]:
    """A key whose version 1 names alice (this account) and bob (the partner's), and version 2 neither; then each
    deleted and created again."""
    other = as_operator(
        "iam:CreateAccount", lambda ctx: services.account_create(ctx=ctx, account_id=PARTNER_ACCOUNT)
    )
    alice, bob = plain_user(account, "alice"), plain_user(other, "bob")
    key = key_naming(alice.arn, bob.arn, admin.arn)
    put(key, policy_naming(admin.arn))
    delete_as(admin, "user", "alice")
    delete_as(None, "user", "bob", PARTNER_ACCOUNT)
    plain_user(account, "alice")
    plain_user(other, "bob")
    return key, alice, bob


def as_if_written_before_bindings(found: KeyPolicyVersion) -> None:
    """What a version written before versions recorded unique ids looks like: no bindings, its first MAC."""
    found.principal_ids = None
    found.save(update_fields=["principal_ids"])


# What every write records.


def test_every_version_records_the_unique_ids_of_the_principals_it_names(
    account: Account, admin: Persona
) -> None:
    alice = plain_user(account, "alice")
    key = key_naming(alice.arn, admin.arn, f"arn:aws:iam::{ACCOUNT}:root")  # CreateKey
    admin_id = unique_id_of(admin)
    assert version(key, 1).principal_ids == {alice.arn: alice.unique_id, admin.arn: admin_id}
    put(key, policy_naming(admin.arn))  # PutKeyPolicy
    assert version(key, 2).principal_ids == {admin.arn: admin_id}
    put(key, policy_naming(alice.arn, admin.arn))
    delete_as(admin, "user", "alice")  # the deletion's rewrite: alice is now her unique id, bound to nothing
    rewritten = version(key, 4)
    assert alice.unique_id in rewritten.document and rewritten.principal_ids == {admin.arn: admin_id}
    for number in (1, 2, 3, 4):
        version(key, number).check_row()
    # The default policy names the account only.
    default = as_operator("CreateKey", lambda ctx: lifecycle.key_create(ctx=ctx))
    assert version(default, 1).principal_ids == {}


# Restores.


def test_a_restore_after_delete_and_recreate_names_the_unique_id_and_the_new_alice_gets_nothing(
    account: Account, admin: Persona
) -> None:
    key, old, new = recreated(account, admin)
    assert KeyPolicyVersion.objects.filter(key=key).count() == 2

    plan = plan_of(key, 1)
    assert plan.rebound == {old.arn: old.unique_id}
    [note] = plan.notes
    assert old.arn in note and old.unique_id in note and "another principal of that name created" in note

    restored = restore(key, 1)
    key.refresh_from_db()
    assert old.arn not in key.policy and old.unique_id in key.policy
    # The text is kept, only the principal's string replaced.
    assert key.policy == version(key, 1).document.replace(f'"{old.arn}"', f'"{old.unique_id}"')
    assert restored.written.version == 3 and restored.written.document == key.policy
    assert restored.written.principal_ids == {admin.arn: unique_id_of(admin)}
    with pytest.raises(errors.AccessDeniedException):
        describe_as(new, key)
    describe_as(admin, key)
    # Restoring the restored version again (it names the unique id, as the deletion's versions do) is allowed.
    again = restore(key, 3)
    assert again.plan.verbatim and not again.plan.notes


def test_a_restore_after_the_principal_was_deleted_names_its_unique_id(
    account: Account, admin: Persona
) -> None:
    """Before bindings, such a restore was refused (the ARN named no principal); now it names the unique id."""
    key, old = history(account, admin)
    delete_as(admin, "user", "alice")
    restored = restore(key, 1)
    assert restored.plan.rebound == {old.arn: old.unique_id}
    assert "has been deleted since" in restored.plan.notes[0]
    assert old.unique_id in Key.objects.get(pk=key.pk).policy


def test_a_version_whose_principals_are_unchanged_restores_verbatim(account: Account, admin: Persona) -> None:
    alice = create_user(account, "alice")
    key = key_naming(alice.arn, admin.arn)
    put(key, policy_naming(admin.arn))
    with pytest.raises(errors.AccessDeniedException):
        describe_as(alice, key)
    assert not plan_of(key, 1).notes
    restored = restore(key, 1)
    assert restored.plan.verbatim and not restored.plan.rebound and not restored.plan.notes
    assert Key.objects.get(pk=key.pk).policy == version(key, 1).document
    describe_as(alice, key)


def test_a_role_and_its_sessions_are_rebound_to_the_roles_unique_id(account: Account, admin: Persona) -> None:
    def create_role() -> IamRole:
        role: IamRole = as_operator(
            "iam:CreateRole", lambda ctx: services.role_create(ctx=ctx, account=account, role_name="app")
        )
        return role

    role = create_role()
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/app/job-1"
    key = key_naming(role.arn, session, admin.arn)
    assert version(key, 1).principal_ids == {
        role.arn: role.unique_id,
        session: role.unique_id,
        admin.arn: unique_id_of(admin),
    }
    put(key, policy_naming(admin.arn))
    delete_as(admin, "role", "app")
    create_role()
    restored = restore(key, 1)
    assert restored.plan.rebound == {role.arn: role.unique_id, session: role.unique_id}
    policy = Key.objects.get(pk=key.pk).policy
    assert role.arn not in policy and session not in policy
    assert json.loads(policy)["Statement"][1]["Principal"]["AWS"] == [role.unique_id, admin.arn]


# Versions written before bindings.


def test_an_old_version_without_bindings_warns_about_a_younger_principal_and_restores_as_written(
    account: Account, admin: Persona
) -> None:
    key, old = history(account, admin)
    as_if_written_before_bindings(version(key, 1))
    assert not plan_of(key, 1).notes  # alice is older than the version: the one it meant
    delete_as(admin, "user", "alice")
    new = create_user(account, "alice")

    plan = plan_of(key, 1)
    assert plan.verbatim and not plan.rebound
    [note] = plan.notes
    assert old.arn in note and "cannot tell whether it is the principal the version meant" in note
    # Restored as written: the documented residual (the review said so).
    restore(key, 1)
    describe_as(new, key)


def test_restore_plan_in_every_case() -> None:
    """The plan alone, for each binding a version may hold and each state of the principal now."""
    arn = f"arn:aws:iam::{ACCOUNT}:user/alice"
    document = policy_naming(arn)
    written = KeyPolicyVersion(version=4, document=document, principal_ids={arn: "AIDAOLDOLDOLDOLDOLDOL"})
    written.created_at = now = written_at = timezone.now()
    cases: list[tuple[dict[str, Any] | None, str | None, Any, str]] = [
        ({arn: "AIDAOLDOLDOLDOLDOLDOL"}, "AIDAOLDOLDOLDOLDOLDOL", now, ""),  # unchanged
        ({arn: "AIDAOLDOLDOLDOLDOLDOL"}, None, None, "has been deleted since"),
        ({arn: "AIDAOLDOLDOLDOLDOLDOL"}, "AIDANEWNEWNEWNEWNEWN", now, "another principal of that name"),
        ({arn: None}, "AIDANEWNEWNEWNEWNEWN", now, "named no principal when version 4 was saved"),
        ({arn: None}, None, None, ""),  # refused by the restore's check: no such principal
        (None, "AIDANEWNEWNEWNEWNEWN", written_at - timedelta(days=1), ""),  # older than the version
        (None, "AIDANEWNEWNEWNEWNEWN", written_at + timedelta(days=1), "cannot tell whether"),
    ]
    for recorded, current, created, said in cases:
        written.principal_ids = recorded
        named = NamedPrincipals({arn: current}, {arn: created} if created is not None else {})
        plan = policy_restore.restore_plan(written, named, own_account=ACCOUNT)
        assert (said in plan.notes[0]) if said else not plan.notes, (recorded, current)
        rebound = recorded is not None and recorded.get(arn) not in (None, current)
        assert plan.rebound == ({arn: "AIDAOLDOLDOLDOLDOLDOL"} if rebound else {})
        assert ("AIDAOLDOLDOLDOLDOLDOL" in plan.document) is rebound


# The bindings are covered by the version's row MAC.


def test_bindings_edited_in_the_database_fail_closed(account: Account, admin: Persona) -> None:
    key, old = history(account, admin)
    delete_as(admin, "user", "alice")
    new = plain_user(account, "alice")
    found = version(key, 1)
    bound = dict(found.principal_ids or {})
    for edited in ({**bound, old.arn: new.unique_id}, None):  # bound to the new alice; passed off as old
        KeyPolicyVersion.objects.filter(pk=found.pk).update(principal_ids=edited)
        with pytest.raises(errors.KMSInternalException):
            restore(key, 1)
        with pytest.raises(errors.KMSInternalException):
            plan_of(key, 1)
    assert old.arn not in Key.objects.get(pk=key.pk).policy


# Who is told what.


def test_another_accounts_principal_is_told_without_its_history(account: Account, admin: Persona) -> None:
    """For the same version and principals, the notes tell the operator everything, the key's account all about
    its own principals, and of another account's only that the principal named is not (or may not be) the one
    the version named: never its unique id, whether it was deleted or recreated, nor when it was created."""
    ours, theirs = f"arn:aws:iam::{ACCOUNT}:user/alice", f"arn:aws:iam::{PARTNER_ACCOUNT}:user/bob"
    written = KeyPolicyVersion(version=4, document=policy_naming(ours, theirs))
    written.created_at = timezone.now()
    later = written.created_at + timedelta(days=1)
    old, new = "AIDAOLDOLDOLDOLDOLDOL", "AIDANEWNEWNEWNEWNEWN"
    cases: list[tuple[dict[str, Any] | None, str | None, str]] = [
        ({ours: old, theirs: old}, new, "no longer the one version 4 named"),  # recreated
        ({ours: old, theirs: old}, None, "no longer the one version 4 named"),  # deleted
        ({ours: None, theirs: None}, new, "is not one version 4 named"),  # created since
        (None, new, "this cannot tell whether the principal named"),  # before bindings, created since
    ]
    for recorded, current, said in cases:
        written.principal_ids = recorded
        named = NamedPrincipals(
            {ours: current, theirs: current}, {ours: later, theirs: later} if current else {}
        )
        plan = policy_restore.restore_plan(written, named, own_account=ACCOUNT)
        [mine, other] = plan.notes
        assert ours in mine and theirs in other and said in other, (recorded, current)
        for secret in (old, new, f"{later:%Y-%m-%d %H:%M}", "deleted", "created"):
            assert secret not in other, (recorded, current, secret)
        if recorded is not None and current is None:
            assert old in mine and "deleted" in mine
        if recorded is not None and recorded.get(ours):
            assert plan.rebound == {ours: old, theirs: old}  # written the same for both
            assert plan.rebound_shown == {ours: old, theirs: None}
        told = policy_restore.restore_plan(written, named, own_account=None)  # the operator
        assert all(theirs not in note or said not in note for note in told.notes)
        if recorded is not None and recorded.get(theirs):
            assert told.rebound_shown == {ours: old, theirs: old}


def test_a_reader_of_the_history_gets_the_version_and_no_principal_history(
    account: Account, admin: Persona
) -> None:
    """The review runs as a read of the history (kms:GetKeyPolicy): a caller who may not PutKeyPolicy on the key
    gets the version and no plan (no notes, no principal looked up); one who may gets the plan."""
    key, old, _ = recreated(account, admin)
    reader = create_user(
        account,
        "reader",
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["kms:GetKeyPolicy", "kms:DescribeKey", "kms:List*"],
                        "Resource": "*",
                    }
                ],
            }
        ),
    )
    seen = preview(key, 1, reader)
    assert seen.plan is None and seen.version.version == 1
    plan = preview(key, 1, admin).plan
    assert plan is not None and plan.rebound == {old.arn: old.unique_id}
