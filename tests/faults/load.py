"""A bounded Encrypt/Decrypt load from a few threads, recording every answer, and botocore's own verdict on
whether each failure is one its standard retry mode would retry."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.retries.standard import RetryContext, StandardRetryConditions

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"


@dataclass(frozen=True)
class Outcome:
    thread: int
    operation: str
    started: float
    finished: float
    status: int  # 200, the HTTP status of an error, or 0 when no HTTP answer came (timeout, connection)
    request_id: str = ""
    error_code: str = ""
    content_type: str = ""
    message: str = ""
    retryable: bool = False
    exception: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


def retryable_by_botocore(error: ClientError) -> bool:
    """What botocore's standard retry mode decides for this error (transient, throttled or modeled retryable)."""
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    context = RetryContext(
        attempt_number=1,
        parsed_response=error.response,
        http_response=SimpleNamespace(status_code=status),
        caught_exception=None,
    )
    return bool(StandardRetryConditions(max_attempts=3).is_retryable(context))


@dataclass
class Load:
    """Threads that each Encrypt a small plaintext and Decrypt the result, until stopped (or `limit` seconds)."""

    clients: list[Any]
    key_id: str
    limit: float = 60.0
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for index, client in enumerate(self.clients):
            thread = threading.Thread(target=self._run, args=(index, client), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, index: int, client: Any) -> None:
        deadline = time.monotonic() + self.limit
        plaintext = f"fault-load-{index}".encode() * 4
        while not self._stop.is_set() and time.monotonic() < deadline:
            result = self._call(index, "Encrypt", client.encrypt, KeyId=self.key_id, Plaintext=plaintext)
            if result is not None:
                decrypted = self._call(
                    index, "Decrypt", client.decrypt, CiphertextBlob=result["CiphertextBlob"]
                )
                if decrypted is not None:
                    assert decrypted["Plaintext"] == plaintext
            else:
                time.sleep(0.05)  # a failing dependency is not hammered in a tight loop

    def _call(self, index: int, operation: str, method: Any, **params: Any) -> Any:
        """The call's result, or None when it failed; either way its Outcome is recorded."""
        started = time.monotonic()
        result = None
        try:
            result = method(**params)
            meta = result["ResponseMetadata"]
            outcome = Outcome(index, operation, started, time.monotonic(), 200, meta.get("RequestId", ""))
        except ClientError as error:
            meta = error.response.get("ResponseMetadata", {})
            outcome = Outcome(
                index,
                operation,
                started,
                time.monotonic(),
                meta.get("HTTPStatusCode", 0),
                meta.get("RequestId", ""),
                error.response.get("Error", {}).get("Code", ""),
                meta.get("HTTPHeaders", {}).get("content-type", ""),
                error.response.get("Error", {}).get("Message", ""),
                retryable_by_botocore(error),
            )
        except BotoCoreError as error:  # no HTTP answer: a timeout, a refused or dropped connection
            outcome = Outcome(index, operation, started, time.monotonic(), 0, exception=type(error).__name__)
        with self._lock:
            self.outcomes.append(outcome)
        return result

    def summary(self) -> dict[str, Any]:
        errors = Counter(f"{o.status} {o.error_code or o.exception}" for o in self.outcomes if not o.ok)
        return {
            "requests": len(self.outcomes),
            "ok": sum(o.ok for o in self.outcomes),
            "errors": dict(errors),
        }
