"""The application's access log (kmsconsole.core.accesslog): one safe line per request, written off the request's
thread, never holding a request up."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from kmsconsole.core import accesslog
from kmsconsole.core.accesslog import AccessLog, with_access_log


def _environ(path: str = "/api/v1/keys", **extra: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "limit=5&token=s3cret",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.7",
        "HTTP_AUTHORIZATION": "Bearer s3cret-token",
        **extra,
    }


def _answering(status: str) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response(status, [("Content-Type", "text/plain")])
        return [b"body"]

    return app


def _serve(status: str, environ: dict[str, Any]) -> str:
    """What the log wrote for one request answered with `status` (which reaches the server unchanged)."""
    log = AccessLog(stream := io.BytesIO())
    sent: list[str] = []
    body = b"".join(
        with_access_log(_answering(status), log)(environ, lambda status, headers: sent.append(status))
    )
    assert (sent, body) == ([status], b"body")
    log.flush()
    return stream.getvalue().decode()


def test_a_line_holds_the_request_line_and_status_and_nothing_secret() -> None:
    written = _serve("404 Not Found", _environ())
    line = written.removesuffix("\n")
    assert "\n" not in line
    address, request, rest = line.partition(' "')[0], *line.partition(' "')[2].rsplit('" ', 1)
    assert (address, request) == ("192.0.2.7", "GET /api/v1/keys HTTP/1.1")
    status, elapsed = rest.split(" ")
    assert status == "404" and elapsed.endswith("ms") and int(elapsed[:-2]) >= 0
    assert "s3cret" not in written and "limit" not in written


def test_behind_a_trusted_proxy_the_line_names_the_client(settings: Any) -> None:
    settings.KMS_TRUSTED_PROXY_ADDRESSES = "192.0.2.0/24"
    forwarded = _environ(HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")
    assert _serve("200 OK", forwarded).startswith('203.0.113.9 "GET ')
    settings.KMS_TRUSTED_PROXY_ADDRESSES = ""
    assert _serve("200 OK", forwarded).startswith('192.0.2.7 "GET ')


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ('/x" 200 0ms\n10.0.0.1 "GET /forged', '/x\\" 200 0ms\\x0a10.0.0.1 \\"GET /forged'),
        ("/\x1b[2Jcleared", "/\\x1b[2Jcleared"),
        ("/back\\slash", "/back\\\\slash"),
        ("/caf\xe9\x85", "/caf\xe9\\u0085"),
        ("/" + "a" * 5000, "/" + "a" * 1023 + "..."),
    ],
)
def test_characters_that_could_forge_or_hide_a_line_are_escaped(path: str, logged: str) -> None:
    written = _serve("200 OK", _environ(path))
    assert written.count("\n") == 1
    assert f'"GET {logged} HTTP/1.1" 200 ' in written


def test_a_failing_application_is_logged_as_500_and_its_error_goes_on() -> None:
    def failing(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [])  # then fails: the server answers 500
        environ["PATH_INFO"] = "/changed"
        raise RuntimeError("boom")

    log = AccessLog(stream := io.BytesIO())
    with pytest.raises(RuntimeError):
        with_access_log(failing, log)(_environ(), lambda *args: None)
    log.flush()
    assert '"GET /api/v1/keys HTTP/1.1" 500 ' in stream.getvalue().decode()


def test_lines_are_written_by_the_background_thread() -> None:
    log = AccessLog(stream := io.BytesIO())
    app = with_access_log(_answering("200 OK"), log)
    for _ in range(3):
        app(_environ(), lambda *args: None)
    deadline = time.monotonic() + 5
    while stream.getvalue().count(b"\n") < 3:
        assert time.monotonic() < deadline, "the access log was not written"
        time.sleep(0.01)
    assert stream.getvalue().count(b" 200 ") == 3


def test_an_output_that_fails_costs_lines_not_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accesslog, "MAX_PENDING_CHARS", 120)  # two lines of 46 characters
    monkeypatch.setattr(accesslog, "FLUSH_SECONDS", 3600.0)  # only the explicit flushes below write

    class Broken(io.BytesIO):
        def write(self, data: Any) -> int:
            raise BrokenPipeError

    log = AccessLog(Broken())
    app = with_access_log(_answering("200 OK"), log)
    for _ in range(5):
        assert b"".join(app(_environ(), lambda *args: None)) == b"body"
    log.flush()  # the broken output takes neither of the two kept lines
    log._stream = stream = io.BytesIO()
    app(_environ(), lambda *args: None)
    log.flush()
    notice, line = stream.getvalue().decode().splitlines()
    assert notice == "access log: 5 lines dropped (standard output was not taking them)"
    assert '"GET /api/v1/keys HTTP/1.1" 200 ' in line


def test_an_output_that_blocks_holds_up_no_request_and_no_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accesslog, "FLUSH_SECONDS", 0.01)
    monkeypatch.setattr(accesslog, "EXIT_WAIT_SECONDS", 0.2)
    unblock = threading.Event()

    class Stuck(io.BytesIO):
        def write(self, data: Any) -> int:
            unblock.wait(30)  # a full pipe nobody reads
            return super().write(data)

    log = AccessLog(Stuck())
    app = with_access_log(_answering("200 OK"), log)
    started = time.monotonic()
    for _ in range(200):
        assert b"".join(app(_environ(), lambda *args: None)) == b"body"
        time.sleep(0.001)
    log.close()
    assert time.monotonic() - started < 5
    unblock.set()


def test_the_last_lines_are_written_at_exit_without_waiting_for_the_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(accesslog, "FLUSH_SECONDS", 3600.0)
    log = AccessLog(stream := io.BytesIO())
    app = with_access_log(_answering("200 OK"), log)
    for _ in range(3):
        app(_environ(), lambda *args: None)
    log.close()
    assert stream.getvalue().count(b" 200 ") == 3


def test_a_logging_failure_never_fails_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_thread(self: AccessLog) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(AccessLog, "_start", no_thread)
    log = AccessLog(io.BytesIO())
    assert b"".join(with_access_log(_answering("200 OK"), log)(_environ(), lambda *a: None)) == b"body"


def test_lines_leave_in_whole_line_writes_no_larger_than_a_pipe_keeps_whole() -> None:
    writes: list[bytes] = []

    class Recording(io.BytesIO):
        def write(self, data: Any) -> int:
            writes.append(bytes(data))
            return len(data)

    log = AccessLog(Recording())
    for index in range(500):
        log.add(f'192.0.2.7 "GET /{"p" * (index % 1100)} HTTP/1.1" 200 0ms')
    log.flush()
    assert len(writes) > 1
    assert all(len(chunk) <= accesslog.PIPE_BUF and chunk.endswith(b"\n") for chunk in writes)
    assert b"".join(writes).count(b"\n") == 500
