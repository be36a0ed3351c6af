"""Secrets must never reach logs, the audit trail, error messages or broker messages (issue 10, "Secrets").

Every test registers the secrets it handles as they appear: personas' secret access keys and session tokens
(tests/conftest.py), the plaintexts it sends and the plaintexts, data keys and private keys it receives through
boto3 (a botocore event hook on every `kms_client`), and the root key (always). Around each test the watcher
collects every log record and every Celery message published; when the test ends it scans them, the audit
events in the database and the error messages boto3 received for any registered secret, in the encodings a
leak would take (raw text, base64, hex). Short values are not registered: eight bytes of b"x" would match by
chance.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MIN_SECRET_BYTES = 12


def _variants(value: str | bytes) -> set[str]:
    raw = value.encode() if isinstance(value, str) else bytes(value)
    if len(raw) < MIN_SECRET_BYTES:
        return set()
    found = {base64.b64encode(raw).decode(), raw.hex()}
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return found
    if text.isprintable():
        found.add(text)
    return found


@dataclass
class SecretsWatch:
    """The secrets of the running test and what it has seen leave the service."""

    permanent: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)
    seen: list[tuple[str, str]] = field(default_factory=list)  # (where, text)

    def register(self, *values: str | bytes | None, permanent: bool = False) -> None:
        for value in values:
            if value:
                (self.permanent if permanent else self.secrets).update(_variants(value))

    def saw(self, where: str, text: str) -> None:
        self.seen.append((where, text))

    def leaks(self, extra: Iterable[tuple[str, str]] = ()) -> list[str]:
        wanted = self.secrets | self.permanent
        if not wanted:
            return []
        return [
            f"a secret appeared in {where}: …{text[:200]}…"
            for where, text in [*self.seen, *extra]
            if any(secret in text for secret in wanted)
        ]

    def reset(self) -> None:
        self.secrets.clear()
        self.seen.clear()


WATCH = SecretsWatch()


# The test's own HTTP clients log whole request bodies at DEBUG: that is the client's side of the wire, holding
# what the test sent, not something the service wrote.
CLIENT_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "aws_encryption_sdk", "awscli", "hypothesis")


class CollectingHandler(logging.Handler):
    """Every log record the service writes during the test, formatted with its traceback, for the scan."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(CLIENT_LOGGERS):
            return
        try:
            text = record.getMessage()
        except Exception:  # a broken format string is still a record to scan
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + logging.Formatter().formatException(record.exc_info)
        WATCH.saw(f"log {record.name}", text)


SECRET_REQUEST_PARAMS = ("Plaintext",)
SECRET_RESPONSE_FIELDS = ("Plaintext", "PrivateKeyPlaintext", "SharedSecret")


def watch_boto3_client(client: Any) -> Any:
    """Register what a boto3 KMS client sends and receives that is secret, and record its error messages."""

    def before_call(params: dict[str, Any], **_: Any) -> None:
        body = params.get("body")
        if isinstance(body, bytes | str) and body:
            try:
                document = json.loads(body)
            except ValueError:
                return
            if isinstance(document, dict):
                for name in SECRET_REQUEST_PARAMS:
                    if isinstance(document.get(name), str):
                        WATCH.register(base64.b64decode(document[name]))

    def after_call(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        for name in SECRET_RESPONSE_FIELDS:
            value = parsed.get(name)
            if isinstance(value, bytes | str):
                WATCH.register(value)
        error = parsed.get("Error")
        if isinstance(error, dict):
            WATCH.saw("an error message", json.dumps(error))

    client.meta.events.register("before-call.kms.*", before_call)
    client.meta.events.register("after-call.kms.*", after_call)
    return client


def audit_texts() -> list[tuple[str, str]]:
    from kmsconsole.audit.models import AuditEvent

    return [
        (f"audit event #{row['seq']}", json.dumps(row, default=str)) for row in AuditEvent.objects.values()
    ]


def on_task_publish(body: Any = None, headers: Any = None, **_: Any) -> None:
    WATCH.saw("a Celery message", json.dumps({"body": body, "headers": headers}, default=str))
