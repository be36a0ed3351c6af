"""Fixtures of the root-key tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from kmsconsole.core.rootkey import root_keys
from tests.conftest import RootKeyFile
from tests.secrets_watch import WATCH

Rootkey = Callable[..., str]


@pytest.fixture
def rootkey(root_key_file: RootKeyFile, django_capture_on_commit_callbacks: Any) -> Iterator[Rootkey]:
    """`rootkey("rotate")`: the command as the operator runs it, its output returned. The key file is rewritten
    once the operation has committed (the test's transaction never does: the callbacks run at the end of the
    call). Every key the file holds afterwards is registered with the secrets watch."""

    def run(*args: str) -> str:
        out = StringIO()
        with django_capture_on_commit_callbacks(execute=True):
            call_command("rootkey", *args, stdout=out)
        for line in root_key_file.path.read_text().splitlines():
            WATCH.register(line.strip().removeprefix("retired:"))
        printed = out.getvalue()
        for key in root_keys().everything:
            assert key.secret is None or key.secret.hex() not in printed
        return printed

    yield run


@pytest.fixture(autouse=True)
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """`rootkey retire` may run at once after a rotation here (it waits RETIRE_SETTLE_SECONDS in service: tested
    on its own in test_root_key_file)."""
    from kmsconsole.core import rootkey_rotation

    monkeypatch.setattr(rootkey_rotation, "RETIRE_SETTLE_SECONDS", 0.0)
