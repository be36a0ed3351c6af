"""publish_or_skip: a request's after-commit message is sent when the broker answers, and given up at once when
it does not (kombu alone would retry connecting without limit and hold the request thread)."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from kmsconsole.celery import app, publish_or_skip
from kmsconsole.jobs.tasks import heartbeat


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sent_when_the_broker_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []
    # The connection to the suite's broker is real; the message itself is not left in it.
    monkeypatch.setattr(heartbeat, "apply_async", lambda args, **options: sent.append(options))
    assert publish_or_skip(heartbeat, (), countdown=5) is True
    assert sent[0]["countdown"] == 5 and sent[0]["retry"] is False and sent[0]["connection"] is not None


def test_given_up_at_once_when_the_broker_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app.conf, "broker_url", f"redis://127.0.0.1:{closed_port()}/0")
    monkeypatch.setattr(app.conf, "broker_write_url", None)
    started = time.monotonic()
    assert publish_or_skip(heartbeat) is False
    assert time.monotonic() - started < 3
