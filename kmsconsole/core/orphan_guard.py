"""`python kmsconsole/core/orphan_guard.py <parent pid> -- <command...>`: run `command` so that it stops when
`manage.py serve` dies, however it dies (a SIGKILL included), and is never left behind by it.

`serve` starts the web server, the Celery worker and Celery beat through it. In the new process, before the command
runs (the same process: the command replaces it by exec):

- PR_SET_PDEATHSIG (Linux): the kernel sends SIGTERM when the process that started it exits. A failure is logged,
  not hidden: the command then outlives a killed `serve`.
- If the parent is already gone (`serve` died between starting it and the line above, so no signal will ever come),
  it exits at once instead of running the command.
- SIGTTOU and SIGTTIN ignored: the web server runs in a background process group of `serve`'s terminal, where, with
  `stty tostop`, its first log line would otherwise stop it (and reading the terminal would too).

The kernel sends the signal when the *thread* that started the process exits: `serve` starts them all from its
main thread. This is a program of its own, run by path (not `-m`, which would import the `kmsconsole` package and
its Celery app first), rather than a `preexec_fn`: that runs in the forked child before exec, where loading the C
library (ctypes) is unsafe if `serve` has threads, and could not report a failure. Elsewhere than Linux it only
runs the command: `serve` still stops it on every exit it sees. Only the standard library, imported from nowhere
else.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1
logger = logging.getLogger("kmsconsole.orphan_guard")


def set_parent_death_signal(signum: int) -> str | None:
    """Ask the kernel to send `signum` when the parent exits; None when done, else why not."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError as exc:
        return f"the C library could not be loaded ({exc})"
    # prctl returns -1 and sets errno on failure: it does not raise.
    if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        return os.strerror(ctypes.get_errno())
    return None


def guard(parent: int, command: Sequence[str]) -> int:
    """Everything but the exec: 0 to run `command`, else the status to exit with."""
    failure = set_parent_death_signal(signal.SIGTERM)
    if failure is not None:
        logger.warning(
            "prctl(PR_SET_PDEATHSIG) failed (%s): %s will not stop by itself if `serve` is killed.",
            failure,
            command[0],
        )
    # After the prctl: a parent that dies from here on signals us; one already gone never will.
    if os.getppid() != parent:
        logger.error("`serve` (pid %s) exited before %s started; not starting it.", parent, command[0])
        return 1
    for signum in (signal.SIGTTOU, signal.SIGTTIN):
        signal.signal(signum, signal.SIG_IGN)  # kept across exec
    return 0


def main(argv: Sequence[str]) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if len(argv) < 3 or not argv[0].isdigit() or argv[1] != "--":
        logger.error("usage: orphan_guard.py <parent pid> -- <command...>")
        return 2
    parent, command = int(argv[0]), list(argv[2:])
    status = guard(parent, command)
    if status:
        return status
    os.execv(command[0], command)  # noqa: S606 - serve's own commands, no shell
    raise AssertionError("execv returns only by raising")  # pragma: no cover


def wrapped(command: list[str]) -> list[str]:
    """`command` run through this guard, for a child of the calling process."""
    # -P: kmsconsole/core is not put on the path, where a module could shadow one of the standard library's.
    return [sys.executable, "-P", os.path.abspath(__file__), str(os.getpid()), "--", *command]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
