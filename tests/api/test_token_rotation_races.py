"""REST API tokens across a root-key rotation, against what runs at the same time: a revocation racing the token's
first use (its re-hash), `rootkey retire --end-unmovable` racing a use, a deletion of the token's user, and a
process that has not read the rotated key file yet (a rolling restart)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone as real_timezone

from kmsconsole.api import token_dependents
from kmsconsole.api import tokens as api_tokens
from kmsconsole.api.models import ApiToken
from kmsconsole.api.tokens import api_token_revoke
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core.rootkey import root_keys
from policies.models import Account
from tests.api.conftest import client_with, token_for
from tests.conftest import Persona, as_operator
from tests.policies.test_principal_deletion import delete_as, plain_user
from tests.races import Pause, finish, in_thread, waits_or_ends
from tests.rootkeys import chain_head_free_while_ending, dependent

pytestmark = pytest.mark.django_db(transaction=True)

KEYS = "/api/v1/keys"
TOKENS = "API token digests"


def row_of(token: str) -> ApiToken:
    return ApiToken.objects.select_related("principal__account").get(prefix=token.split("_")[1])


def end_in_the_retire_transaction() -> int:
    with transaction.atomic():  # as root_keys_retire runs it (its operation's transaction)
        return dependent(TOKENS).end_unmovable(root_keys())


def test_a_revocation_racing_the_first_use_after_a_rotation_keeps_the_row_mac_valid(
    account: Account, admin: Persona, root_key_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = token_for(account, "admin")
    pk = row_of(token).pk
    root_key_file.rotate()
    results: dict[str, Any] = {}
    fired = threading.Event()

    class Hook:
        """api_token_revoke calls timezone.now() after it read the row and before it saves it: the token's first
        use after the rotation (another request, another connection) happens exactly there."""

        @staticmethod
        def now() -> Any:
            if threading.current_thread() is threading.main_thread() and not fired.is_set():
                fired.set()
                finish(
                    in_thread(lambda: client_with(token).get(KEYS).status_code, results, "user"),
                    results=results,
                )
            return real_timezone.now()

    monkeypatch.setattr(api_tokens, "timezone", Hook)
    as_operator("kmsconsole:RevokeApiToken", lambda ctx: api_token_revoke(ctx=ctx, token_id=pk))
    assert fired.is_set() and results["user"] == 200
    row = row_of(token)
    assert row.revoked_at is not None
    row.check_row()  # the revocation's MAC covers the digest the row holds, whoever wrote it last


def test_end_unmovable_leaves_a_token_that_moved_to_the_current_key_meanwhile(
    account: Account, admin: Persona, root_key_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = token_for(account, "admin"), token_for(account, "admin")
    new_key = root_key_file.rotate()
    # `second`'s first use re-hashes it and stops, its row locked, before it commits.
    paused = Pause(api_tokens.digest_now, thread="user")
    monkeypatch.setattr(api_tokens, "digest_now", paused)
    results: dict[str, Any] = {}
    using = in_thread(lambda: client_with(second).get(KEYS).status_code, results, "user")
    assert paused.reached.wait(30)
    retiring = in_thread(lambda: dependent(TOKENS).end_unmovable(root_keys()), results, "retire")
    assert waits_or_ends(retiring) == "waiting"  # for `second`'s row
    paused.release.set()
    finish(using, retiring, results=results)
    assert results == {"user": 200, "retire": 1}
    assert row_of(first).revoked_at is not None
    moved = row_of(second)
    assert moved.revoked_at is None and moved.secret_digest_key_id == new_key
    moved.check_row()


def test_end_unmovable_counts_a_token_deleted_meanwhile_as_ended(
    account: Account, admin: Persona, root_key_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain_user(account, "bob")
    first, second = token_for(account, "admin"), token_for(account, "bob")
    root_key_file.rotate()
    results: dict[str, Any] = {}
    threads: list[threading.Thread] = []
    original = token_dependents.perform

    def perform(*args: Any, **kwargs: Any) -> Any:
        if not threads:  # bob's deletion (which deletes his tokens) comes while the first token is revoked
            threads.append(in_thread(lambda: delete_as(admin, "user", "bob"), results, "deleter"))
            # Watched from a connection of its own: this one is in a transaction, where pg_stat_activity stays
            # as it was first read.
            finish(in_thread(lambda: waits_or_ends(threads[0]), results, "watcher"), results=results)
        return original(*args, **kwargs)

    monkeypatch.setattr(token_dependents, "perform", perform)
    ended = dependent(TOKENS).end_unmovable(root_keys())
    finish(*threads, results=results)
    assert ended in (1, 2)  # bob's token revoked before his deletion, or gone with it
    assert row_of(first).revoked_at is not None
    assert not ApiToken.objects.filter(prefix=second.split("_")[1]).exists()


def test_end_unmovable_takes_the_audit_chain_head_last(
    account: Account, admin: Persona, root_key_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Principal_locks rule 5, inside the retire operation's transaction: while tokens are being revoked, the
    chain head is free (their events are appended at the end)."""
    token_for(account, "admin")
    token_for(account, "admin")
    root_key_file.rotate()
    assert chain_head_free_while_ending(TOKENS, token_dependents, monkeypatch) == 2
    assert AuditEvent.objects.filter(operation="kmsconsole:RevokeApiToken").count() == 2


def test_end_unmovable_inside_the_retire_transaction_does_not_deadlock_with_a_user_deletion(
    account: Account, admin: Persona, root_key_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rootkey retire --end-unmovable` calls `end_unmovable` inside its own operation's transaction: the audit
    chain head is taken last (principal_locks rule 5), so a DeleteUser holding a token's user waits or goes
    first, never deadlocks with it."""
    plain_user(account, "alice")
    plain_user(account, "bob")
    token_for(account, "alice")  # revoked first (lower pk)
    token_for(account, "bob")
    root_key_file.rotate()
    paused = Pause(token_dependents.perform, thread="retire")  # after the first revocation
    monkeypatch.setattr(token_dependents, "perform", paused)
    results: dict[str, Any] = {}

    retiring = in_thread(end_in_the_retire_transaction, results, "retire")
    assert paused.reached.wait(30)
    deleter = in_thread(lambda: delete_as(admin, "user", "bob"), results, "deleter")
    waits_or_ends(deleter)
    paused.release.set()
    finish(retiring, deleter, results=results)
    assert results["retire"] == 2


def test_a_token_rehashed_by_a_process_that_read_the_new_key_works_in_one_that_had_not_yet(
    account: Account, admin: Persona, root_key_file: Any
) -> None:
    """A rolling restart, or a process that has not looked at its key file since `rootkey rotate`: another
    process moved the token to the new key; this one reads the key file again on the miss."""
    token = token_for(account, "admin")
    old_ring = root_key_file.path.read_text()
    root_key_file.rotate()
    new_ring = root_key_file.path.read_text()
    assert client_with(token).get(KEYS).status_code == 200  # re-hashed under the new key
    root_key_file.write(old_ring)  # this process has the old ring...
    root_key_file.path.write_text(new_ring)  # ...and the file is rotated, unread yet
    assert client_with(token).get(KEYS).status_code == 200
    assert root_keys().current.key_id == row_of(token).secret_digest_key_id
