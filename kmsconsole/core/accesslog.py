"""The access log: one line per request on standard output, written by the application rather than the web server.

granian's own access log cost a web worker about a tenth of its CPU per Encrypt request (measured with `manage.py
bench kms`, issue 9): it builds a dict of a dozen fields and goes through `logging` (a LogRecord, a handler lock,
a write and a flush) on the request's thread. Here a request formats its line and appends it to a buffer; one
writer thread per process writes what has gathered every FLUSH_SECONDS. The line:

    127.0.0.1 "POST / HTTP/1.1" 200 3ms

address, method, path (never the query string, which may carry what a client should not have put there),
protocol, status, milliseconds until the application returned its response. Never headers, bodies or cookies.
Characters that could forge a line or hide in a terminal (quotes, backslashes, control characters) are escaped,
and each field is cut to a length, so a line is at most a few kilobytes.

The worker processes of one server share standard output. A pipe keeps a write whole only up to PIPE_BUF bytes,
so lines go out in writes of whole lines of at most that size: lines of two processes never splice.

The log is a convenience, not the record: every KMS request is in the audit trail. So logging never fails or
holds up a request: past MAX_PENDING_CHARS waiting to be written (standard output not taking them), new lines are
counted and dropped, and the count is written when the output moves again; a process that ends waits at most
EXIT_WAIT_SECONDS for its last lines.
"""

from __future__ import annotations

import atexit
import multiprocessing.util
import os
import select
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

from kmsconsole.core.client_address import client_address
from kmsconsole.core.forking import reset_in_forked_child

FLUSH_SECONDS = 0.1
EXIT_WAIT_SECONDS = 2.0
MAX_PENDING_CHARS = 4_000_000
# POSIX guarantees at least 512; Linux's is 4096.
PIPE_BUF = getattr(select, "PIPE_BUF", 512)
# Field lengths (after escaping): a path longer than this is cut and marked.
MAX_PATH_CHARS = 1024
MAX_FIELD_CHARS = 64

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class AccessLog:
    """Lines gathered by request threads and written by one writer thread per process (started with the first
    line, again in a forked child). `flush()` writes at once (tests); `close()` writes the last lines at exit."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream
        self._owner_pid = 0
        self._reset()
        # A forked child starts without the writer thread and must not inherit a lock held by another thread.
        reset_in_forked_child(self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()  # guards the pending lines
        self._write_lock = threading.Lock()  # one writer at a time: lines leave in order, whole
        self._pending: list[str] = []
        self._pending_chars = 0
        self._dropped = 0
        self._closing = threading.Event()
        self._writer: threading.Thread | None = None

    def add(self, line: str) -> None:
        with self._lock:
            if self._pending_chars + len(line) > MAX_PENDING_CHARS:
                self._dropped += 1
                return
            self._pending.append(line)
            self._pending_chars += len(line)
        if self._owner_pid != os.getpid():
            self._start()

    def flush(self) -> None:
        """Write every pending line now."""
        with self._write_lock:
            self._write_pending()

    def close(self) -> None:
        """Write the last lines as the process ends, waiting at most EXIT_WAIT_SECONDS (an output nobody reads
        must not keep a worker from stopping)."""
        writer = self._writer
        if writer is not None and writer.is_alive():
            self._closing.set()
            writer.join(EXIT_WAIT_SECONDS)
        elif self._write_lock.acquire(timeout=EXIT_WAIT_SECONDS):
            try:
                self._write_pending()
            finally:
                self._write_lock.release()

    def _write_pending(self) -> None:
        with self._lock:
            lines, self._pending, self._pending_chars = self._pending, [], 0
            dropped, self._dropped = self._dropped, 0
        if dropped:
            lines.insert(0, f"access log: {dropped} lines dropped (standard output was not taking them)")
        if not lines:
            return
        try:
            stream = self._stream or sys.stdout.buffer
            for chunk in _whole_line_chunks(lines):
                stream.write(chunk)
                stream.flush()
        except Exception:  # standard output closed, broken or replaced: lose lines, not requests
            with self._lock:
                self._dropped += len(lines) - (1 if dropped else 0) + dropped

    def _start(self) -> None:
        with self._lock:
            if self._owner_pid == os.getpid():
                return
            writer = threading.Thread(target=self._run, name="access-log", daemon=True)
            writer.start()
            self._writer, self._owner_pid = writer, os.getpid()
        # The last lines go out when the process ends: at interpreter exit, or, in a worker process that
        # multiprocessing started (granian's), in its exit function, which skips atexit.
        atexit.register(self.close)
        multiprocessing.util.Finalize(self, self.close, exitpriority=100)

    def _run(self) -> None:
        closing = self._closing
        while not closing.wait(FLUSH_SECONDS):
            self.flush()
        self.flush()


def _whole_line_chunks(lines: list[str]) -> Iterable[bytes]:
    """The lines as writes of whole lines, each at most PIPE_BUF bytes (a line is far shorter than that)."""
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        encoded = line.encode("utf-8", "backslashreplace")[: PIPE_BUF - 1] + b"\n"
        if size + len(encoded) > PIPE_BUF:
            yield b"".join(chunk)
            chunk, size = [], 0
        chunk.append(encoded)
        size += len(encoded)
    if chunk:
        yield b"".join(chunk)


_ESCAPED = {**{code: f"\\x{code:02x}" for code in range(0x20)}, 0x7F: "\\x7f", 0x22: '\\"', 0x5C: "\\\\"}


def _safe(text: Any, limit: int = MAX_FIELD_CHARS) -> str:
    """`text` fit for one field of a line: escaped, and cut to `limit` characters (marked with `...`)."""
    text = str(text)
    if not (text.isprintable() and '"' not in text and "\\" not in text):
        text = "".join(
            char if char.isprintable() else f"\\u{ord(char):04x}" for char in text.translate(_ESCAPED)
        )
    return text if len(text) <= limit else text[:limit] + "..."


def with_access_log(application: WSGIApp, log: AccessLog) -> WSGIApp:
    """`application`, each request of which leaves one line in `log`."""

    def logged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        # Read before the application runs: it may change the environ it is given.
        request = (
            client_address(environ) or "-",
            environ.get("REQUEST_METHOD", ""),
            environ.get("PATH_INFO", ""),
            environ.get("SERVER_PROTOCOL", ""),
        )
        status = "-"

        def recording_start_response(response_status: str, *args: Any) -> Any:
            nonlocal status
            status = response_status[:3]
            return start_response(response_status, *args)

        try:
            return application(environ, recording_start_response)
        except BaseException:
            status = "500"  # what the server answers for an application that raised
            raise
        finally:
            try:
                address, method, path, protocol = request
                log.add(
                    f'{_safe(address)} "{_safe(method)} {_safe(path, MAX_PATH_CHARS)} {_safe(protocol)}" '
                    f"{_safe(status)} {(time.perf_counter() - started) * 1000:.0f}ms"
                )
            except Exception:  # noqa: S110 - a line lost, never a request
                pass

    return logged
