"""The load generator behind `manage.py bench kms`. Pure client code: no Django is imported here.

Each client process pre-signs a small pool of requests with botocore's SigV4Auth (re-signed well inside the
server's clock-skew window) and runs `connections` keep-alive HTTP/1.1 connections on one asyncio loop, writing
pre-built request bytes and reading each response with a minimal parser, so that a request costs the client tens
of microseconds. Latency is measured from write to the last byte of the response body.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

CONTENT_TYPE = "application/x-amz-json-1.1"
OPERATIONS = {
    "encrypt": "Encrypt",
    "decrypt": "Decrypt",
    "generate-data-key": "GenerateDataKey",
    "sign": "Sign",
    "generate-mac": "GenerateMac",
}
# The key each operation needs: (KeySpec, KeyUsage).
KEY_SPECS = {
    "encrypt": ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
    "decrypt": ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
    "generate-data-key": ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
    "sign": ("ECC_NIST_P256", "SIGN_VERIFY"),
    "generate-mac": ("HMAC_256", "GENERATE_VERIFY_MAC"),
}
# Distinct request bodies per client process; each is re-signed every RESIGN_SECONDS (the server allows 15 min).
POOL_SIZE = 32
RESIGN_SECONDS = 60.0


@dataclass(frozen=True)
class Target:
    """Where to send requests, and as whom."""

    endpoint: str
    access_key_id: str
    secret_access_key: str
    region: str

    @property
    def url(self) -> str:
        return self.endpoint.rstrip("/") + "/"


class BenchError(Exception):
    """The load could not be started (setup call failed, server unreachable)."""


def sign(target: Target, operation: str, body: bytes) -> tuple[str, dict[str, str]]:
    """A SigV4-signed request: (Host header, all headers to send)."""
    request = AWSRequest(
        method="POST",
        url=target.url,
        data=body,
        headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": f"TrentService.{operation}"},
    )
    SigV4Auth(Credentials(target.access_key_id, target.secret_access_key), "kms", target.region).add_auth(
        request
    )
    host = urlsplit(target.url).netloc
    return host, {name: str(value) for name, value in request.headers.items()}


def call(target: Target, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One signed call (for preparing a run: ciphertexts to decrypt). Raises BenchError unless it succeeds."""
    body = json.dumps(payload).encode()
    _host, headers = sign(target, operation, body)
    parts = urlsplit(target.url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
    try:
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
    except OSError as exc:
        raise BenchError(f"{operation} to {target.url} failed: {exc}") from exc
    finally:
        connection.close()
    if response.status != 200:
        raise BenchError(f"{operation} answered {response.status}: {answer[:300]!r}")
    decoded: dict[str, Any] = json.loads(answer)
    return decoded


def request_bodies(
    op: str, key_id: str, *, payload_bytes: int, count: int, ciphertexts: Sequence[str] = ()
) -> list[bytes]:
    """`count` request bodies for `op` (random payloads; decrypt cycles through `ciphertexts`)."""
    bodies = []
    for index in range(count):
        payload = base64.b64encode(os.urandom(payload_bytes)).decode()
        if op == "encrypt":
            document: dict[str, Any] = {"KeyId": key_id, "Plaintext": payload}
        elif op == "decrypt":
            document = {"CiphertextBlob": ciphertexts[index % len(ciphertexts)], "KeyId": key_id}
        elif op == "generate-data-key":
            document = {"KeyId": key_id, "KeySpec": "AES_256"}
        elif op == "sign":
            document = {
                "KeyId": key_id,
                "Message": payload,
                "MessageType": "RAW",
                "SigningAlgorithm": "ECDSA_SHA_256",
            }
        elif op == "generate-mac":
            document = {"KeyId": key_id, "Message": payload, "MacAlgorithm": "HMAC_SHA_256"}
        else:
            raise BenchError(f"Unknown operation {op}")
        bodies.append(json.dumps(document, separators=(",", ":")).encode())
    return bodies


def prepare_ciphertexts(target: Target, key_id: str, *, payload_bytes: int, count: int) -> list[str]:
    """Ciphertexts made by the server under test itself, for a Decrypt run."""
    return [
        call(
            target,
            "Encrypt",
            {"KeyId": key_id, "Plaintext": base64.b64encode(os.urandom(payload_bytes)).decode()},
        )["CiphertextBlob"]
        for _ in range(count)
    ]


class RequestPool:
    """Pre-built, pre-signed request bytes, re-signed every RESIGN_SECONDS so the signature date stays fresh."""

    def __init__(self, target: Target, operation: str, bodies: Sequence[bytes]) -> None:
        self.target, self.operation, self.bodies = target, operation, list(bodies)
        self.requests: list[bytes] = []
        self.signed_at = 0.0
        self.next_index = 0
        self.resign()

    def resign(self) -> None:
        built = []
        for body in self.bodies:
            host, headers = sign(self.target, self.operation, body)
            lines = [f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"]
            lines.extend(f"{name}: {value}\r\n" for name, value in headers.items() if name.lower() != "host")
            lines.append("\r\n")
            built.append("".join(lines).encode() + body)
        self.requests = built
        self.signed_at = time.monotonic()

    def take(self) -> bytes:
        if time.monotonic() - self.signed_at > RESIGN_SECONDS:
            self.resign()
        self.next_index = (self.next_index + 1) % len(self.requests)
        return self.requests[self.next_index]


@dataclass
class ClientResult:
    """What one client process measured (latencies in seconds, of requests started after the warm-up)."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server wants the connection closed) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lowered = head.lower()
    close = b"\r\nconnection: close" in lowered
    marker = lowered.find(b"\r\ncontent-length:")
    if marker >= 0:
        end = lowered.index(b"\r\n", marker + 2)
        body = await reader.readexactly(int(lowered[marker + 17 : end]))
    elif b"\r\ntransfer-encoding: chunked" in lowered:
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            chunks.append(chunk[:-2])
        body = b"".join(chunks)
    else:
        body = await reader.read()
        close = True
    return status, body, close


def _error_name(status: int, body: bytes) -> str:
    try:
        kind = json.loads(body).get("__type", "")
    except (ValueError, AttributeError):
        kind = ""
    return f"{status} {kind}".strip()


async def _connection(
    host: str, port: int, pool: RequestPool, warm_until: float, deadline: float, result: ClientResult
) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    perf_counter, latencies = time.perf_counter, result.latencies
    while True:
        started = perf_counter()
        if started >= deadline:
            break
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(pool.take())
            status, body, close = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            if started >= warm_until:
                result.errors[f"connection: {type(exc).__name__}"] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)
            continue
        if started >= warm_until:
            if status == 200:
                latencies.append(perf_counter() - started)
            else:
                result.errors[_error_name(status, body)] += 1
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def run_client(
    target: Target, operation: str, bodies: Sequence[bytes], connections: int, warmup: float, duration: float
) -> ClientResult:
    """One client process: `connections` concurrent keep-alive connections for warmup + duration seconds."""
    parts = urlsplit(target.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    pool = RequestPool(target, operation, bodies)
    result = ClientResult()
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    warm_until = wall_start + warmup
    deadline = warm_until + duration

    async def main() -> None:
        await asyncio.gather(
            *(_connection(host, port, pool, warm_until, deadline, result) for _ in range(connections))
        )

    asyncio.run(main())
    result.cpu_seconds = time.process_time() - cpu_start
    result.wall_seconds = time.perf_counter() - wall_start
    return result


def _run_client_star(args: tuple[Any, ...]) -> ClientResult:
    return run_client(*args)


@dataclass(frozen=True)
class Summary:
    requests: int
    duration: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    client_cpu_percent: float  # of one core, all client processes together, over the whole run

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "duration_s": self.duration,
            "requests_per_second": round(self.requests_per_second, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "errors": self.errors,
            "client_cpu_percent": round(self.client_cpu_percent, 1),
        }


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_load(
    target: Target,
    operation: str,
    body_factory: Callable[[], Sequence[bytes]],
    *,
    concurrency: int,
    duration: float,
    warmup: float = 1.0,
    processes: int = 1,
) -> Summary:
    """Drive `target` with `concurrency` connections spread over `processes` client processes.

    With one process the load runs in this process (what the smoke test does); with more, each client process
    is started with `spawn`, so none inherits Django or a database connection.
    """
    processes = max(1, min(processes, concurrency))
    shares = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    jobs = [(target, operation, body_factory(), share, warmup, duration) for share in shares]
    if processes == 1:
        results = [_run_client_star(jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(processes) as workers:
            results = workers.map(_run_client_star, jobs)
    latencies = sorted(latency for result in results for latency in result.latencies)
    errors: Counter[str] = Counter()
    for result in results:
        errors.update(result.errors)
    cpu = sum(result.cpu_seconds for result in results)
    wall = max(result.wall_seconds for result in results)
    return Summary(
        requests=len(latencies),
        duration=duration,
        requests_per_second=len(latencies) / duration,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        errors=dict(errors),
        client_cpu_percent=100 * cpu / wall if wall else 0.0,
    )
