"""A CreateGrant or PutKeyPolicy naming a user, racing that user's deletion (two threads, two database
connections, a deterministic interleaving): the writer checks that the principal exists and is paused there; the
deletion runs meanwhile. The writer's check locks the user's row (FOR NO KEY UPDATE, `policies.principal_locks`),
so the deletion waits for the writer to commit and then rewrites what it wrote: nothing is left naming the old
ARN, which a new user of the same name would otherwise inherit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections

from grants import services as grant_services
from grants.models import Grant
from keys.models import Key
from keys.services import key_policy
from policies.models import Account, IamUser
from tests.conftest import Persona, as_operator, postgresql_only
from tests.policies.test_principal_deletion import delete_as, key_naming, plain_user

# SQLite serialises writers (and the embedded test database is one connection's): the interleaving needs two.
pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]


class Paused:
    """Wraps the writer's existence check: once it has returned (its locks taken), say so and wait."""

    def __init__(self, check: Callable[..., Any]) -> None:
        self.check = check
        self.checked = threading.Event()
        self.release = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        found = self.check(*args, **kwargs)
        if threading.current_thread() is not threading.main_thread():
            self.checked.set()
            assert self.release.wait(30)
        return found


def in_thread(work: Callable[[], Any], results: dict[str, Any], name: str) -> threading.Thread:
    def run() -> None:
        try:
            results[name] = work()
        except Exception as exc:  # reported by the test
            results[name] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


WRITERS: dict[str, tuple[Any, Callable[[Key, IamUser, Persona], Callable[[Any], Any]]]] = {
    "CreateGrant": (
        grant_services,
        lambda key, alice, admin: (
            lambda ctx: grant_services.grant_create(
                ctx=ctx, key_id=str(key.key_id), grantee_principal=alice.arn, operations=["Decrypt"]
            )
        ),
    ),
    "PutKeyPolicy": (
        key_policy,
        lambda key, alice, admin: (
            lambda ctx: key_policy.key_policy_put(
                ctx=ctx,
                key_id=str(key.key_id),
                policy=key.policy.replace(f'"{admin.arn}"', f'"{admin.arn}", "{alice.arn}"'),
            )
        ),
    ),
}


@pytest.mark.parametrize("operation", WRITERS)
def test_a_writer_that_checked_before_the_deletion_is_seen_by_it(
    account: Account, admin: Persona, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    alice = plain_user(account, "alice")
    key = key_naming(admin.arn)
    module, write = WRITERS[operation]
    paused = Paused(module.existing_locked)
    monkeypatch.setattr(module, "existing_locked", paused)
    results: dict[str, Any] = {}

    writer = in_thread(lambda: as_operator(operation, write(key, alice, admin)), results, "writer")
    assert paused.checked.wait(30)
    deleter = in_thread(lambda: delete_as(admin, "user", "alice"), results, "deleter")
    time.sleep(1)
    assert deleter.is_alive()  # waiting for the user's row, which the writer's check locked
    paused.release.set()
    writer.join(30)
    deleter.join(30)
    assert not writer.is_alive() and not deleter.is_alive()
    assert not isinstance(results["writer"], Exception), results["writer"]
    assert not isinstance(results["deleter"], Exception), results["deleter"]

    assert not IamUser.objects.filter(pk=alice.pk).exists()
    assert not Grant.objects.filter(grantee_principal=alice.arn).exists()
    key.refresh_from_db()
    assert alice.arn not in key.policy
    if operation == "PutKeyPolicy":
        assert alice.unique_id in key.policy  # the deletion rewrote the policy the writer had just put
    # A new alice gets nothing of the old one's.
    plain_user(account, "alice")
    assert (
        not Grant.objects.filter(grantee_principal=alice.arn).exists()
        and alice.arn not in Key.objects.get(pk=key.pk).policy
    )
