"""Per-process state that a forked child must start afresh.

A fork copies every lock as it was, held by threads that do not exist in the child, and none of the parent's
threads: an object holding locks, threads or open files registers a method here that the child runs right after
the fork. Registration keeps no object alive (a weak reference to the bound method).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable

_HOOKS: list[weakref.WeakMethod[Callable[[], None]]] = []


def reset_in_forked_child(method: Callable[[], None]) -> None:
    """Run `method` (a bound method) in every child forked from now on, while its object lives."""
    _HOOKS[:] = [hook for hook in _HOOKS if hook() is not None]
    _HOOKS.append(weakref.WeakMethod(method))


def _after_fork_in_child() -> None:
    for hook in list(_HOOKS):
        method = hook()
        if method is not None:
            method()


os.register_at_fork(after_in_child=_after_fork_in_child)
