"""Secrets must never reach logs, the audit trail, error messages, broker messages or any answer that is not the
one place the product hands a secret out (issue 10, "Secrets").

What is registered, as each test handles it:

- always: the root key;
- personas' secret access keys and session tokens (tests/conftest.py), and whatever a service called through
  `as_operator` returns that is secret (a new access key's secret, a role session's token, an API token, a grant
  token);
- through boto3 (a botocore hook on every `kms_client`): the plaintexts it sends, and the plaintexts, data keys,
  private keys and grant tokens it receives;
- through any request the service answers in this process (the Django test client, the REST API client, the live
  server behind boto3, Playwright and urllib3): API tokens presented as bearer tokens, session tokens presented
  in `X-Amz-Security-Token`, console passwords posted in a form or a JSON body, the console session's key, and the
  secrets the answer hands out (below).

Where it looks, when the test ends: every log record written in this process, every Celery message published,
the audit events in the database, the error messages boto3 received, every answer the service gave (with the
secrets it hands out on purpose taken out first), and the output of the server and worker processes tests start
(`follow()`: the web server's error and access logs, Celery workers, `make run`, the fault tests' services).

Secrets handed out on purpose, and only there: the members an operation declares secret in its answer (KMS:
Plaintext, PrivateKeyPlaintext, SharedSecret, GrantToken, SecretAccessKey, SessionToken, Password, Token; the REST
API: token, secret_access_key, session_token, grant_token) and the console's shown-once elements (the new access
key's secret, the new grant token, the decrypted text of "Try it"). Each is registered as it is taken out, so it
must not turn up anywhere else afterwards.

Secrets are searched in the encodings a leak would take (raw text, base64, hex). Short values are not registered:
eight bytes of b"x" would match by chance. CSRF tokens are not secrets here (they are meant to be in pages).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import html
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
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
    followed: dict[Path, tuple[str, int]] = field(
        default_factory=dict
    )  # log file -> (what it is, bytes read)

    def register(self, *values: str | bytes | None, permanent: bool = False) -> None:
        for value in values:
            if value:
                (self.permanent if permanent else self.secrets).update(_variants(value))

    def saw(self, where: str, text: str) -> None:
        self.seen.append((where, text))

    def follow(self, path: Path | str, what: str) -> None:
        """Scan what a process writes to `path` from now on, at the end of every test while it is followed."""
        path = Path(path)
        self.followed[path] = (what, path.stat().st_size if path.exists() else 0)

    def collect(self, path: Path | str) -> None:
        """Read the rest of a followed file now (its process has stopped, the file may go) and stop following."""
        path = Path(path)
        self._read(path)
        self.followed.pop(path, None)

    def _read(self, path: Path) -> None:
        if path not in self.followed:
            return
        what, offset = self.followed[path]
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            data = b""
        self.followed[path] = (what, offset + len(data))
        if data:
            self.saw(what, data.decode(errors="replace"))

    def leaks(self, extra: Iterable[tuple[str, str]] = ()) -> list[str]:
        for path in list(self.followed):
            self._read(path)
        wanted = self.secrets | self.permanent
        places = [*self.seen, *extra]
        if not wanted or not places:
            return []
        # One pass per secret over all the text at once (the common case finds nothing); then name the places.
        everything = "\x00".join(text for _, text in places)
        found = [secret for secret in wanted if secret in everything]
        return [
            f"a secret appeared in {where}: …{text[:200]}…"
            for where, text in places
            if any(secret in text for secret in found)
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


def collect_every_log_record() -> None:
    """Hand every log record to a CollectingHandler, whichever logger and handlers it goes to. A handler on the root
    logger alone would not do: `django.setup()` run again in the test process (importing `kmsconsole.wsgi` does it)
    applies settings.LOGGING, which replaces the root logger's handlers, and the watch went blind from then on."""
    if getattr(logging.Logger.callHandlers, "watched", False):
        return
    collector = CollectingHandler(level=logging.DEBUG)
    original = logging.Logger.callHandlers

    def call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
        collector.handle(record)
        original(self, record)

    call_handlers.watched = True  # type: ignore[attr-defined]
    logging.Logger.callHandlers = call_handlers  # type: ignore[method-assign]


SECRET_REQUEST_PARAMS = ("Plaintext",)
SECRET_RESPONSE_FIELDS = ("Plaintext", "PrivateKeyPlaintext", "SharedSecret", "GrantToken")


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


# --- What a service call returns --------------------------------------------------------------------------------

# Attributes of service results that hold a secret the caller receives once.
SECRET_ATTRIBUTES = ("plaintext", "token", "secret_access_key", "session_token", "password")


def register_result(result: Any) -> None:
    """Register the secrets a service handed back (NewAccessKey, RoleCredentials, CreatedToken, a grant's token)."""
    for name in SECRET_ATTRIBUTES:
        value = getattr(result, name, None)
        if isinstance(value, str | bytes):
            WATCH.register(value)


# --- Every answer the service gives in this process ------------------------------------------------------------

# Members of a JSON answer that hand a secret out on purpose (the operation table's secret response fields, in the
# AWS and REST spellings). KMS blobs are base64 in JSON: the bytes are registered too.
HANDED_OUT = frozenset(
    {
        "Plaintext",
        "PrivateKeyPlaintext",
        "SharedSecret",
        "GrantToken",
        "SecretAccessKey",
        "SessionToken",
        "Password",
        "Token",
        "token",
        "secret_access_key",
        "session_token",
        "grant_token",
    }
)
_BLOBS = frozenset({"Plaintext", "PrivateKeyPlaintext", "SharedSecret"})
# The console's shown-once elements (templates/console/access_key_created.html, _partials/grant_created.html,
# key_crypto.html).
_SHOWN_ONCE = re.compile(
    r'(<(code|pre)\b[^>]*\bid="(?:secret-access-key|new-grant-token|try-plaintext)"[^>]*>)(.*?)(</\2>)', re.S
)
_PASSWORD_FIELD = re.compile(r"password", re.I)
_BEARER = re.compile(r"Bearer\s+(\S+)", re.I)


def _hand_out(value: Any, blob: bool) -> None:
    if not isinstance(value, str):
        return
    WATCH.register(value)
    if blob:
        with contextlib.suppress(binascii.Error, ValueError):
            WATCH.register(base64.b64decode(value, validate=True))


def _without_handed_out(document: Any) -> Any:
    if isinstance(document, dict):
        kept = {}
        for name, value in document.items():
            if name in HANDED_OUT:
                _hand_out(value, name in _BLOBS)
            else:
                kept[name] = _without_handed_out(value)
        return kept
    if isinstance(document, list):
        return [_without_handed_out(item) for item in document]
    return document


def _html_without_shown_once(text: str) -> str:
    def shown(match: re.Match[str]) -> str:
        WATCH.register(html.unescape(match.group(3)))
        return match.group(1) + match.group(4)

    return _SHOWN_ONCE.sub(shown, text)


def _without_echoes(request: Any, text: str) -> str:
    """A form shows the caller what it just typed (a plaintext to try): that is the caller's own data, not a leak.
    Passwords are never shown back, so they are not taken out."""
    if request.method != "POST":
        return text
    with contextlib.suppress(Exception):  # an unreadable form typed nothing
        for name, values in request.POST.lists():
            if not _PASSWORD_FIELD.search(name):
                for value in values:
                    if len(value) >= MIN_SECRET_BYTES:
                        text = text.replace(html.escape(value), "")
    return text


def _register_presented(request: Any) -> None:
    """Secrets the request presented: a bearer API token, a session token, passwords, the session's key."""
    bearer = _BEARER.match(request.META.get("HTTP_AUTHORIZATION", ""))
    if bearer:
        WATCH.register(bearer.group(1))
    WATCH.register(request.META.get("HTTP_X_AMZ_SECURITY_TOKEN"))
    session = getattr(request, "session", None)
    if session is not None:
        WATCH.register(session.session_key)
    if request.method != "POST":
        return
    try:
        form = request.POST
        for name in form:
            if _PASSWORD_FIELD.search(name):
                WATCH.register(*form.getlist(name))
        if request.content_type == "application/json" and request.body:
            document = json.loads(request.body)
            if isinstance(document, dict):
                WATCH.register(
                    *(v for k, v in document.items() if _PASSWORD_FIELD.search(k) and isinstance(v, str))
                )
    except Exception:  # noqa: S110 - an unreadable body (too big, not JSON) presented nothing to register
        pass


def watch_answer(request: Any, response: Any) -> None:
    """Register what the request presented and what the answer hands out, and keep the rest of the answer for the
    scan. Streamed answers (file downloads, exports) are not read."""
    _register_presented(request)
    if getattr(response, "streaming", False):
        return
    text = response.content.decode(errors="replace")
    content_type = response.get("Content-Type", "")
    if "json" in content_type:
        with contextlib.suppress(ValueError):
            text = json.dumps(_without_handed_out(json.loads(text)))
    elif "html" in content_type:
        text = _without_echoes(request, _html_without_shown_once(text))
    WATCH.saw(f"the answer to {request.method} {request.path}", text)


def watch_every_answer() -> None:
    """Route every answer Django gives in this process (test client and live server alike) through watch_answer."""
    from django.core.handlers.base import BaseHandler

    if getattr(BaseHandler.get_response, "watched", False):
        return
    original = BaseHandler.get_response

    def get_response(self: Any, request: Any) -> Any:
        response = original(self, request)
        watch_answer(request, response)
        return response

    get_response.watched = True  # type: ignore[attr-defined]
    BaseHandler.get_response = get_response  # type: ignore[method-assign]
