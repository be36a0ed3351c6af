"""The access log: one line per request on standard output, written by the application rather than the web server.

granian's own access log cost a web worker about a tenth of its CPU per Encrypt request (measured with `manage.py
bench kms`, issue 9): it builds a dict of a dozen fields and goes through `logging` (a LogRecord, a handler lock,
a write and a flush) on the request's thread. Here a request formats its line and appends it to a buffer; a
background thread writes what has gathered every FLUSH_SECONDS in one write. The line:

    127.0.0.1 "POST / HTTP/1.1" 200 3ms

address, method, path (never the query string, which may carry what a client should not have put there),
protocol, status, milliseconds until the application returned its response. Never headers, bodies or cookies.
Characters that could forge a line or hide in a terminal (quotes, backslashes, control characters) are escaped.

The log is a convenience, not the record: every KMS request is in the audit trail. So when standard output stops
taking lines (a full pipe nobody reads), requests are not held up: past MAX_PENDING lines, new ones are counted and
dropped, and the count is written when the output moves again.
"""

from __future__ import annotations

import atexit
import multiprocessing.util
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

FLUSH_SECONDS = 0.1
MAX_PENDING = 10_000

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class AccessLog:
    """Lines gathered by request threads, written by one background thread (started at the first line, again in
    a forked child)."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream
        self._pending: list[str] = []
        self._dropped = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._owner_pid = 0
        # A forked child starts with no writer thread and must not inherit a lock held by another thread.
        os.register_at_fork(after_in_child=self._forget_parent)

    def _forget_parent(self) -> None:
        self._lock = threading.Lock()
        self._pending, self._dropped = [], 0

    def add(self, line: str) -> None:
        with self._lock:
            if len(self._pending) >= MAX_PENDING:
                self._dropped += 1
                return
            self._pending.append(line)
        if self._owner_pid != os.getpid():
            self._start()

    def flush(self) -> None:
        """Write every pending line now (the background thread calls it; so does the process at exit)."""
        with self._lock:
            lines, self._pending = self._pending, []
            dropped, self._dropped = self._dropped, 0
        if not lines and not dropped:
            return
        notice = (
            [f"access log: {dropped} lines dropped (standard output was not taking them)"] if dropped else []
        )
        stream = self._stream or sys.stdout.buffer
        try:
            stream.write(("\n".join(notice + lines) + "\n").encode("utf-8", "backslashreplace"))
            stream.flush()
        except (OSError, ValueError):
            # Standard output closed or broken: the lines are lost (and counted, for when it works again), the
            # requests are not.
            with self._lock:
                self._dropped += dropped + len(lines)

    def _start(self) -> None:
        with self._lock:
            if self._owner_pid == os.getpid():
                return
            self._owner_pid = os.getpid()
        threading.Thread(target=self._run, name="access-log", daemon=True).start()
        # What gathered since the last write goes out when the process ends: at interpreter exit, or, in a worker
        # process that multiprocessing started (granian's), in its exit function, which skips atexit.
        atexit.register(self.flush)
        multiprocessing.util.Finalize(self, self.flush, exitpriority=100)

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()


_ESCAPED = {**{code: f"\\x{code:02x}" for code in range(0x20)}, 0x7F: "\\x7f", 0x22: '\\"', 0x5C: "\\\\"}


def _safe(text: str) -> str:
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in text.translate(_ESCAPED))


def with_access_log(application: WSGIApp, log: AccessLog) -> WSGIApp:
    """`application`, each request of which leaves one line in `log`."""

    def logged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        status = "500"

        def recording_start_response(response_status: str, *args: Any) -> Any:
            nonlocal status
            status = response_status[:3]
            return start_response(response_status, *args)

        try:
            return application(environ, recording_start_response)
        finally:
            log.add(
                f"{environ.get('REMOTE_ADDR', '-')} "
                f'"{_safe(environ.get("REQUEST_METHOD", ""))} {_safe(environ.get("PATH_INFO", ""))} '
                f'{_safe(environ.get("SERVER_PROTOCOL", ""))}" '
                f"{status} {(time.perf_counter() - started) * 1000:.0f}ms"
            )

    return logged
