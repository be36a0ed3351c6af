"""Request bodies that do not arrive: how many application threads one address may keep waiting for its bodies.

granian hands a request to an application thread as soon as its head has arrived, and has no timeout for the body:
a `wsgi.input` read blocks that thread until the body arrives or the client goes away. A client that sends a head
and then dribbles, or never finishes, its body (a chunked body left open, a Content-Length never reached) pins one
thread per connection; forty such connections stopped every interface, /healthz included, until they closed. Such a
read cannot be interrupted from Python, so the defence is to not start it:

- every request's `wsgi.input` is wrapped, at the outermost WSGI entry (kmsconsole.wsgi, in front of the chunked
  bodies' reader and of the KMS endpoint's short path), so that each read, Django's included, counts as one thread
  inside a body read for the request's address while it lasts (the address the rate limits use: the client behind
  trusted proxies, an IPv6 /64 as one);
- a request that carries a body (a Content-Length above 0, or a chunked coding) is refused before anything reads
  it when its address already has KMS_STALLED_BODIES_PER_ADDRESS threads of this process inside a body read, or
  when the address is blocked for failed authentication (kmsconsole.core.ratelimit): such an address's bodies are
  never read. The refusal is ThrottlingException on the KMS endpoint, 429 with Retry-After elsewhere (JSON on the
  REST API, text on the console), audited at most once per address and KMS_THROTTLE_AUDIT_SECONDS like the other
  per-address refusals (ratelimit's ThrottleLedger).

A fast client's body is in granian's buffer by the time it is read, but its read still counts while the thread
waits for the GIL, which on a loaded worker takes a few 5 ms slices: sixteen boto3 threads from one address were
refused now and then when the count alone decided. So reads younger than STALL_SECONDS are waited for, at most
that long, before refusing (`_Reads.admits`); once the address has the limit's worth of older reads, it is refused
at once, so a flood of refusals holds no thread. Requests without a body, a GET of /healthz or a console page, are
never refused here: they cannot be left waiting for one.

What this does not do: the reads already begun stay blocked until their clients go away, so each address holds at
most KMS_STALLED_BODIES_PER_ADDRESS threads of each worker, and KMS_WEB_THREADS / that many addresses (IPv6 /64s)
can still hold all of them; requests that arrive at the same instant are each checked before any is inside its
read, so a burst can place a few more. Only a proxy that buffers the whole body, with a timeout, before passing the
request on answers that (README, "A reverse proxy in front").

On the hot path, per request: the client's address, two truth tests while nothing is waiting or blocked, and per
read a clock reading and a lock taken twice (about 21,600 instructions per request with a body under callgrind,
an in-process Encrypt is about 2.95 million, so 0.7 %).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.db import close_old_connections

from kmsconsole.awskms.wsgi import is_kms_request
from kmsconsole.core import errors, ratelimit
from kmsconsole.core.chunkedbody import is_chunked
from kmsconsole.core.client_address import client_address

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

STALLED_MESSAGE = "Too many requests from this address are waiting for their request bodies. Retry later."


# A read in flight this long is waiting for a body that is not coming fast: a body already in granian's buffer is
# read in microseconds, plus the wait for the GIL (5 ms slices, a few of them on a loaded worker).
STALL_SECONDS = 0.25


class _Reads:
    """This process's threads inside a body read: when each began, per address key (each web server process counts
    its own). `ended` wakes the requests waiting to see whether a count drops (`admits`)."""

    def __init__(self) -> None:
        # begin() and end() take the lock itself (a Condition's own `with` costs two Python calls per read).
        self.lock = threading.Lock()
        self.ended = threading.Condition(self.lock)
        self.started: dict[str, list[float]] = {}
        self.waiting = 0

    def begin(self, key: str) -> float:
        now = time.monotonic()
        with self.lock:
            started = self.started.get(key)
            if started is None:
                self.started[key] = [now]
            else:
                started.append(now)
        return now

    def end(self, key: str, began: float) -> None:
        with self.lock:
            started = self.started[key]
            started.remove(began)
            if not started:
                del self.started[key]
            if self.waiting:
                self.ended.notify_all()

    def admits(self, key: str, limit: int) -> bool:
        """Whether a request from `key` may have its body read: fewer than `limit` of the address's reads in
        flight. When there are more but some began less than STALL_SECONDS ago (a fast client's concurrent
        requests, or stalls that just began), this waits, at most that long, for one to end; with `limit` reads
        older than that, it refuses at once."""
        with self.ended:
            deadline = time.monotonic() + STALL_SECONDS
            while True:
                started = self.started.get(key, ())
                if len(started) < limit:
                    return True
                now = time.monotonic()
                stalled = sum(1 for began in started if now - began >= STALL_SECONDS)
                if stalled >= limit or now >= deadline:
                    return False
                self.waiting += 1
                try:
                    self.ended.wait(deadline - now)
                finally:
                    self.waiting -= 1


_state = ratelimit.PerProcess(_Reads)
_reads = _state.get


def reads_in_flight(key: str) -> int:
    """How many threads of this process are inside a body read for address key `key`."""
    return len(_reads().started.get(key, ()))


class CountedInput:
    """`wsgi.input`, each read counted for the request's address while it lasts."""

    __slots__ = ("_key", "_reads", "_stream")

    def __init__(self, stream: Any, key: str, reads: _Reads) -> None:
        self._stream, self._key, self._reads = stream, key, reads

    def read(self, *args: Any) -> bytes:
        # As _counted, inline: every request with a body reads, most only through here.
        reads, key = self._reads, self._key
        began = reads.begin(key)
        try:
            return self._stream.read(*args)  # type: ignore[no-any-return]
        finally:
            reads.end(key, began)

    def readline(self, *args: Any) -> bytes:
        return self._counted(self._stream.readline, args)  # type: ignore[no-any-return]

    def readlines(self, *args: Any) -> list[bytes]:
        return self._counted(self._stream.readlines, args)  # type: ignore[no-any-return]

    def _counted(self, method: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        reads, key = self._reads, self._key
        began = reads.begin(key)
        try:
            return method(*args)
        finally:
            reads.end(key, began)

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


def has_body(environ: dict[str, Any]) -> bool:
    """Whether the request says a body follows its head (one a read could wait for)."""
    return environ.get("CONTENT_LENGTH", "") not in ("", "0") or is_chunked(environ)


def check_address(address: str, key: str) -> None:
    """Raise ratelimit.Throttled if a request with a body from `address` must not be read (see the module)."""
    ratelimit.check_address(address)
    limit = settings.KMS_STALLED_BODIES_PER_ADDRESS
    if limit > 0 and not _reads().admits(key, limit):
        raise ratelimit.Throttled(
            STALLED_MESSAGE,
            subject=f"stalled:{key}",
            reason=f"Throttled: {limit} requests from {key} were already waiting for their bodies in this "
            "process; refused before reading its body.",
            retry_after=1,
        )


def with_body_reads_counted(application: WSGIApp) -> WSGIApp:
    """`application`, behind the count of body reads per address (see the module's docstring)."""

    def count_then_dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not settings.KMS_RATE_LIMITS:
            return application(environ, start_response)
        address = client_address(environ)
        key = ratelimit.address_key(address)
        reads = _reads()
        if (reads.started or ratelimit.any_blocked()) and has_body(environ):
            try:
                check_address(address, key)
            except ratelimit.Throttled as refusal:
                return _refused(environ, start_response, address, refusal)
        environ["wsgi.input"] = CountedInput(environ["wsgi.input"], key, reads)
        return application(environ, start_response)

    return count_then_dispatch


def _refused(
    environ: dict[str, Any], start_response: Callable[..., Any], address: str, refusal: ratelimit.Throttled
) -> Iterable[bytes]:
    """The refusal in the interface's own format, audited if the ledger admits it."""
    from kmsconsole.audit.authevents import AUTHENTICATE, record_throttled
    from kmsconsole.audit.recorder import AuditRecord
    from kmsconsole.core.context import Interface, RequestMeta

    kms = is_kms_request(environ)
    path = str(environ.get("PATH_INFO", ""))
    interface: Interface = "kms" if kms else "api" if path.startswith("/api/") else "console"
    meta = RequestMeta(
        interface=interface,
        source_ip=address,
        user_agent=str(environ.get("HTTP_USER_AGENT", ""))[:512],
        secure_transport=environ.get("wsgi.url_scheme") == "https",
    )
    # On the KMS endpoint the operation asked for, as its own refusals name it.
    operation = str(environ.get("HTTP_X_AMZ_TARGET", "")).partition(".")[2] if kms else AUTHENTICATE
    record = AuditRecord(
        operation=operation if operation.isalnum() and len(operation) <= 64 else "(invalid)",
        meta=meta,
        request_parameters={"Method": environ.get("REQUEST_METHOD", ""), "Path": path[:1024]},
    )
    error: errors.KmsError = refusal
    try:
        # Outside Django's request signals: a connection broken or past CONN_MAX_AGE is closed first, as they would.
        close_old_connections()
        record_throttled(record, refusal)
    except errors.KmsError as audit_error:
        error = audit_error
    if kms:
        status = error.status
        body: dict[str, Any] | None = {"__type": error.code, error.message_field: error.message}
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", error.code)]
        headers.append(("x-amzn-RequestId", meta.request_id))
    elif interface == "api":
        status = 500 if error.fault else 429
        body = {"error": {"code": error.code, "message": error.message, "detail": None}}
        headers = [("Content-Type", "application/json")]
    else:
        status = 500 if error.fault else 429
        body = None
        headers = [("Content-Type", "text/plain; charset=utf-8")]
    if not error.fault:
        headers.append(("Retry-After", str(refusal.retry_after)))
    content = f"{error.message}\n".encode() if body is None else json.dumps(body).encode()
    # No Connection: close (a hop-by-hop header, which PEP 3333 leaves to the server): granian deals with the
    # unread body itself.
    headers.append(("Content-Length", str(len(content))))
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [content]
