"""`make run` on the embedded default (SQLite, filesystem broker) in a temporary data dir: it bootstraps,
serves /healthz, becomes ready once a worker consumes beat's heartbeat, answers boto3 with a key from
`iam create-access-key`, and stops web, worker and beat on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import urllib3
from botocore.config import Config

from tests.secrets_watch import WATCH

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(240)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, status: int, deadline: float) -> urllib3.BaseHTTPResponse:
    last = None
    while time.monotonic() < deadline:
        try:
            last = urllib3.request("GET", url, retries=False, timeout=2)
            if last.status == status:
                return last
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer {status} in time (last: {last.status if last else None})")


def test_make_run_serves_boto3_on_the_embedded_default(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "KMS_ROOT_KEY"}
    }
    env.update(
        KMS_DATA_DIR=str(tmp_path / "data"),
        KMS_PORT=str(port),
        KMS_HEARTBEAT_SECONDS="1",
        VENV=str(Path(sys.executable).parent.parent),
        KMS_WEB_WORKERS="1",
    )
    log = (tmp_path / "run.log").open("wb")
    service = subprocess.Popen(
        ["make", "run"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    # Everything web, worker and beat print (the access log too) is scanned by the secrets watch.
    WATCH.follow(tmp_path / "run.log", "the output of make run")
    try:
        deadline = time.monotonic() + 150
        assert wait_for(f"http://127.0.0.1:{port}/healthz", 200, deadline).json() == {"status": "ok"}
        ready = wait_for(f"http://127.0.0.1:{port}/readyz", 200, deadline).json()
        assert (
            ready["checks"]["broker"]["ok"]
            and ready["checks"]["worker"]["ok"]
            and ready["checks"]["static"]["ok"]
        )
        # `serve` collected the static files (`make run` leaves that to it): a console page renders.
        assert wait_for(f"http://127.0.0.1:{port}/signin/", 200, deadline).status == 200
        root_key = tmp_path / "data" / "root.key"
        assert root_key.stat().st_mode & 0o777 == 0o600
        WATCH.register(bytes.fromhex(root_key.read_text().strip()), root_key.read_text().strip())
        created = subprocess.run(
            [sys.executable, "manage.py", "iam", "create-access-key", "--user-name", "admin"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        key = json.loads(created.stdout)["AccessKey"]
        WATCH.register(key["SecretAccessKey"])
        kms = boto3.client(
            "kms",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )
        assert len(kms.generate_random(NumberOfBytes=24)["Plaintext"]) == 24
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        service.wait(timeout=60)
        log.close()
        WATCH.collect(tmp_path / "run.log")
    output = (tmp_path / "run.log").read_text()
    assert "embedded filesystem broker" in output
    assert "Generated a new root key" in output
    assert "Console sign-in: user 'admin', password" in output
    assert "Stopped web, worker and beat." in output
    with pytest.raises(urllib3.exceptions.HTTPError):
        urllib3.request("GET", f"http://127.0.0.1:{port}/healthz", retries=False, timeout=2)
