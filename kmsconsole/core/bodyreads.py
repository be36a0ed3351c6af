"""Request bodies that do not arrive: how many application threads one address may keep waiting for its bodies.

granian hands a request to an application thread as soon as its head has arrived, and has no timeout for the body:
a `wsgi.input` read blocks that thread until the body arrives or the client goes away. A client that sends a head
and then dribbles, or never finishes, its body (a chunked body left open, a Content-Length never reached) pins one
thread per connection; forty such connections stopped every interface, /healthz included, until they closed. Such a
read cannot be interrupted from Python, so the defence is to not start it:

- the `wsgi.input` of every request that carries a body (a Content-Length above 0, or a chunked coding) is
  wrapped, at the outermost WSGI entry (kmsconsole.wsgi, in front of the chunked bodies' reader and of the KMS
  endpoint's short path), so that each read, Django's included, counts as one thread inside a body read for the
  request's address while it lasts (the address the rate limits use: the client behind trusted proxies, an IPv6
  /64 as one); a request without a body, a GET of /healthz or a console page, cannot be left waiting for one and
  is passed on untouched;
- such a request is refused before anything reads its body when its address already has
  KMS_STALLED_BODIES_PER_ADDRESS threads of this process inside a body read, or when the address is blocked for
  failed authentication (kmsconsole.core.ratelimit; the console's sign-in form included): such an address's
  bodies are never read. The refusal is ThrottlingException on the KMS endpoint, 429 with Retry-After elsewhere
  (JSON on the REST API, the console's page on the console), audited at most once per address and
  KMS_THROTTLE_AUDIT_SECONDS like the other per-address refusals (ratelimit's ThrottleLedger).

A fast client's body is in granian's buffer by the time it is read, but its read still counts while the thread
waits for the GIL, which on a loaded worker takes a few 5 ms slices: sixteen boto3 threads from one address were
refused now and then when the count alone decided. So when the address's reads are younger than STALL_SECONDS,
one request of that address waits, at most that long, for one to end (`_Reads.admits`). A waiting request holds a
thread too, so only one per address waits (the others are refused at once), at most a quarter of the process's
threads (KMS_WEB_THREADS) wait in all, and an address whose reads were found stalled (the limit's worth older
than STALL_SECONDS, or still there after a whole wait) has no request wait for RECENTLY_STALLED_SECONDS: an
address cycling young stalls and refused requests holds at most the limit plus one thread, and a flood of
refusals holds none.

What this does not do: the reads already begun stay blocked until their clients go away, so each address holds at
most KMS_STALLED_BODIES_PER_ADDRESS threads of each worker (plus one waiting), and KMS_WEB_THREADS / that many
addresses (IPv6 /64s) can still hold all of them; requests that arrive at the same instant are each checked before
any is inside its read, so a burst can place a few more. Clients behind one unlisted proxy or a NAT share one
address: a few stalled connections, or two slow legitimate uploads, get every other client's bodies refused while
they last (list the proxy in KMS_TRUSTED_PROXY_ADDRESSES). Only a proxy that buffers the whole body, with a
timeout, before passing the request on answers all of this (README, "A reverse proxy in front").

On the hot path: nothing for a request without a body; for one with a body, the client's address, two truth
tests while nothing is being read or blocked, and per read a clock reading and a lock taken twice (about 21,600
instructions per request with a body under callgrind before the waiting limits were added, unmeasured since;
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
from django.template.loader import render_to_string

from kmsconsole.awskms.wsgi import is_kms_request
from kmsconsole.core import errors, ratelimit
from kmsconsole.core.chunkedbody import is_chunked
from kmsconsole.core.client_address import client_address, is_secure

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

STALLED_MESSAGE = "Too many requests from this address are waiting for their request bodies. Retry later."


# A read in flight this long is waiting for a body that is not coming fast: a body already in granian's buffer is
# read in microseconds, plus the wait for the GIL (5 ms slices, a few of them on a loaded worker).
STALL_SECONDS = 0.25
# An address whose reads were found stalled this recently has no request wait for them again: each wait holds a
# thread, and an address that keeps opening young stalls would otherwise keep one waiting all the time.
RECENTLY_STALLED_SECONDS = 5.0


class _Reads:
    """This process's threads inside a body read: when each began, per address key (each web server process counts
    its own). `ended` wakes the requests waiting to see whether a count drops (`admits`)."""

    def __init__(self) -> None:
        # begin() and end() take the lock itself (a Condition's own `with` costs two Python calls per read).
        self.lock = threading.Lock()
        self.ended = threading.Condition(self.lock)
        self.started: dict[str, list[float]] = {}
        # The address keys with a request waiting in admits() (one each at most), and how many wait in all: a
        # waiting request holds a thread too, so at most a quarter of the process's threads may.
        self.waiters: set[str] = set()
        self.max_waiters = max(1, settings.KMS_WEB_THREADS // 4)
        self.stalled_until: dict[str, float] = {}  # address key -> until when its reads count as stalled

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
            if self.waiters:
                self.ended.notify_all()

    def admits(self, key: str, limit: int) -> bool:
        """Whether a request from `key` may have its body read: fewer than `limit` of the address's reads in
        flight. When there are more but some began less than STALL_SECONDS ago (a fast client's concurrent
        requests, or stalls that just began), one request of the address, if the process has a waiting place
        free, waits at most that long for one to end; any other is refused at once, as is every request of an
        address with `limit` reads older than that, or found so in the last RECENTLY_STALLED_SECONDS."""
        with self.ended:
            if len(self.started.get(key, ())) < limit:
                return True
            now = time.monotonic()
            if self._stalled(key, limit, now) or key in self.waiters or len(self.waiters) >= self.max_waiters:
                return False
            deadline = now + STALL_SECONDS
            self.waiters.add(key)
            try:
                while now < deadline:
                    self.ended.wait(deadline - now)
                    if len(self.started.get(key, ())) < limit:
                        return True
                    now = time.monotonic()
                    if self._stalled(key, limit, now):
                        return False
                # Still `limit` reads after the whole wait: as good as stalled.
                self._note_stalled(key, now)
                return False
            finally:
                self.waiters.discard(key)

    def _stalled(self, key: str, limit: int, now: float) -> bool:
        if self.stalled_until.get(key, now) > now:
            return True
        if sum(1 for began in self.started.get(key, ()) if now - began >= STALL_SECONDS) >= limit:
            self._note_stalled(key, now)
            return True
        return False

    def _note_stalled(self, key: str, now: float) -> None:
        ratelimit.hold_until(self.stalled_until, key, now + RECENTLY_STALLED_SECONDS, now)


_state = ratelimit.PerProcess(_Reads)
_reads = _state.get
# Forget every count and setting read (tests: KMS_WEB_THREADS is read when the counts are made).
reset = _state.reset


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
        # A request without a body cannot be left waiting for one: nothing to count or refuse.
        if not settings.KMS_RATE_LIMITS or not has_body(environ):
            return application(environ, start_response)
        address = client_address(environ)
        key = ratelimit.address_key(address)
        reads = _reads()
        if reads.started or ratelimit.any_blocked():
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
        secure_transport=is_secure(environ),
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
        headers = [("Content-Type", "text/html; charset=utf-8")]
    if not error.fault:
        headers.append(("Retry-After", str(refusal.retry_after)))
    if body is not None:
        content = json.dumps(body).encode()
    elif error.fault:
        content = render_to_string("500.html").encode()
    else:
        # The console's page in words; the sign-in form is refused here too while the address is blocked.
        context = {"message": error.message, "retry_after": refusal.retry_after}
        content = render_to_string("429.html", context).encode()
    # No Connection: close (a hop-by-hop header, which PEP 3333 leaves to the server): granian deals with the
    # unread body itself.
    headers.append(("Content-Length", str(len(content))))
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [content]
