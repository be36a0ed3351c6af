"""The processes of one host take turns at the audit chain head, and pass the head along.

Each process's group-commit leader appends its batch with one conditional statement (`writer._PostgresChain`).
When two web workers write at the same moment, they race for the head: the loser waits on the head's row lock
until the winner commits, is told the new head, recomputes its links and sends the batch again. At two workers
that was 0.9 lost races per batch: nearly a wasted round trip per batch, and a convoy in which two single-thread
workers served no more than one (638 against 635 Encrypt requests/s) while the machine stood a quarter idle.

Here the leaders of one host's processes take turns instead: an exclusive `flock` on a file in KMS_DATA_DIR (one
file per database), held for the batch's statements only. The file also carries where the last holder left the
head (seq and hash), so the next holder chains after it at its first attempt, with no read. That is only a hint:
only a well-formed one is used (a seq PostgreSQL can hold, a 64-digit hex hash), and the statement moves the head
only if the database agrees that it is where the hint says, so a stale, missing or forged file costs a retry,
never a failed request or a broken chain (the file holds no secret: seqs and link hashes are in the database for
anyone who can read the trail). The turn is held for the batch's statements (its retries, and the locked fallback
when there is one). Every process of the host that writes standalone events takes turns, Celery workers included;
writers on other hosts and the transactions of changes don't, and that same check orders them, as before.

A turn that cannot be had within TURN_WAIT_SECONDS (a holder stuck in a hung statement) is skipped: the batch is
written without it, racing as before. No turns are taken without a usable file: one that cannot be created or
opened (read-only data directory), is not a regular file owned by this user with mode 0600 (a symlink planted at
its name, a file others could open and lock), or cannot be locked (a file system without flock).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from kmsconsole.core.forking import reset_in_forked_child

logger = logging.getLogger(__name__)

# How long a leader waits for its turn before writing without one.
TURN_WAIT_SECONDS = 0.25
# Sleeps between attempts while another process holds the turn: a batch statement takes a few hundred
# microseconds, so the first retries come quickly and later ones back off.
_FIRST_SLEEP = 0.00005
_MAX_SLEEP = 0.0005
# "<seq> <hash>", padded: written in place, read whole.
_HINT_BYTES = 96
_HINT = re.compile(r"\s*(\d{1,18}) ([0-9a-f]{64})\s*")  # 18 digits: always within PostgreSQL's bigint
_WOULD_BLOCK = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def turn_file(data_dir: Path, database: dict[str, object]) -> Path:
    """The turn file for one database (tests run several databases beside one data directory)."""
    name = f"{database.get('HOST') or ''}:{database.get('PORT') or ''}/{database.get('NAME') or ''}"
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return data_dir / f"audit-turn-{digest}.lock"


class HostTurns:
    """Turns at the chain head for the processes sharing `path`. One per process and database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._threads = threading.Lock()  # flock is per open file: the process's own threads queue here
        self._fd: int | None = None
        self._unusable = False
        # Counters for benchmarks and tests.
        self.turns = 0
        self.skipped = 0
        reset_in_forked_child(self._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        """A forked child starts afresh: a lock the fork caught held would never be released in it, and the
        parent's open file (with the parent's flock on it) must not stay open here, or a parent killed while
        holding the turn would leave it held by this child."""
        self._threads = threading.Lock()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._unusable = None, False

    @contextlib.contextmanager
    def turn(self) -> Iterator[Turn]:
        """Hold the turn (if it can be had) while the body writes; the body reads and leaves the head hint."""
        with self._threads:
            fd = self._open()
            held = fd is not None and self._acquire(fd)
            turn = Turn(fd if held else None)
            try:
                yield turn
            finally:
                if held and fd is not None:
                    with contextlib.suppress(OSError):  # closing the file would release it anyway
                        fcntl.flock(fd, fcntl.LOCK_UN)

    def _open(self) -> int | None:
        if self._fd is None and not self._unusable:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            except OSError as exc:
                self._give_up(f"it cannot be opened ({exc.strerror})")
                return None
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
                os.close(fd)
                self._give_up("it is not a regular file of this user with mode 0600")
                return None
            self._fd = fd
        return self._fd

    def _give_up(self, why: str) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._unusable = None, True
        logger.warning("Audit writers will not take turns at %s: %s", self.path, why)

    def _acquire(self, fd: int) -> bool:
        deadline = time.monotonic() + TURN_WAIT_SECONDS
        pause = _FIRST_SLEEP
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.turns += 1
                return True
            except OSError as exc:
                if exc.errno not in _WOULD_BLOCK:  # a file system without flock (NFS, FUSE): no turns at all
                    self._give_up(f"it cannot be locked ({exc.strerror})")
                    return False
            if time.monotonic() >= deadline:
                self.skipped += 1
                logger.warning(
                    "An audit batch is written without its turn: another process held it %.2f s",
                    TURN_WAIT_SECONDS,
                )
                return False
            time.sleep(pause)
            pause = min(pause * 2, _MAX_SLEEP)


class Turn:
    """What the turn's holder reads and leaves: the head as the previous holder left it."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def head(self) -> tuple[int, str] | None:
        """Where the last holder left the head, or None (no turn, no hint, or an unreadable one)."""
        if self._fd is None:
            return None
        try:
            match = _HINT.fullmatch(os.pread(self._fd, _HINT_BYTES, 0).decode("ascii"))
        except (OSError, UnicodeDecodeError):
            return None
        return (int(match[1]), match[2]) if match else None

    def leave(self, head: tuple[int, str] | None) -> None:
        """Tell the next holder where the head is now (None: unknown, it reads the head itself)."""
        if self._fd is None:
            return
        text = "" if head is None else f"{head[0]} {head[1]}"
        try:
            os.pwrite(self._fd, text.encode("ascii").ljust(_HINT_BYTES), 0)
        except OSError:
            logger.warning("The audit head hint could not be written; the next writer reads the head")
