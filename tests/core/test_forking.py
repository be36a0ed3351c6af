"""State that a forked child must start afresh (kmsconsole.core.forking)."""

from __future__ import annotations

import gc
import io
import os
import threading
import weakref

from kmsconsole.core import forking
from kmsconsole.core.accesslog import AccessLog
from kmsconsole.core.ratelimit import PerProcess


class _Holder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.resets = 0
        forking.reset_in_forked_child(self.reset)

    def reset(self) -> None:
        self.lock = threading.Lock()
        self.resets += 1


def _in_child(check: object) -> int:
    """Fork; the child exits 0 if `check()` is true (it reports by exit status only, touching nothing else)."""
    pid = os.fork()
    if pid == 0:
        try:
            ok = bool(check())  # type: ignore[operator]
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_the_child_runs_the_reset_and_gets_a_lock_the_fork_caught_held() -> None:
    holder = _Holder()
    with holder.lock:  # held by this thread while forking: the child's copy would never be released
        code = _in_child(lambda: holder.resets == 1 and holder.lock.acquire(timeout=2))
    assert code == 0
    assert holder.resets == 0  # the parent is untouched


def test_registration_keeps_no_object_alive() -> None:
    holder = _Holder()
    gone = weakref.ref(holder)
    del holder
    gc.collect()
    assert gone() is None
    kept = _Holder()  # registering again drops hooks whose objects are gone
    assert all(hook() is not None for hook in forking._HOOKS) and kept.resets == 0


def test_an_access_log_caught_mid_write_starts_afresh_in_the_child() -> None:
    log = AccessLog(io.BytesIO())
    with log._lock:
        code = _in_child(lambda: log._lock.acquire(timeout=2) and log._writer is None and not log._pending)
    assert code == 0


def test_per_process_counts_start_empty_in_the_child_even_with_their_lock_held() -> None:
    state = PerProcess(dict)
    state.get()["127.0.0.1"] = 1
    with state._lock:  # held at the fork, as by another thread making the counts
        code = _in_child(lambda: state.get() == {} and state._lock.acquire(timeout=2))
    assert code == 0
    assert state.get() == {"127.0.0.1": 1}  # the parent keeps its own
