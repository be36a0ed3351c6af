"""Request bodies that never arrive (threat model §9, "Slow clients"; kmsconsole.core.bodyreads).

A client that sends a head and then holds its body open pins the application thread that reads it (granian has no
body timeout). One address may keep at most KMS_STALLED_BODIES_PER_ADDRESS threads of a worker waiting for bodies:
its further requests with a body are refused before anything reads them, while every other address is still
answered; an address blocked for failed authentication has no body of its own read either.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from django.conf import settings
from django.core.checks import Error, Warning

from kmsconsole.audit.models import AuditEvent
from kmsconsole.core import bodyreads, ratelimit
from kmsconsole.core.checks import stalled_bodies_per_address_valid
from tests.conftest import Persona
from tests.core.test_chunked_bodies import kms_headers
from tests.secrets_watch import WATCH, watch_boto3_client
from tests.webserver import serving

# Threads of the test and the web server's process write audit events: committed, not in a test transaction.
pytestmark = pytest.mark.django_db(transaction=True)

STALLER, NEIGHBOUR = "127.0.0.1", "127.0.0.2"


# In process: what is counted, and what is refused.


class HeldStream:
    """A `wsgi.input` whose read waits until `release` is set, as granian's waits for a body that is not sent."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def read(self, size: int = -1, /) -> bytes:
        self.entered.set()
        self.release.wait(10)
        return b""

    def readline(self, size: int = -1, /) -> bytes:
        return self.read(size)


class UnreadableStream:
    def read(self, size: int = -1, /) -> bytes:
        raise AssertionError("a refused request's body must not be read")

    readline = read


def reading_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"read"]


GUARDED = bodyreads.with_body_reads_counted(reading_app)


def environ(
    stream: Any, *, address: str = STALLER, path: str = "/api/v1/keys", method: str = "POST", **extra: str
) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "REMOTE_ADDR": address,
        "wsgi.input": stream,
        "wsgi.url_scheme": "http",
        "CONTENT_LENGTH": "10" if method == "POST" else "",
        **extra,
    }


def call(env: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

    body = b"".join(GUARDED(env, start_response))
    return answer["status"], answer["headers"], body


@contextlib.contextmanager
def held_reads(count: int, address: str = STALLER, **extra: str) -> Iterator[list[HeldStream]]:
    """`count` requests from `address` inside a body read that does not end until the block exits."""
    streams = [HeldStream() for _ in range(count)]
    threads = [
        threading.Thread(target=call, args=(environ(stream, address=address, **extra),)) for stream in streams
    ]
    for thread, stream in zip(threads, streams, strict=True):
        thread.start()
        assert stream.entered.wait(10)
    try:
        yield streams
    finally:
        for stream in streams:
            stream.release.set()
        for thread in threads:
            thread.join(10)


@pytest.fixture
def limits(settings: Any) -> Iterator[Any]:
    settings.KMS_STALLED_BODIES_PER_ADDRESS = 2
    settings.KMS_THROTTLE_AUDIT_SECONDS = 60
    ratelimit.reset()
    bodyreads.reset()
    yield settings
    bodyreads.reset()


def test_an_address_with_bodies_held_open_is_refused_in_each_interfaces_format(limits: Any) -> None:
    with held_reads(1):
        assert bodyreads.reads_in_flight(STALLER) == 1
        assert call(environ(io.BytesIO(b"0123456789")))[0] == 200  # one held: still below the limit
    assert bodyreads.reads_in_flight(STALLER) == 0
    with held_reads(2):
        status, headers, body = call(environ(UnreadableStream()))
        assert (status, headers["Retry-After"]) == (429, "1")
        assert json.loads(body)["error"]["code"] == "ThrottlingException"
        status, headers, body = call(
            environ(UnreadableStream(), path="/", HTTP_X_AMZ_TARGET="TrentService.ListKeys")
        )
        document = json.loads(body)
        assert (status, document["__type"], headers["x-amzn-ErrorType"]) == (
            400,
            "ThrottlingException",
            "ThrottlingException",
        )
        assert "waiting for their request bodies" in document["message"]
        status, headers, body = call(environ(UnreadableStream(), path="/keys/new/"))
        assert (status, headers["Content-Type"]) == (429, "text/html; charset=utf-8")
        assert b"Too many requests from your address" in body and b"waiting for their request bodies" in body
        # A request without a body cannot be left waiting for one; another address is not concerned.
        assert call(environ(io.BytesIO(b""), method="GET", path="/healthz"))[0] == 200
        assert call(environ(io.BytesIO(b"0123456789"), address=NEIGHBOUR))[0] == 200
    # Audited once for the interval, the later refusals counted on the next event.
    [event] = AuditEvent.objects.filter(source_ip=STALLER, error_code="ThrottlingException")
    assert event.decision == "denied" and event.interface == "api"
    assert "were already waiting for their bodies" in event.reason


def block(limits: Any, address: str) -> None:
    """`address` blocked for failed authentication (one failure is the limit)."""
    limits.KMS_AUTH_FAILURE_LIMIT = 1
    limits.KMS_WEB_WORKERS = 1
    ratelimit.reset()
    ratelimit.note_failed_authentication(address)


def test_a_blocked_address_has_no_body_read_on_any_interface(limits: Any) -> None:
    block(limits, STALLER)
    kms = {"HTTP_X_AMZ_TARGET": "TrentService.Encrypt"}
    for path, extra, expected in (("/api/v1/keys", {}, 429), ("/keys/new/", {}, 429), ("/", kms, 400)):
        chunked = environ(
            UnreadableStream(), path=path, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked", **extra
        )
        status, headers, _ = call(chunked)
        assert (status, headers["Retry-After"]) == (expected, str(limits.KMS_AUTH_FAILURE_WINDOW_SECONDS))
    [event] = AuditEvent.objects.filter(source_ip=STALLER, error_code="ThrottlingException")
    assert "failed authentications from 127.0.0.1" in event.reason


def test_a_blocked_address_cannot_sign_in_to_the_console_and_is_told_in_a_page(limits: Any) -> None:
    block(limits, STALLER)
    form = {"CONTENT_TYPE": "application/x-www-form-urlencoded"}
    status, headers, body = call(environ(UnreadableStream(), path="/signin/", **form))
    assert (status, headers["Content-Type"]) == (429, "text/html; charset=utf-8")
    assert headers["Retry-After"] == str(limits.KMS_AUTH_FAILURE_WINDOW_SECONDS)
    assert b"<title>Too many requests" in body and b"manage.py iam" in body
    # Another address signs in as before (its form is read).
    assert call(environ(io.BytesIO(b"0123456789"), address=NEIGHBOUR, path="/signin/", **form))[0] == 200


def test_only_one_request_of_an_address_waits_and_the_others_are_refused_at_once(limits: Any) -> None:
    answers: list[int] = []
    with held_reads(2) as streams:
        waiter = threading.Thread(target=lambda: answers.append(call(environ(io.BytesIO(b"0123456789")))[0]))
        waiter.start()
        deadline = time.monotonic() + 5
        while STALLER not in bodyreads._reads().waiters:
            assert time.monotonic() < deadline and waiter.is_alive()
            time.sleep(0.001)
        # While it waits, its address's next request does not (UnreadableStream: it is not read either).
        assert call(environ(UnreadableStream()))[0] == 429
        streams[0].release.set()
        waiter.join(10)
    assert answers == [200]


def test_at_most_a_quarter_of_the_threads_wait(limits: Any) -> None:
    limits.KMS_WEB_THREADS = 4  # one waiting place
    bodyreads.reset()
    other = "127.0.0.3"
    answers: list[int] = []
    with held_reads(2) as streams, held_reads(2, address=other):
        waiter = threading.Thread(target=lambda: answers.append(call(environ(io.BytesIO(b"0123456789")))[0]))
        waiter.start()
        deadline = time.monotonic() + 5
        while not bodyreads._reads().waiters:
            assert time.monotonic() < deadline and waiter.is_alive()
            time.sleep(0.001)
        assert call(environ(UnreadableStream(), address=other))[0] == 429
        streams[0].release.set()
        waiter.join(10)
    assert answers == [200]


def test_an_address_found_stalled_waits_no_more_for_a_while(limits: Any) -> None:
    with held_reads(2) as streams:
        assert call(environ(UnreadableStream()))[0] == 429  # waited, in vain: stalled
        # Its reads end a moment after its next request arrives: that request is not kept waiting for them.
        threading.Timer(0.05, streams[0].release.set).start()
        assert call(environ(UnreadableStream()))[0] == 429
    assert call(environ(io.BytesIO(b"0123456789")))[0] == 200  # below the limit, it is served


def test_no_read_stays_counted_after_a_failed_read_or_a_body_never_read(limits: Any) -> None:
    class FailingStream:
        def read(self, size: int = -1, /) -> bytes:
            raise OSError("the client went away")

    with pytest.raises(OSError):
        call(environ(FailingStream()))
    assert bodyreads.reads_in_flight(STALLER) == 0

    def ignoring_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("204 No Content", [])
        return [b""]

    answer = bodyreads.with_body_reads_counted(ignoring_app)(environ(UnreadableStream()), lambda *_: None)
    assert list(answer) == [b""]
    assert bodyreads.reads_in_flight(STALLER) == 0


def test_clients_behind_a_listed_proxy_are_counted_each_on_its_own(limits: Any) -> None:
    proxy, first, second = "10.0.0.1", "203.0.113.1", "203.0.113.2"
    limits.KMS_TRUSTED_PROXY_ADDRESSES = proxy
    with held_reads(2, address=proxy, HTTP_X_FORWARDED_FOR=first):
        assert bodyreads.reads_in_flight(first) == 2 and bodyreads.reads_in_flight(proxy) == 0
        assert call(environ(io.BytesIO(b"0123456789"), address=proxy, HTTP_X_FORWARDED_FOR=second))[0] == 200
        assert call(environ(UnreadableStream(), address=proxy, HTTP_X_FORWARDED_FOR=first))[0] == 429


def test_an_ipv6_client_is_counted_by_its_slash_64(limits: Any) -> None:
    with held_reads(2, address="2001:db8:1:2::1"):
        assert call(environ(UnreadableStream(), address="2001:db8:1:2::ffff"))[0] == 429


def test_the_refusal_can_be_turned_off(limits: Any) -> None:
    limits.KMS_STALLED_BODIES_PER_ADDRESS = 0
    with held_reads(3):
        assert call(environ(io.BytesIO(b"0123456789")))[0] == 200


def test_the_setting_is_checked(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMS_WEB_THREADS", "8")
    settings.KMS_STALLED_BODIES_PER_ADDRESS = 2
    assert stalled_bodies_per_address_valid() == []
    settings.KMS_STALLED_BODIES_PER_ADDRESS = -1
    [error] = stalled_bodies_per_address_valid()
    assert isinstance(error, Error) and error.id == "kmsconsole.E008"
    settings.KMS_STALLED_BODIES_PER_ADDRESS = 8
    [warning] = stalled_bodies_per_address_valid()
    assert isinstance(warning, Warning) and warning.id == "kmsconsole.W003"


# Through the real web server (granian, as `manage.py serve` runs it): 4 threads, 2 of them for one address.


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[int]:
    with serving(tmp_path / "web.log", threads=4) as port:
        yield port


def stall(port: int, head: bytes) -> socket.socket:
    """A connection that sends `head` and the start of its body, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(STALLER, 0))
    sock.sendall(head)
    return sock


def chunked_stall(port: int) -> socket.socket:
    return stall(
        port,
        f"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n".encode(),
    )


def kms_stall(port: int) -> socket.socket:
    return stall(
        port,
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Amz-Target: TrentService.ListKeys\r\n"
        "Content-Type: application/x-amz-json-1.1\r\nContent-Length: 100\r\n\r\n{".encode(),
    )


def answer_of(sock: socket.socket) -> bytes:
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        return sock.recv(65536)
    return b""


def signed_list_keys(port: int, persona: Persona, address: str) -> tuple[int, dict[str, Any]]:
    body = b"{}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(address, 0))
    try:
        connection.request(
            "POST", "/", body=body, headers=kms_headers(persona, "ListKeys", body, f"127.0.0.1:{port}")
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_stalled_bodies_from_one_address_do_not_stop_another(web_server: int, admin: Persona) -> None:
    held = [chunked_stall(web_server), kms_stall(web_server)]
    time.sleep(1)  # both inside their body reads
    try:
        # Its further bodies are refused at once, unread, each in its interface's format.
        refused = [chunked_stall(web_server) for _ in range(10)] + [kms_stall(web_server) for _ in range(10)]
        answers = [answer_of(sock) for sock in refused]
        assert all(a.startswith(b"HTTP/1.1 429 ") for a in answers[:10]), answers[:10]
        assert all(a.startswith(b"HTTP/1.1 400 ") and b"ThrottlingException" in a for a in answers[10:]), (
            answers[10:]
        )
        for sock in refused:
            sock.close()
        # Everyone else, and its requests without a body, are still answered.
        health = http.client.HTTPConnection(
            "127.0.0.1", web_server, timeout=10, source_address=(NEIGHBOUR, 0)
        )
        health.request("GET", "/healthz")
        assert health.getresponse().status == 200
        health.close()
        status, document = signed_list_keys(web_server, admin, NEIGHBOUR)
        assert status == 200 and "Keys" in document, document
        status, document = signed_list_keys(web_server, admin, STALLER)
        assert (status, document["__type"]) == (400, "ThrottlingException")
    finally:
        for sock in held:
            sock.close()
    # Once the stalled connections are gone, the address is served again.
    deadline = time.monotonic() + 10
    while signed_list_keys(web_server, admin, STALLER)[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    [event] = AuditEvent.objects.filter(source_ip=STALLER, reason__contains="waiting for their bodies")
    assert event.decision == "denied"


def test_an_address_cycling_young_stalls_does_not_hold_the_worker(web_server: int) -> None:
    """The security review's attack on the wait: the limit's worth of fresh stalls, then more requests with bodies
    (each would wait for the stalls, holding a thread), all dropped and begun again every 0.2 s. At most one of
    them waits, so 127.0.0.2 keeps a thread: before, at 4 threads it got 17 answers in 3 s instead of 2,085.
    (Chunked stalls: the Content-Length ones did not hold threads this way in this test.)"""
    stop = threading.Event()

    def attack() -> None:
        while not stop.is_set():
            socks = [chunked_stall(web_server) for _ in range(2)]
            time.sleep(0.02)
            socks += [chunked_stall(web_server) for _ in range(6)]
            stop.wait(0.2)
            for sock in socks:
                sock.close()

    attacker = threading.Thread(target=attack)
    attacker.start()
    answered = 0
    try:
        time.sleep(0.5)
        neighbour = http.client.HTTPConnection(
            "127.0.0.1", web_server, timeout=10, source_address=(NEIGHBOUR, 0)
        )
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            neighbour.request("GET", "/healthz")
            response = neighbour.getresponse()
            response.read()
            assert response.status == 200
            answered += 1
        neighbour.close()
    finally:
        stop.set()
        attacker.join(10)
    # About 2,300 on an idle machine, 54 before at most one request per address could wait.
    assert answered >= 200, answered


def test_a_fast_client_running_many_requests_at_once_is_not_refused(web_server: int, admin: Persona) -> None:
    WATCH.register(admin.secret_access_key)
    client = watch_boto3_client(
        boto3.client(
            "kms",
            endpoint_url=f"http://127.0.0.1:{web_server}",
            region_name=settings.KMS_REGION,
            aws_access_key_id=admin.access_key_id,
            aws_secret_access_key=admin.secret_access_key,
            # Retried as SDKs do by default: a read kept waiting by the GIL on a loaded machine may be refused.
            config=Config(retries={"max_attempts": 4, "mode": "standard"}, max_pool_connections=16),
        )
    )
    throttled: list[str] = []

    def note_throttling(response: Any = None, **_: Any) -> None:
        if response is not None and response[1].get("Error", {}).get("Code") == "ThrottlingException":
            throttled.append(response[1]["Error"].get("Message", ""))

    client.meta.events.register("needs-retry.kms", note_throttling)
    key_id = client.create_key()["KeyMetadata"]["KeyId"]

    def encrypt_many(_: int) -> int:
        for _ in range(15):
            blob = client.encrypt(KeyId=key_id, Plaintext=b"x" * 2048)["CiphertextBlob"]
            assert client.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x" * 2048
        return 30

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(encrypt_many, range(16))) == 480
    # Refusals are rare (none, on an idle machine): under a tenth of the 480 calls, each retried to success.
    assert len(throttled) < 48, throttled[:3]


def test_a_request_waits_briefly_for_a_fast_clients_reads_to_end(limits: Any) -> None:
    """Reads that began a moment ago may be a fast client's, waiting for the GIL: the new request waits for one
    to end rather than being refused."""
    with held_reads(2) as streams:
        threading.Timer(0.05, streams[0].release.set).start()
        assert call(environ(io.BytesIO(b"0123456789")))[0] == 200
