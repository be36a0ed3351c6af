"""Helpers for tests of what a root-key rotation does to a subsystem (with the `root_key_file` fixture)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kmsconsole.core.rootkey import root_keys
from kmsconsole.core.rootkey_dependents import RootKeyDependent, dependents


def retire_previous(root_key_file: Any) -> None:
    """Mark every previous key of the test's ring `retired:`, as `rootkey retire` does (and reload)."""
    current, *others = [line.strip() for line in root_key_file.path.read_text().splitlines() if line.strip()]
    root_key_file.write(
        "\n".join([current, *(f"retired:{line.removeprefix('retired:')}" for line in others)])
    )


def dependent(name: str) -> RootKeyDependent:
    """The registered dependent `name` (registered when the apps were ready, as the rootkey command sees them)."""
    [found] = [one for one in dependents() if one.name == name]
    return found


def remaining_count(name: str) -> int:
    return dependent(name).remaining(root_keys()).count


def chain_head_free_while_ending(name: str, module: Any, monkeypatch: Any) -> int:
    """Run the dependent `name`'s `end_unmovable` inside a transaction (as `rootkey retire` runs it, in its
    operation's) in a thread, paused after its first audited operation (`module.perform`), and check that the
    audit chain head is free there: principal_locks' rule 5, the events appended last. What it returned."""
    from django.db import transaction

    from kmsconsole.audit.models import AuditChainHead
    from tests.races import Pause, finish, in_thread

    paused = Pause(module.perform, thread="retire")
    monkeypatch.setattr(module, "perform", paused)
    results: dict[str, Any] = {}

    def retire() -> int:
        with transaction.atomic():
            return dependent(name).end_unmovable(root_keys())

    retiring = in_thread(retire, results, "retire")
    assert paused.reached.wait(30)
    try:
        with transaction.atomic():
            assert list(AuditChainHead.objects.select_for_update(nowait=True))
    finally:
        paused.release.set()
        finish(retiring, results=results)
    return int(results["retire"])


def reseal_others() -> None:
    """`rootkey reseal`'s work, as its service does it (every registered dependent, in order, under this process's
    ring): everything the tests' requests read besides token digests moves to the current key, the audit chain's
    head and checkpoint included. Token digests are unmovable, so what a test asserts of them is theirs alone."""
    ring = root_keys()
    for one in dependents():
        one.reseal(ring, 500)


@contextmanager
def locked_elsewhere(lock: Callable[[], object]) -> Iterator[None]:
    """Hold what `lock` locks in another transaction (another thread, another connection) while the block runs,
    as a concurrent deletion, revocation or write would; released and committed after it."""
    from django.db import transaction

    from tests.races import finish, in_thread

    locked, release = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def hold() -> None:
        with transaction.atomic():
            lock()
            locked.set()
            assert release.wait(30)

    thread = in_thread(hold, results, "holder")
    assert locked.wait(30)
    try:
        yield
    finally:
        release.set()
        finish(thread, results=results)
