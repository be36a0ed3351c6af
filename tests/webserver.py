"""The web server as `manage.py serve` runs it (granian), started by a test on the test database."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import urllib3

from kmsconsole.bench.moto import free_port
from kmsconsole.core.webserver import web_server_command
from tests.conftest import REPO
from tests.secrets_watch import WATCH


@contextlib.contextmanager
def serving(log: Path, *, threads: int) -> Iterator[int]:
    """One web server process on a free port, its output in `log`, followed by the secrets watch (and collected
    when it has stopped); yields the port once /healthz answers."""
    from django.db import connection

    db = connection.settings_dict
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tests.settings",
        KMS_WEB_THREADS=str(threads),
        DATABASE_URL=(
            f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
            if connection.vendor == "postgresql"
            else f"sqlite:///{db['NAME']}"
        ),
    )
    port = free_port()
    with log.open("ab") as out:
        server = subprocess.Popen(
            web_server_command(host="127.0.0.1", port=port, processes=1, threads=threads, access_log=True),
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    WATCH.follow(log, "the test web server's log")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib3.request("GET", f"http://127.0.0.1:{port}/healthz", retries=False).status == 200:
                    break
            except urllib3.exceptions.HTTPError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "the web server did not start"
            time.sleep(0.3)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)
        WATCH.collect(log)
