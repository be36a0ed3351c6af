"""A CreateGrant, PutKeyPolicy or CreateKey naming a user, racing that user's deletion (two threads, two database
connections, a deterministic interleaving), and the deletion racing other writes that share its locks.

- The writer locks the named principal's row (FOR KEY SHARE, `policies.principal_locks`) *before* its key's:
  a deletion that comes while the writer holds its key waits for the writer (on the principal) and then rewrites
  what it wrote. With the other order (the key, then the principal) the two waited for each other and PostgreSQL
  aborted one with a deadlock error (`test_a_writer_holding_its_key_and_a_deletion_only_wait`).
- A deletion that holds the principal first makes the writer wait, then refuse: the principal no longer exists.
- The deletion appends its events last (`kmsconsole.audit.recorder.events_at_the_end`): a RevokeGrant on a key it
  rewrites next, or a CreateUser in its account, each holding a generation row while waiting for the audit chain
  head, only wait for it.
- A writer is authorized before it locks any principal: a refused one locks none; writers naming one principal
  do not wait for each other.
- Two deletions in one account (a role with a live session, a user) write the account's IAM generation row only
  after locking the keys and integrated services naming their principal (only those), so they only wait.

Each bad interleaving is forced (`tests.races`): a thread is paused where it holds the locks in question (its key's
row, the principal's row, the chain head), the other is let go until it waits on a lock or finishes, and only then
is the first let go."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from grants import services as grant_services
from grants.models import Grant, IntegratedService
from grants.services import creation as grant_creation
from grants.services import integrated_services
from keys.models import Alias, Key
from keys.services import access, aliases, key_policy, lifecycle, policy_restore
from kmsconsole.api.models import ApiToken
from kmsconsole.api.tokens import api_token_create
from kmsconsole.core import errors
from policies import deletion, services
from policies.models import AccessKey, Account, ConsoleIdentity, IamRole, IamUser, RoleSession
from policies.services import entity_deletion
from tests.conftest import Persona, as_operator, postgresql_only
from tests.policies.analyzer_support import run_as
from tests.policies.test_principal_deletion import delete_as, key_naming, plain_user, policy_naming
from tests.races import Pause, finish, in_thread, lock_waiters, waits_or_ends

# SQLite serialises writers (and the embedded test database is one connection's): the interleaving needs two.
pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]


def create_grant(key: Key, alice: IamUser, admin: Persona) -> Any:
    return as_operator(
        "CreateGrant",
        lambda ctx: grant_services.grant_create(
            ctx=ctx, key_id=str(key.key_id), grantee_principal=alice.arn, operations=["Decrypt"]
        ),
    )


def with_alice(key: Key, alice: IamUser) -> str:
    """The key's policy with one more statement, which lets alice decrypt."""
    policy = json.loads(key.policy)
    statement = {
        "Sid": "Alice decrypts",
        "Effect": "Allow",
        "Principal": {"AWS": alice.arn},
        "Action": "kms:Decrypt",
        "Resource": "*",
    }
    policy["Statement"].append(statement)
    return json.dumps(policy, indent=2)


def put_key_policy(key: Key, alice: IamUser, admin: Persona) -> Any:
    policy = with_alice(key, alice)
    return as_operator(
        "PutKeyPolicy", lambda ctx: key_policy.key_policy_put(ctx=ctx, key_id=str(key.key_id), policy=policy)
    )


def create_key(key: Key, alice: IamUser, admin: Persona) -> Any:
    policy = with_alice(key, alice)
    return as_operator("CreateKey", lambda ctx: lifecycle.key_create(ctx=ctx, policy=policy))


def register_service(key: Key, alice: IamUser, admin: Persona) -> Any:
    return as_operator(
        "kmsconsole:RegisterIntegratedService",
        lambda ctx: grant_services.integrated_service_register(
            ctx=ctx, name="ec2.us-east-1.amazonaws.com", principals=[admin.arn, alice.arn]
        ),
    )


WRITERS: dict[str, Callable[[Key, IamUser, Persona], Any]] = {
    "CreateGrant": create_grant,
    "PutKeyPolicy": put_key_policy,
    "CreateKey": create_key,
    "RegisterIntegratedService": register_service,
}
# What a writer that finds the principal deleted is refused with.
REFUSALS: dict[str, type[errors.KmsError]] = {
    "CreateGrant": errors.InvalidArnException,
    "PutKeyPolicy": errors.MalformedPolicyDocumentException,
    "CreateKey": errors.MalformedPolicyDocumentException,
    "RegisterIntegratedService": errors.ValidationException,
}


def nothing_names(alice: IamUser, account: Account) -> None:
    """Nothing names the deleted alice's ARN, and a new alice inherits nothing."""
    assert not IamUser.objects.filter(pk=alice.pk).exists()
    assert not Grant.objects.filter(grantee_principal=alice.arn).exists()
    assert not Key.objects.filter(policy__contains=alice.arn).exists()
    assert not any(
        alice.arn in bound for bound in IntegratedService.objects.values_list("principals", flat=True)
    )
    plain_user(account, "alice")
    assert not Grant.objects.filter(grantee_principal=alice.arn).exists()
    assert not Key.objects.filter(policy__contains=alice.arn).exists()


def written_by(operation: str, result: Any, key: Key) -> Key:
    """The key the writer wrote (CreateKey's new one, else `key`), as stored now."""
    return Key.objects.get(pk=result.pk if operation == "CreateKey" else key.pk)


@pytest.mark.parametrize("operation", WRITERS)
def test_a_writer_that_checked_before_the_deletion_is_seen_by_it(
    account: Account, admin: Persona, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """The writer has looked up (and locked) the principal and is paused; the deletion waits for it, then
    rewrites what it wrote."""
    alice = plain_user(account, "alice")
    key = key_naming(admin.arn)
    module = {
        "PutKeyPolicy": key_policy,
        "CreateKey": key_policy,
        "CreateGrant": grant_creation,
        "RegisterIntegratedService": integrated_services,
    }[operation]
    paused = Pause(module.lock_named, thread="writer")
    monkeypatch.setattr(module, "lock_named", paused)
    results: dict[str, Any] = {}

    writer = in_thread(lambda: WRITERS[operation](key, alice, admin), results, "writer")
    assert paused.reached.wait(30)
    deleter = in_thread(lambda: delete_as(admin, "user", "alice"), results, "deleter")
    assert waits_or_ends(deleter) == "waiting"  # for the user's row, which the writer locked
    paused.release.set()
    finish(writer, deleter, results=results)

    if operation == "RegisterIntegratedService":
        assert IntegratedService.objects.get().principals == [admin.arn, alice.unique_id]
    elif operation != "CreateGrant":
        written = written_by(operation, results["writer"], key)
        assert alice.unique_id in written.policy  # the deletion rewrote the policy the writer had just put
    nothing_names(alice, account)


@pytest.mark.parametrize("operation", ["CreateGrant", "PutKeyPolicy"])
def test_a_writer_holding_its_key_and_a_deletion_only_wait(
    account: Account, admin: Persona, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """The writer is paused holding its key's row (its second authorization runs once the key is locked); the
    deletion comes, then the writer goes on. The writer locked the principal before the key, so the deletion
    waits on it, and the writer, once released, takes nothing the deletion holds: no deadlock, the deletion
    rewrites what the writer wrote. (Before, the writer locked the principal only now, after its key: the
    deletion held the principal and waited for the key, which it must rewrite as its policy names alice already,
    the writer waited for the principal, and PostgreSQL aborted one.)"""
    alice = plain_user(account, "alice")
    key = key_naming(alice.arn, admin.arn)
    # Its second authorization: the first, on the key as it is, comes before any lock.
    paused = Pause(access.authorize_on_key, thread="writer", after=False, call=2)
    monkeypatch.setattr(access, "authorize_on_key", paused)
    results: dict[str, Any] = {}

    writer = in_thread(lambda: WRITERS[operation](key, alice, admin), results, "writer")
    assert paused.reached.wait(30)
    assert lock_waiters() == 0
    deleter = in_thread(lambda: delete_as(admin, "user", "alice"), results, "deleter")
    assert waits_or_ends(deleter) == "waiting"
    paused.release.set()
    finish(writer, deleter, results=results)

    if operation == "PutKeyPolicy":
        assert alice.unique_id in Key.objects.get(pk=key.pk).policy
    nothing_names(alice, account)


@pytest.mark.parametrize("operation", WRITERS)
def test_a_writer_that_comes_during_the_deletion_waits_and_is_refused(
    account: Account, admin: Persona, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """The deletion holds the principal's row and is paused before it reads the keys naming it (among them the
    writer's, whose policy names alice already); the writer waits for the row, before it locks its key, then
    finds the principal gone and is refused as if it had come after: nothing keeps the ARN. (Before, the writer
    waited for the row holding its key, which the deletion then waited for: a deadlock.)"""
    alice = plain_user(account, "alice")
    key = key_naming(alice.arn, admin.arn)
    paused = Pause(entity_deletion.unbind_deleted_principal, thread="deleter", after=False)
    monkeypatch.setattr(entity_deletion, "unbind_deleted_principal", paused)
    results: dict[str, Any] = {}
    keys_before = set(Key.objects.values_list("pk", flat=True))

    deleter = in_thread(lambda: delete_as(admin, "user", "alice"), results, "deleter")
    assert paused.reached.wait(30)
    writer = in_thread(lambda: WRITERS[operation](key, alice, admin), results, "writer")
    assert waits_or_ends(writer) == "waiting"  # for the user's row, which the deletion locked
    paused.release.set()
    deleter.join(30)
    writer.join(30)
    assert not isinstance(results["deleter"], Exception), repr(results["deleter"])
    refused = results["writer"]
    assert isinstance(refused, REFUSALS[operation]), repr(refused)
    assert set(Key.objects.values_list("pk", flat=True)) == keys_before  # CreateKey made no key
    assert alice.unique_id in Key.objects.get(pk=key.pk).policy
    nothing_names(alice, account)


def _revoke_grant_on(second: Key, admin: Persona, account: Account) -> Callable[[], Any]:
    bob = plain_user(account, "bob")
    created = as_operator(
        "CreateGrant",
        lambda ctx: grant_services.grant_create(
            ctx=ctx, key_id=str(second.key_id), grantee_principal=bob.arn, operations=["Decrypt"]
        ),
    ).grant
    return lambda: as_operator(
        "RevokeGrant",
        lambda ctx: grant_services.grant_revoke(
            ctx=ctx, key_id=str(second.key_id), grant_id=created.grant_id
        ),
    )


def _create_user(second: Key, admin: Persona, account: Account) -> Callable[[], Any]:
    return lambda: plain_user(account, "carol")


OTHERS: dict[str, Callable[[Key, Persona, Account], Callable[[], Any]]] = {
    # Deletes a grant of the key the deletion rewrites next: bumps that key's generation, then wants the head.
    "RevokeGrant on the next key": _revoke_grant_on,
    # Inserts a user in the deleted user's account: bumps the account's IAM generation, then wants the head.
    "CreateUser in the account": _create_user,
}


@pytest.mark.parametrize("other", OTHERS)
def test_the_deletion_takes_the_audit_chain_head_last(
    account: Account, admin: Persona, monkeypatch: pytest.MonkeyPatch, other: str
) -> None:
    """The deletion is paused after it has rewritten the first of two keys naming the principal; another
    request that holds a generation row the deletion writes next, then wants the audit chain head, runs. The
    deletion's events are appended only at its end, so it held no head while paused: the other request
    finishes, and the deletion goes on. (Before, each key's event was appended as soon as that key was
    rewritten: the deletion held the head and waited for the generation row, the other request the reverse.)"""
    alice = plain_user(account, "alice")
    first, second = key_naming(alice.arn, admin.arn), key_naming(alice.arn, admin.arn)
    run_other = OTHERS[other](second, admin, account)
    paused = Pause(deletion._unbind_key, thread="deleter")
    monkeypatch.setattr(deletion, "_unbind_key", paused)
    results: dict[str, Any] = {}

    deleter = in_thread(lambda: delete_as(admin, "user", "alice"), results, "deleter")
    assert paused.reached.wait(30)
    assert alice.unique_id not in Key.objects.get(pk=first.pk).policy  # not committed yet
    rival = in_thread(run_other, results, "other")
    waits_or_ends(rival)
    paused.release.set()
    finish(deleter, rival, results=results)

    for key in (first, second):
        assert alice.unique_id in Key.objects.get(pk=key.pk).policy
    nothing_names(alice, account)


def _assume_role(account: Account) -> Any:
    return as_operator(
        "sts:AssumeRole",
        lambda ctx: services.role_assume(ctx=ctx, account=account, role_name="app", session_name="job-1"),
    )


def _access_key(account: Account) -> Any:
    return as_operator(
        "iam:CreateAccessKey",
        lambda ctx: services.access_key_create(ctx=ctx, account=account, user_name="alice"),
    )


def _api_token(account: Account) -> Any:
    return as_operator(
        "kmsconsole:CreateApiToken",
        lambda ctx: api_token_create(ctx=ctx, account=account, user_name="alice"),
    )


def _console_login(account: Account) -> Any:
    alice = IamUser.objects.get(account=account, name="alice")
    return as_operator(
        "kmsconsole:CreateConsoleLogin",
        lambda ctx: services.console_login_create(
            ctx=ctx, iam_user=alice, username="alice-login", password="a long enough passphrase 1"
        ),
    )


# A row that refers to the principal being deleted, inserted meanwhile: (the principal's kind, the insert).
CHILDREN: dict[str, tuple[str, Callable[[Account], Any]]] = {
    "AssumeRole": ("role", _assume_role),
    "CreateAccessKey": ("user", _access_key),
    "CreateApiToken": ("user", _api_token),
    "CreateConsoleLogin": ("user", _console_login),
}


@pytest.mark.parametrize("child", CHILDREN)
def test_a_row_for_the_principal_inserted_during_its_deletion_waits_and_is_refused(
    account: Account, admin: Persona, monkeypatch: pytest.MonkeyPatch, child: str
) -> None:
    """The deletion holds the principal's row and is paused; a request inserts a row referring to it (a session
    of the role, an access key, API token or console login of the user). The insert locks the principal's row
    first (FOR KEY SHARE, `policies.principal_locks.held_for_a_child`), so it waits for the deletion and then
    finds the principal gone: NoSuchEntity, nothing inserted. (Before, its foreign key was checked only at its
    commit, after its event had taken the audit chain head, which the deletion then waited for: a deadlock.)"""
    kind, insert = CHILDREN[child]
    if kind == "role":
        as_operator(
            "iam:CreateRole", lambda ctx: services.role_create(ctx=ctx, account=account, role_name="app")
        )
    else:
        plain_user(account, "alice")
    name = "app" if kind == "role" else "alice"
    paused = Pause(entity_deletion.unbind_deleted_principal, thread="deleter", after=False)
    monkeypatch.setattr(entity_deletion, "unbind_deleted_principal", paused)
    results: dict[str, Any] = {}

    deleter = in_thread(lambda: delete_as(admin, kind, name), results, "deleter")
    assert paused.reached.wait(30)
    inserter = in_thread(lambda: insert(account), results, "inserter")
    assert waits_or_ends(inserter) == "waiting"  # for the principal's row
    paused.release.set()
    deleter.join(30)
    inserter.join(30)
    assert not isinstance(results["deleter"], Exception), repr(results["deleter"])
    assert isinstance(results["inserter"], errors.NoSuchEntityException), repr(results["inserter"])
    assert not RoleSession.objects.exists() and not AccessKey.objects.filter(account=account, user__name=name)
    assert not ApiToken.objects.exists() and not ConsoleIdentity.objects.exists()


def test_update_alias_and_a_deletion_lock_keys_in_one_order(
    account: Account, admin: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    """UpdateAlias moves an alias from one key naming alice to another (of a higher primary key) while alice is
    deleted, which rewrites both. UpdateAlias is paused once it holds the new key, before it locks the old one;
    the deletion comes, then UpdateAlias goes on. Both lock keys in primary key order, so the deletion waits for
    the first key and nothing deadlocks. (Before, UpdateAlias locked the new key, then the old: the deletion held
    the old one and waited for the new one, UpdateAlias the reverse.)"""
    alice = plain_user(account, "alice")
    old, new = key_naming(alice.arn, admin.arn), key_naming(alice.arn, admin.arn)
    assert old.pk < new.pk
    as_operator(
        "CreateAlias",
        lambda ctx: aliases.alias_create(ctx=ctx, alias_name="alias/app", target_key_id=str(old.key_id)),
    )
    paused = Pause(aliases.locked_and_checked, thread="aliaser", after=False)
    monkeypatch.setattr(aliases, "locked_and_checked", paused)
    results: dict[str, Any] = {}

    aliaser = in_thread(
        lambda: as_operator(
            "UpdateAlias",
            lambda ctx: aliases.alias_update(ctx=ctx, alias_name="alias/app", target_key_id=str(new.key_id)),
        ),
        results,
        "aliaser",
    )
    assert paused.reached.wait(30)
    deleter = in_thread(lambda: delete_as(admin, "user", "alice"), results, "deleter")
    assert waits_or_ends(deleter) == "waiting"
    paused.release.set()
    finish(aliaser, deleter, results=results)

    assert Alias.objects.get(name="alias/app").key_id == new.pk
    for key in (old, new):
        assert alice.unique_id in Key.objects.get(pk=key.pk).policy
    nothing_names(alice, account)


def _a_key_naming_both(role: IamRole, alice: IamUser, admin: Persona) -> None:
    key_naming(role.arn, alice.arn, admin.arn)


def _a_service_naming_neither(role: IamRole, alice: IamUser, admin: Persona) -> None:
    as_operator(
        "kmsconsole:RegisterIntegratedService",
        lambda ctx: grant_services.integrated_service_register(
            ctx=ctx, name="ec2.us-east-1.amazonaws.com", principals=[admin.arn]
        ),
    )


# What two deletions in one account share: (what is made, what each key policy or binding names afterwards).
SHARED: dict[str, Callable[[IamRole, IamUser, Persona], None]] = {
    # Both deletions lock it (the keys naming their principal, in primary key order).
    "a key naming both": _a_key_naming_both,
    # Neither names it: locked by neither deletion (before, each locked every integrated service's row).
    "an integrated service naming neither": _a_service_naming_neither,
}


@pytest.mark.parametrize("first", ["DeleteRole", "DeleteUser"])
@pytest.mark.parametrize("shared", SHARED)
def test_two_deletions_in_one_account_only_wait(
    account: Account, admin: Persona, monkeypatch: pytest.MonkeyPatch, first: str, shared: str
) -> None:
    """A DeleteRole of a role with a live session and a DeleteUser in the same account. The first is paused: a
    DeleteRole before it unbinds the role (before, it had already ended the role's sessions, which bumps the
    account's IAM generation row, `iam:<account>`); a DeleteUser once it has unbound the user (holding the keys
    and integrated services it locked), before it deletes the user's row (which bumps that generation). The other
    runs, then the first goes on. Every write of the generation row comes after the key and integrated-service
    locks in both, so one only waits for the other. (Before, the DeleteRole held the generation row and wanted a
    key or an integrated service the DeleteUser held, which wanted the generation row: PostgreSQL aborted one.)"""
    role = as_operator(
        "iam:CreateRole", lambda ctx: services.role_create(ctx=ctx, account=account, role_name="app")
    )
    _assume_role(account)
    alice = plain_user(account, "alice")
    SHARED[shared](role, alice, admin)
    services_before = list(IntegratedService.objects.values_list("name", "principals"))
    deletions = {
        "DeleteRole": lambda: delete_as(admin, "role", "app"),
        "DeleteUser": lambda: delete_as(admin, "user", "alice"),
    }
    paused = Pause(entity_deletion.unbind_deleted_principal, thread="first", after=first == "DeleteUser")
    monkeypatch.setattr(entity_deletion, "unbind_deleted_principal", paused)
    results: dict[str, Any] = {}

    one = in_thread(deletions[first], results, "first")
    assert paused.reached.wait(30)
    [second] = set(deletions) - {first}
    other = in_thread(deletions[second], results, "second")
    waits_or_ends(other)
    paused.release.set()
    finish(one, other, results=results)

    assert results["first" if first == "DeleteRole" else "second"].sessions_ended == 1
    assert not RoleSession.objects.exists() and not IamRole.objects.filter(pk=role.pk).exists()
    nothing_names(alice, account)
    if shared == "a key naming both":
        policy = Key.objects.get(policy__contains=alice.unique_id).policy
        assert role.unique_id in policy and role.arn not in policy
    else:
        assert list(IntegratedService.objects.values_list("name", "principals")) == services_before


def _refused_writes(key: Key, alice: IamUser, outsider: Persona) -> dict[str, Callable[[], Any]]:
    policy = with_alice(key, alice)
    return {
        "CreateGrant": lambda: run_as(
            outsider,
            "CreateGrant",
            lambda ctx: grant_services.grant_create(
                ctx=ctx, key_id=str(key.key_id), grantee_principal=alice.arn, operations=["Decrypt"]
            ),
        ),
        "PutKeyPolicy": lambda: run_as(
            outsider,
            "PutKeyPolicy",
            lambda ctx: key_policy.key_policy_put(ctx=ctx, key_id=str(key.key_id), policy=policy),
        ),
    }


@pytest.mark.parametrize("operation", ["CreateGrant", "PutKeyPolicy"])
def test_a_refused_writer_locks_no_principal(
    account: Account, admin: Persona, outsider: Persona, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """A caller allowed nothing names alice; it is paused before its authorization. It has looked up and locked
    nothing yet, so alice's deletion does not wait for it; then it is refused. (Before, it locked the principals
    it named before its authorization: any caller could hold any account's principals' rows, blocking their
    deletion, and time another account's changes to them.)"""
    alice = plain_user(account, "alice")
    key = key_naming(alice.arn, admin.arn)
    paused = Pause(access.authorize_on_key, thread="writer", after=False)
    monkeypatch.setattr(access, "authorize_on_key", paused)
    results: dict[str, Any] = {}

    writer = in_thread(_refused_writes(key, alice, outsider)[operation], results, "writer")
    assert paused.reached.wait(30)
    deleter = in_thread(lambda: delete_as(admin, "user", "alice"), results, "deleter")
    seen = waits_or_ends(deleter)
    paused.release.set()
    writer.join(30)
    deleter.join(30)

    assert seen == "finished"
    assert isinstance(results["writer"], errors.AccessDeniedException), repr(results["writer"])
    assert not isinstance(results["deleter"], Exception), repr(results["deleter"])
    nothing_names(alice, account)


@pytest.mark.parametrize("second", ["CreateGrant", "PutKeyPolicy"])
def test_writers_naming_one_principal_do_not_wait_for_each_other(
    account: Account, admin: Persona, monkeypatch: pytest.MonkeyPatch, second: str
) -> None:
    """A CreateGrant to alice on one key is paused holding alice's row; a CreateGrant or PutKeyPolicy naming alice
    on another key goes through. The writers lock what they name FOR KEY SHARE, which conflicts with the
    deletion's FOR UPDATE only. (Before, FOR NO KEY UPDATE: every writer naming alice waited for the one before.)"""
    alice = plain_user(account, "alice")
    one, two = key_naming(admin.arn), key_naming(admin.arn)
    paused = Pause(grant_creation.lock_named, thread="first")
    monkeypatch.setattr(grant_creation, "lock_named", paused)
    results: dict[str, Any] = {}

    first = in_thread(lambda: create_grant(one, alice, admin), results, "first")
    assert paused.reached.wait(30)
    other = in_thread(lambda: WRITERS[second](two, alice, admin), results, "second")
    seen = waits_or_ends(other)
    paused.release.set()
    finish(first, other, results=results)

    assert seen == "finished"
    assert Grant.objects.filter(grantee_principal=alice.arn, key=one).exists()


def _restore_version_1(key: Key) -> Any:
    return as_operator(
        "PutKeyPolicy",
        lambda ctx: policy_restore.key_policy_restore(ctx=ctx, key_id=str(key.key_id), version=1),
    )


@pytest.mark.parametrize("first", ["restore", "deletion"])
def test_a_restore_and_a_deletion_of_a_principal_it_names_only_wait(
    account: Account, admin: Persona, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    """Version 1 of a key's policy names alice, the current one does not; alice is deleted while version 1 is
    restored. The restore paused once it has locked the principals version 1 names: the deletion waits for it, and
    then rewrites the restored policy (which names alice's ARN again) to her unique id. The deletion paused holding
    alice's row: the restore waits for it, finds alice gone, and writes the unique id the version recorded. Either
    way nothing names alice's ARN afterwards."""
    alice = plain_user(account, "alice")
    key = key_naming(alice.arn, admin.arn)
    as_operator(
        "PutKeyPolicy",
        lambda ctx: key_policy.key_policy_put(
            ctx=ctx, key_id=str(key.key_id), policy=policy_naming(admin.arn)
        ),
    )
    if first == "restore":
        paused = Pause(policy_restore.lock_principals_of, thread="first")
        monkeypatch.setattr(policy_restore, "lock_principals_of", paused)
        work = {"first": lambda: _restore_version_1(key), "second": lambda: delete_as(admin, "user", "alice")}
    else:
        paused = Pause(entity_deletion.unbind_deleted_principal, thread="first", after=False)
        monkeypatch.setattr(entity_deletion, "unbind_deleted_principal", paused)
        work = {"first": lambda: delete_as(admin, "user", "alice"), "second": lambda: _restore_version_1(key)}
    results: dict[str, Any] = {}

    one = in_thread(work["first"], results, "first")
    assert paused.reached.wait(30)
    other = in_thread(work["second"], results, "second")
    assert waits_or_ends(other) == "waiting"  # for alice's row
    paused.release.set()
    finish(one, other, results=results)

    restored = results["first" if first == "restore" else "second"]
    assert restored.plan.rebound == ({} if first == "restore" else {alice.arn: alice.unique_id})
    policy = Key.objects.get(pk=key.pk).policy
    assert alice.unique_id in policy and alice.arn not in policy
    nothing_names(alice, account)
