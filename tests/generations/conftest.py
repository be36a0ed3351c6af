"""Servers for the cache invalidation tests: one process with two threads (the live test server: a change made by
one thread is seen by another that cached before it), or two web server processes (as `manage.py serve` starts them) on
the test database (a change made through one is seen by the other, which cached before it)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3
from botocore.config import Config
from django.conf import settings

from kmsconsole.bench.moto import free_port
from kmsconsole.core.webserver import web_server_command
from tests.conftest import Persona
from tests.secrets_watch import WATCH, watch_boto3_client

REPO = Path(__file__).resolve().parents[2]


def database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _wait_until_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the web server exited with {process.returncode}")
        try:
            if urllib3.request("GET", f"{url}/healthz", retries=False, timeout=2).status == 200:
                return
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not start")


@pytest.fixture(scope="module")
def server_pair(django_db_setup: None, django_db_blocker: Any) -> Iterator[tuple[str, str]]:
    """Two web servers (one process, two threads each) serving the test database: (url A, url B)."""
    with django_db_blocker.unblock():
        env = dict(
            os.environ,
            DATABASE_URL=database_url(),
            DJANGO_SETTINGS_MODULE="tests.settings",
            KMS_GRANT_PROPAGATION_SECONDS="0",
            KMS_GRANT_REVOCATION_PROPAGATION="immediate",
        )
    processes, urls, logs = [], [], []
    try:
        for index in range(2):
            port = free_port()
            # Error and access logs (the format `manage.py serve` uses) go to a file the secrets watch reads.
            log = Path(settings.KMS_DATA_DIR) / "test-logs" / f"web-{os.getpid()}-{index}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            command = web_server_command(host="127.0.0.1", port=port, processes=1, threads=2, access_log=True)
            with log.open("ab") as out:
                processes.append(
                    subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
                )
            WATCH.follow(log, f"web server {index}'s error and access log")
            urls.append(f"http://127.0.0.1:{port}")
            logs.append(log)
        for url, process in zip(urls, processes, strict=True):
            _wait_until_serving(url, process)
        yield urls[0], urls[1]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        for log in logs:
            WATCH.collect(log)
            log.unlink(missing_ok=True)


@dataclass(frozen=True)
class Servers:
    """Where changes are made (`admin`) and where the cached path is used (`user`)."""

    kind: str
    admin_url: str
    user_url: str

    def _client(self, url: str, persona: Persona) -> Any:
        WATCH.register(persona.secret_access_key, persona.session_token)
        return watch_boto3_client(
            boto3.client(
                "kms",
                endpoint_url=url,
                region_name=settings.KMS_REGION,
                aws_access_key_id=persona.access_key_id,
                aws_secret_access_key=persona.secret_access_key,
                aws_session_token=persona.session_token,
                config=Config(retries={"max_attempts": 1, "mode": "standard"}),
            )
        )

    def admin(self, persona: Persona) -> Any:
        return self._client(self.admin_url, persona)

    def user(self, persona: Persona) -> Any:
        return self._client(self.user_url, persona)


@pytest.fixture(params=["threads", "processes"])
def servers(request: pytest.FixtureRequest, settings: Any) -> Servers:
    settings.KMS_GRANT_PROPAGATION_SECONDS = 0
    settings.KMS_GRANT_REVOCATION_PROPAGATION = "immediate"
    if request.param == "threads":
        url = request.getfixturevalue("live_server").url
        return Servers("threads", url, url)
    admin_url, user_url = request.getfixturevalue("server_pair")
    return Servers("processes", admin_url, user_url)
