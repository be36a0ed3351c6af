"""The processes of one host take turns at the audit chain head, and pass the head along.

Each process's group-commit leader appends its batch with one conditional statement (`writer._PostgresChain`).
When two web workers write at the same moment, they race for the head: the loser waits on the head's row lock
until the winner commits, is told the new head, recomputes its links and sends the batch again. At two workers
that was 0.9 lost races per batch: nearly a wasted round trip per batch, and a convoy in which two single-thread
workers served no more than one (638 against 635 Encrypt requests/s) while the machine stood a quarter idle.

Here the leaders of one host's processes take turns instead: an exclusive `flock` on a file in KMS_DATA_DIR (one
file per database), held for the batch's statements only. The file also carries where the last holder left the
head (seq and hash), so the next holder chains after it at its first attempt, with no read. That is only a hint:
the statement moves the head only if the database agrees that it is where the hint says, so a stale, missing or
forged file costs a retry, never a broken chain (the file holds no secret: seqs and link hashes are in the
database for anyone who can read the trail). Writers on other hosts, Celery workers and the transactions of
changes don't take turns; that same check orders them, as before.

A turn that cannot be had within TURN_WAIT_SECONDS (a holder stuck in a hung statement) is skipped: the batch is
written without it, racing as before. Without a usable file (read-only data directory) there are no turns.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

# How long a leader waits for its turn before writing without one.
TURN_WAIT_SECONDS = 1.0
# Sleeps between attempts while another process holds the turn: a batch statement takes a few hundred
# microseconds, so the first retries come quickly and later ones back off.
_FIRST_SLEEP = 0.00005
_MAX_SLEEP = 0.001
# "<seq> <hash>", padded: written in place, read whole.
_HINT_BYTES = 96


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
        self._pid = 0
        self._unusable = False
        # Counters for benchmarks and tests.
        self.turns = 0
        self.skipped = 0

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
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def _open(self) -> int | None:
        if self._pid != os.getpid():  # a forked child must not share the parent's open file (nor its lock)
            self._fd, self._pid, self._unusable = None, os.getpid(), False
        if self._fd is None and not self._unusable:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                self._unusable = True
                logger.warning("Audit writers will not take turns: %s cannot be opened (%s)", self.path, exc)
        return self._fd

    def _acquire(self, fd: int) -> bool:
        deadline = time.monotonic() + TURN_WAIT_SECONDS
        pause = _FIRST_SLEEP
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.turns += 1
                return True
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                self.skipped += 1
                logger.warning(
                    "An audit batch is written without its turn: another process held it %.1f s",
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
            seq, chain_hash = os.pread(self._fd, _HINT_BYTES, 0).decode("ascii").split()
            return int(seq), chain_hash
        except (OSError, ValueError, UnicodeDecodeError):
            return None

    def leave(self, head: tuple[int, str] | None) -> None:
        """Tell the next holder where the head is now (None: unknown, it reads the head itself)."""
        if self._fd is None:
            return
        text = "" if head is None else f"{head[0]} {head[1]}"
        try:
            os.pwrite(self._fd, text.encode("ascii").ljust(_HINT_BYTES), 0)
        except OSError:
            logger.warning("The audit head hint could not be written; the next writer reads the head")
