"""The application's own cost per request: SigV4-signed KMS requests handed straight to the WSGI application, with
no web server and no network in between (`manage.py bench kms-inprocess`).

Over HTTP (`bench kms`) the throughput on these shared 2-core machines moves by a third from run to run, and the
CPU per request measured here by as much between runs; under `valgrind --tool=callgrind` (README), though, its
instruction count repeats to a few per mille, which is how a change of a few percent is told from the noise. The
requests go through everything a served one does (SigV4, the caches and their generation read, the policy
decision, the work, the audit event and its group commit), in the application the web server runs
(`kmsconsole.wsgi`), without the access log (which `manage.py serve` writes by default: the HTTP bench's web
CPU includes it, and the web server's own work).
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kmsconsole.bench import loadgen

# The address the requests claim to come from, and the server they claim to reach (both part of the signature).
_CLIENT = "127.0.0.1"
_HOST = "127.0.0.1:8000"


@dataclass(frozen=True)
class InProcessResult:
    requests: int
    threads: int
    cpu_ms_per_request: float
    requests_per_second: float
    statuses: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "threads": self.threads,
            "cpu_ms_per_request": round(self.cpu_ms_per_request, 4),
            "requests_per_second": round(self.requests_per_second, 1),
            "statuses": self.statuses,
        }


def signed_environ(target: loadgen.Target, operation: str, body: bytes) -> dict[str, Any]:
    """The WSGI environ of a signed `POST /` (without its input stream, which each call gets fresh)."""
    host, headers = loadgen.sign(target, operation, body)
    environ: dict[str, Any] = {
        "HTTP_HOST": host,
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": _CLIENT,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
        elif key not in ("CONTENT_LENGTH", "HOST"):
            environ[f"HTTP_{key}"] = value
    return environ


def answer(
    application: Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]],
    environ: dict[str, Any],
    body: bytes,
) -> tuple[str, bytes]:
    """The status line and body `application` answers the request with."""
    answered: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answered.append(status)

    response = application({**environ, "wsgi.input": io.BytesIO(body)}, start_response)
    try:
        output = b"".join(response)
    finally:
        getattr(response, "close", lambda: None)()
    return (answered[0] if answered else "(no status)"), output


def run_in_process(
    application: Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]],
    requests: Sequence[tuple[dict[str, Any], bytes]],
    *,
    count: int,
    threads: int,
    warmup: int,
) -> InProcessResult:
    """`count` calls of `application` spread over `threads` threads, cycling through `requests`, after `warmup`
    calls on each thread (its own database connection and prepared statements, as a web server thread's); the CPU
    of the whole process (every thread) per measured request. Raises what a thread raised."""
    statuses: Counter[str] = Counter()
    failures: list[BaseException] = []
    lock = threading.Lock()
    ready = threading.Barrier(threads + 1)  # the workers, warmed up, and the clock
    share = [count // threads + (1 if index < count % threads else 0) for index in range(threads)]

    def work(first: int, many: int) -> None:
        from django.db import connections

        try:
            for index in range(warmup):
                answer(application, *requests[(first + index) % len(requests)])
            ready.wait()
            for index in range(first, first + many):
                status, _output = answer(application, *requests[index % len(requests)])
                with lock:
                    statuses[status] += 1
        except threading.BrokenBarrierError:
            pass  # another thread failed during its warm-up: its failure is raised
        except BaseException as exc:
            failures.append(exc)
            ready.abort()
        finally:
            connections.close_all()  # this thread's connections, as a web server thread's end with it

    workers = [
        threading.Thread(target=work, args=(sum(share[:index]), many)) for index, many in enumerate(share)
    ]
    for worker in workers:
        worker.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait()
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    for worker in workers:
        worker.join()
    cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
    if failures:
        raise failures[0]
    return InProcessResult(
        requests=count,
        threads=threads,
        cpu_ms_per_request=cpu * 1000 / count,
        requests_per_second=count / wall,
        statuses=dict(statuses),
    )


def prepared_requests(
    op: str, *, payload_bytes: int, pool: int = loadgen.POOL_SIZE
) -> list[tuple[dict[str, Any], bytes]]:
    """Signed requests of `op` for the bench user (set up as `bench kms` does) on a new key of the spec `op`
    needs; Decrypt's ciphertexts are made first, in process."""
    from django.conf import settings

    from kmsconsole.bench.setup import prepare
    from kmsconsole.wsgi import application_without_access_log

    spec, usage = loadgen.KEY_SPECS[op]
    principal = prepare(key_spec=spec, key_usage=usage)
    target = loadgen.Target(
        f"http://{_HOST}", principal.access_key_id, principal.secret_access_key, settings.KMS_REGION
    )
    ciphertexts: list[str] = []
    if op == "decrypt":
        import json

        for body in loadgen.request_bodies("encrypt", principal.key_id, payload_bytes=payload_bytes, count=8):
            environ = signed_environ(target, loadgen.OPERATIONS["encrypt"], body)
            status, output = answer(application_without_access_log, environ, body)
            if not status.startswith("200"):
                raise loadgen.BenchError(f"Encrypt for the Decrypt bench answered {status}: {output[:300]!r}")
            ciphertexts.append(json.loads(output)["CiphertextBlob"])
    bodies = loadgen.request_bodies(
        op, principal.key_id, payload_bytes=payload_bytes, count=pool, ciphertexts=ciphertexts
    )
    return [(signed_environ(target, loadgen.OPERATIONS[op], body), body) for body in bodies]
