"""moto's KMS server under gunicorn, for `bench kms --compare-moto`.

moto keeps its state in process memory, so with two gunicorn workers a key created over HTTP would exist in one
worker only. This module is therefore also the WSGI entry point: loaded once in the gunicorn master
(`--preload`), it creates the keys the run needs before the workers fork, and writes their ids to the file named
by KMS_BENCH_MOTO_KEYS_FILE, so every worker knows them. moto checks no signature, so any credentials work.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MOTO_ACCOUNT_ID = "123456789012"
KEYS_FILE_ENV = "KMS_BENCH_MOTO_KEYS_FILE"
REGION_ENV = "KMS_BENCH_MOTO_REGION"


def _create_application() -> Any:
    from moto.kms.models import kms_backends
    from moto.moto_server.werkzeug_app import create_backend_app

    from kmsconsole.bench.loadgen import KEY_SPECS

    backend = kms_backends[MOTO_ACCOUNT_ID][os.environ.get(REGION_ENV, "us-east-1")]
    key_ids = {}
    for spec, usage in set(KEY_SPECS.values()):
        key = backend.create_key(
            policy=None, key_usage=usage, key_spec=spec, description="bench kms --compare-moto", tags=None
        )
        key_ids[spec] = key.id
    Path(os.environ[KEYS_FILE_ENV]).write_text(json.dumps(key_ids), encoding="utf-8")
    return create_backend_app("kms")


def _not_configured(environ: dict[str, Any], start_response: Any) -> Any:
    raise RuntimeError("kmsconsole.bench.moto is run by gunicorn with KMS_BENCH_MOTO_KEYS_FILE set")


# The WSGI app: built (with its keys) only when gunicorn loads this module for a run.
application = _create_application() if os.environ.get(KEYS_FILE_ENV) else _not_configured


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class MotoServer:
    """moto's KMS server under gunicorn with `workers` workers of `worker_class` (gthread with 4 threads, a
    threaded server like ours, or sync, gunicorn's default), on a free local port. A context manager: stopped
    on exit."""

    def __init__(self, *, workers: int, worker_class: str, region: str, keys_file: Path) -> None:
        self.workers, self.worker_class, self.region, self.keys_file = (
            workers,
            worker_class,
            region,
            keys_file,
        )
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.key_ids: dict[str, str] = {}

    def __enter__(self) -> MotoServer:
        self.keys_file.unlink(missing_ok=True)
        env = dict(os.environ, **{KEYS_FILE_ENV: str(self.keys_file), REGION_ENV: self.region})
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "kmsconsole.bench.moto:application",
            "--preload",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--worker-class",
            self.worker_class,
            *(["--threads", "4"] if self.worker_class == "gthread" else []),
            "--log-level",
            "warning",
        ]
        self.process = subprocess.Popen(command, env=env)  # noqa: S603 - our own interpreter and arguments
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto's server exited with status {self.process.returncode}")
            if self.keys_file.exists() and self._answers():
                self.key_ids = json.loads(self.keys_file.read_text(encoding="utf-8"))
                time.sleep(0.5)  # let every worker boot, not only the first that answered
                return self
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("moto's server did not start within 60 s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.keys_file.unlink(missing_ok=True)
