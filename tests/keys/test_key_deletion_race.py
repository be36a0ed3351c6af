"""An alias operation or a RevokeGrant racing the destruction of its key (the deletion sweep), two threads, two
database connections, a forced interleaving (`tests.races`).

UpdateAlias and DeleteAlias lock the alias's row, then its key(s). Destroying a key deletes its aliases with it
(the cascade). The destruction locks the key's alias rows, in primary key order, before the key's row
(`keys.services.deletion._destroy`): the alias's order. (Before, it locked the key, then met the alias row in the
cascade while the alias operation held it and waited for the key: PostgreSQL aborted one of them.) It also locks
the key's grants before its first write, as a RevokeGrant locks its grant before it bumps the key's generation row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from grants import services as grant_services
from grants.models import Grant
from keys.models import Alias, DeletedKey, Key
from keys.services import aliases, deletion
from kmsconsole.core import errors
from kmsconsole.generations.scopes import bump, key_scope
from tests.conftest import Persona, as_operator, postgresql_only
from tests.policies.test_principal_deletion import key_naming
from tests.races import Pause, finish, in_thread, waits_or_ends

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]


def _update_alias(new: Key) -> Callable[[], Any]:
    return lambda: as_operator(
        "UpdateAlias",
        lambda ctx: aliases.alias_update(ctx=ctx, alias_name="alias/app", target_key_id=str(new.key_id)),
    )


def _delete_alias(new: Key) -> Callable[[], Any]:
    return lambda: as_operator(
        "DeleteAlias", lambda ctx: aliases.alias_delete(ctx=ctx, alias_name="alias/app")
    )


ALIAS_OPERATIONS: dict[str, Callable[[Key], Callable[[], Any]]] = {
    "UpdateAlias": _update_alias,
    "DeleteAlias": _delete_alias,
}


def _scheduled(key: Key) -> None:
    as_operator(
        "ScheduleKeyDeletion",
        lambda ctx: deletion.key_schedule_deletion(ctx=ctx, key_id=str(key.key_id), pending_window_days=7),
    )


def _destruction(key: Key) -> Callable[[], Any]:
    """The sweep's destruction of `key`, eight days on (its seven-day window has passed)."""
    later = timezone.now() + timedelta(days=8)
    return lambda: deletion.key_destroy(
        key_pk=key.pk, account_id=key.account.account_id, key_arn=key.arn, now=later
    )


@pytest.mark.parametrize("operation", ALIAS_OPERATIONS)
def test_an_alias_operation_and_the_destruction_of_its_key_only_wait(
    admin: Persona, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """The alias names key `old`, which is pending deletion. UpdateAlias (to `new`) or DeleteAlias is paused once it
    has authorized on `old`, holding the alias's row; the sweep destroys `old` (its window has passed); then the
    alias operation goes on. The destruction waits for the alias row before it locks the key, so the alias
    operation finishes first and the key is destroyed after."""
    old, new = key_naming(admin.arn), key_naming(admin.arn)
    as_operator(
        "CreateAlias",
        lambda ctx: aliases.alias_create(ctx=ctx, alias_name="alias/app", target_key_id=str(old.key_id)),
    )
    _scheduled(old)
    paused = Pause(aliases.authorize_on_key, thread="aliaser")
    monkeypatch.setattr(aliases, "authorize_on_key", paused)
    results: dict[str, Any] = {}

    aliaser = in_thread(ALIAS_OPERATIONS[operation](new), results, "aliaser")
    assert paused.reached.wait(30)
    destroyer = in_thread(_destruction(old), results, "destroyer")
    assert waits_or_ends(destroyer) == "waiting"  # for the alias row
    paused.release.set()
    finish(aliaser, destroyer, results=results)

    assert results["destroyer"] is not None  # destroyed, not skipped
    assert (
        not Key.objects.filter(pk=old.pk).exists() and DeletedKey.objects.filter(key_id=old.key_id).exists()
    )
    if operation == "UpdateAlias":
        assert Alias.objects.get(name="alias/app").key_id == new.pk
    else:
        assert not Alias.objects.exists()


def test_a_revoke_grant_and_the_destruction_of_its_key_only_wait(admin: Persona) -> None:
    """The destruction deletes the key's rows (material versions, tags, grants, ...) with it; deleting any of them
    bumps the key's generation row (a database trigger), and a RevokeGrant's one DELETE statement locks its grant's
    row, then bumps that generation row too. Another transaction holds the generation row (a paused write of the
    key's scope): the destruction comes and waits for it, then a RevokeGrant of the key's grant, which waits for
    it too, holding its grant row. When the holder commits, the destruction goes first. It locked the key's grants
    before its first write, so the RevokeGrant was waiting for it there, holding nothing it wants: the RevokeGrant
    finds its grant gone. (Before, the destruction took the generation row deleting the material versions, then
    waited for the grant row the RevokeGrant held, which waited for the generation row: a deadlock.)"""
    key = key_naming(admin.arn)
    grant = as_operator(
        "CreateGrant",
        lambda ctx: grant_services.grant_create(
            ctx=ctx, key_id=str(key.key_id), grantee_principal=admin.arn, operations=["Decrypt"]
        ),
    ).grant
    _scheduled(key)
    holding, release = threading.Event(), threading.Event()

    def hold_the_generation_row() -> None:
        with transaction.atomic():
            bump(key_scope(key.key_id))
            holding.set()
            assert release.wait(30)

    results: dict[str, Any] = {}
    holder = in_thread(hold_the_generation_row, results, "holder")
    assert holding.wait(30)
    destroyer = in_thread(_destruction(key), results, "destroyer")
    assert waits_or_ends(destroyer) == "waiting"
    revoker = in_thread(
        lambda: as_operator(
            "RevokeGrant",
            lambda ctx: grant_services.grant_revoke(ctx=ctx, key_id=str(key.key_id), grant_id=grant.grant_id),
        ),
        results,
        "revoker",
    )
    assert waits_or_ends(revoker, waiters=2) == "waiting"
    release.set()
    for thread in (holder, destroyer, revoker):
        thread.join(30)
        assert not thread.is_alive()

    assert results["destroyer"] is not None, repr(results["destroyer"])
    assert not isinstance(results["destroyer"], Exception), repr(results["destroyer"])
    assert isinstance(results["revoker"], errors.NotFoundException), repr(results["revoker"])
    assert not Key.objects.filter(pk=key.pk).exists() and not Grant.objects.exists()
