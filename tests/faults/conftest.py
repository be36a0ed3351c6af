"""Fault injection against real services: a private PostgreSQL cluster, a private Redis and the service itself,
all started here as subprocesses on free ports, so a test may restart, stop or kill them.

The machine's shared PostgreSQL (5432) and Redis (6379) are used by the rest of the suite and by other people's
runs: nothing here ever touches them. Each pytest process (each xdist worker) that runs a test of this folder
initialises its own cluster once (`initdb` as the `postgres` user when run as root, which initdb refuses), migrates
and bootstraps a template database, and gives each test a copy of it (`CREATE DATABASE … TEMPLATE`), its own data
dir and, when asked, its own Redis and service processes. Every process is stopped in a `finally`, by its id.
Service logs are printed after each test (pytest shows them with a failure); KMS_FAULTS_KEEP=1 keeps the
cluster's folder (and its postgres.log) for a post-mortem.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
import urllib3
from botocore.config import Config

from kmsconsole.core.webserver import WEB_WORKERS_KILL_SECONDS, web_server_command
from tests.secrets_watch import WATCH, watch_boto3_client

REPO = Path(__file__).resolve().parents[2]
ACCOUNT_ID = "111122223333"
REGION = "us-east-1"
# Environment a service process must not inherit from the test process (tests.settings sets some of them).
_SCRUBBED = {
    "DATABASE_URL", "REDIS_URL", "KMS_BROKER_URL", "SECRET_KEY", "SECRET_KEY_FILE", "KMS_ROOT_KEY",
    "KMS_ROOT_KEY_FILE", "DJANGO_SETTINGS_MODULE", "KMS_DATA_DIR", "DEBUG", "KMS_PORT", "KMS_HOST",
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str = "") -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what or check} (last error: {last_error!r})"
    )


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (state, ppid, pgrp, session, ...), None once gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def session_processes(session: int) -> list[int]:
    """The running processes of `session`, whatever their process group or parent. A process started with
    start_new_session=True has its pid as session id, and so have all its descendants: `serve`'s web server, in a
    process group of its own, too, and after `serve` is gone (reparented)."""
    found = []
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and fields[0] != "Z" and int(fields[3]) == session:
            found.append(int(entry.name))
    return found


def end_session(session: int, *, grace: float = WEB_WORKERS_KILL_SECONDS + 5) -> None:
    """Wait for what is left of a service's session to stop, then SIGKILL it. The web server of `serve` is in a
    process group of its own, which no killpg of `serve`'s group reaches: `serve` stopped it, or the kernel is
    stopping it (PR_SET_PDEATHSIG) if `serve` was killed, and granian may take up to its workers' kill timeout to
    reap them. No test leaves a process behind holding a port or a database."""
    deadline = time.monotonic() + grace
    while session_processes(session) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in session_processes(session):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def stop_process_group(process: subprocess.Popen[Any], *, grace: float = 20) -> None:
    """SIGTERM a process started with start_new_session=True, SIGKILL its group if it lingers, then end its
    session (the web server's group of its own included)."""
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # Stragglers of the group: the Celery worker's pool children, or beat; not `serve`'s web server (its own
        # group), which end_session waits for.
        os.killpg(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.wait(timeout=10)
    end_session(process.pid)


# --- PostgreSQL -------------------------------------------------------------------------------------------


def postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise AssertionError(
            "No PostgreSQL server binaries under /usr/lib/postgresql/*/bin: .ci/run installs Debian's postgresql"
        )
    return found[-1].parent


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1:<port> with trust authentication, controlled with pg_ctl."""

    def __init__(self, root: Path) -> None:
        self.bin = postgres_bin()
        self.root = root
        self.data = root / "pgdata"
        self.log = root / "postgres.log"
        self.port = free_port()
        self._run_as: dict[str, int] = {}
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            owner = pwd.getpwnam("postgres")
            self._run_as = {"user": owner.pw_uid, "group": owner.pw_gid}
            os.chown(root, owner.pw_uid, owner.pw_gid)

    def _tool(self, name: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin / name), *args],
            capture_output=True, text=True, timeout=timeout, cwd=self.root, **self._run_as,  # type: ignore[call-overload]
        )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(
                f"{name} {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def init(self) -> None:
        self._tool("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{self.root}' "
            "-c fsync=off -c full_page_writes=off -c max_connections=60"
        )
        self._tool(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._tool("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def kill(self) -> None:
        """Last-resort cleanup: SIGQUIT (immediate shutdown) to the postmaster this cluster started."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname=database,
            autocommit=True,
            connect_timeout=5,
        )

    def accepts(self) -> bool:
        try:
            with self.connect() as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False


# --- Redis ----------------------------------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server on 127.0.0.1:<port> keeping nothing on disk; stop() kills it, start() brings it back."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise AssertionError("redis-server is not installed (Debian's redis-server package)")
        log = (self.root / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.root)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        wait_until(self.answers, timeout=20, what=f"redis on port {self.port}")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


# --- The cluster every test of one pytest process shares, with a migrated, bootstrapped template ----------------


@dataclass(frozen=True)
class AccessKey:
    user: str
    access_key_id: str
    secret_access_key: str


@dataclass
class Cluster:
    postgres: PrivatePostgres
    root: Path
    template_data_dir: Path
    keys: dict[str, AccessKey] = field(default_factory=dict)


TEMPLATE = "kms_template"


def service_env(*, database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(DATABASE_URL=database_url, KMS_DATA_DIR=str(data_dir), LOG_LEVEL="INFO", **extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}"
        )
    return result


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="kms-faults-"))
    postgres = PrivatePostgres(root)
    try:
        postgres.init()
        postgres.start()
        with postgres.connect() as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        data_dir = root / "template-data"
        env = service_env(database_url=postgres.url(TEMPLATE), data_dir=data_dir)
        manage(env, "rootkey", "init")
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "bootstrap")
        manage(env, "collectstatic", "--noinput", "-v", "0")  # as `make run` does; copied into each data dir
        made = Cluster(postgres=postgres, root=root, template_data_dir=data_dir)
        # `iam` subcommands one process each: a grantee (no policies of its own) beside the bootstrap admin.
        manage(env, "iam", "create-user", "--user-name", "grantee")
        for user in ("admin", "grantee"):
            created = json.loads(manage(env, "iam", "create-access-key", "--user-name", user).stdout)[
                "AccessKey"
            ]
            made.keys[user] = AccessKey(user, created["AccessKeyId"], created["SecretAccessKey"])
        yield made
    finally:
        try:
            if postgres.running():
                postgres.stop("immediate")
        except AssertionError:
            postgres.kill()
        if not os.environ.get("KMS_FAULTS_KEEP"):
            shutil.rmtree(root, ignore_errors=True)


# --- One test's world: its database (a copy of the template), data dir, Redis and service ------------------------


class Service:
    """`manage.py serve` (granian + Celery worker + beat), or a lone web server or Celery worker, as a process group
    of its own, logging to a file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        WATCH.follow(log, f"the {name} service's output")  # its logs and access log, for the secrets watch

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (the worker's pool children too), as an OOM kill or a lost host does.
        For `serve`, that group is `serve`, the worker and beat: its web server has a group of its own, which the
        kernel stops when `serve` dies (PR_SET_PDEATHSIG); it is waited for, and killed if it lingers."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        end_session(self.process.pid)
        WATCH.collect(self.log)

    def stop(self) -> None:
        stop_process_group(self.process)
        WATCH.collect(self.log)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class World:
    cluster: Cluster
    root: Path
    database: str
    data_dir: Path
    web_port: int
    redis: PrivateRedis | None = None
    services: list[Service] = field(default_factory=list)

    @property
    def postgres(self) -> PrivatePostgres:
        return self.cluster.postgres

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def env(self, **extra: str) -> dict[str, str]:
        values = {
            "KMS_PORT": str(self.web_port),
            "KMS_HEARTBEAT_SECONDS": "1",
            "KMS_WORKER_STALE_SECONDS": "5",
            "KMS_DAY_SECONDS": "1",  # a 7-day deletion window lasts 7 seconds
            "KMS_GRANT_PROPAGATION_SECONDS": "2",
            "KMS_WEB_WORKERS": "1",
            "KMS_ACCESS_LOG": "false",
        }
        if self.redis is not None:
            values["REDIS_URL"] = self.redis.url
        values.update(extra)
        return service_env(database_url=self.postgres.url(self.database), data_dir=self.data_dir, **values)

    def start_redis(self) -> PrivateRedis:
        self.redis = PrivateRedis(self.root)
        self.redis.start()
        return self.redis

    def serve(self, **extra: str) -> Service:
        """`manage.py serve`, waited for until /readyz answers 200 (database, broker and worker heartbeat)."""
        service = Service(
            "serve", [sys.executable, "manage.py", "serve"], self.env(**extra), self.root / "serve.log"
        )
        self.services.append(service)
        self.wait_ready(service)
        return service

    def web_server(self, **extra: str) -> Service:
        """The web server alone, as `serve` starts it (one process, four threads)."""
        command = web_server_command(
            host="127.0.0.1", port=self.web_port, processes=1, threads=4, access_log=False
        )
        service = Service("web", command, self.env(DJANGO_SETTINGS_MODULE="kmsconsole.settings", **extra),
                          self.root / "web.log")  # fmt: skip
        self.services.append(service)
        wait_until(lambda: self.get("/healthz")[0] == 200, timeout=60, what="web server /healthz")
        return service

    def celery_worker(self, name: str, **extra: str) -> Service:
        """A Celery worker as `serve` starts one (prefork, concurrency 2), on this world's Redis."""
        assert self.redis is not None
        command = [sys.executable, "-m", "celery", "-A", "kmsconsole", "worker", "--loglevel", "INFO",
                   "--concurrency", "2", "--without-gossip", "--without-mingle",
                   "--hostname", f"{name}@%h"]  # fmt: skip
        env = self.env(DJANGO_SETTINGS_MODULE="kmsconsole.settings", KMS_BROKER_URL=self.redis.url, **extra)
        service = Service(name, command, env, self.root / f"{name}.log")
        self.services.append(service)
        return service

    def wait_ready(self, service: Service, timeout: float = 90) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            assert service.alive(), f"{service.name} exited:\n{service.output()[-3000:]}"
            status, body = self.get("/readyz")
            return body if status == 200 else None

        return wait_until(ready, timeout=timeout, interval=0.5, what="/readyz 200")  # type: ignore[no-any-return]

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        try:
            response = urllib3.request("GET", self.endpoint + path, retries=False, timeout=3)
        except urllib3.exceptions.HTTPError:
            return 0, {}
        try:
            return response.status, response.json()
        except ValueError:
            return response.status, {}

    def client(self, user: str = "admin", **config: Any) -> Any:
        key = self.cluster.keys[user]
        options: dict[str, Any] = {
            "retries": {"max_attempts": 1, "mode": "standard"},
            "connect_timeout": 2,
            "read_timeout": 5,
        }
        options.update(config)
        return watch_boto3_client(
            boto3.client(
                "kms",
                endpoint_url=self.endpoint,
                region_name=REGION,
                aws_access_key_id=key.access_key_id,
                aws_secret_access_key=key.secret_access_key,
                config=Config(**options),
            )
        )

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.postgres.connect(self.database) as conn:
            return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]

    def scalar(self, sql: str, *params: Any) -> Any:
        return self.query(sql, *params)[0][0]

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return manage(self.env(DJANGO_SETTINGS_MODULE="kmsconsole.settings"), *args, timeout=timeout)

    def send_task(self, name: str) -> None:
        """Publish a task the way beat does (the beat tick a test does not want to wait for)."""
        from celery import Celery

        assert self.redis is not None
        app = Celery("faults", broker=self.redis.url)
        app.conf.update(
            task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True
        )
        try:
            app.send_task(name)
        finally:
            app.close()

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} ---\n{s.output()[-4000:]}" for s in self.services)


@pytest.fixture
def world(cluster: Cluster) -> Iterator[World]:
    if not cluster.postgres.accepts():  # a test that failed half-way through a restart left it down
        cluster.postgres.start()
    name = f"kms_{uuid.uuid4().hex[:10]}"
    root = Path(tempfile.mkdtemp(prefix="kms-faults-world-"))
    data_dir = root / "data"
    data_dir.mkdir()
    for secret in ("root.key", "secret.key"):
        shutil.copy2(cluster.template_data_dir / secret, data_dir / secret)
    shutil.copytree(cluster.template_data_dir / "static", data_dir / "static")
    with cluster.postgres.connect() as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    made = World(cluster=cluster, root=root, database=name, data_dir=data_dir, web_port=free_port())
    # This world's own root key and access keys are the secrets its services must not print.
    key_text = (data_dir / "root.key").read_text().strip()
    WATCH.register(bytes.fromhex(key_text), key_text)
    WATCH.register(*(key.secret_access_key for key in cluster.keys.values()))
    try:
        yield made
    finally:
        for service in reversed(made.services):
            service.stop()
        print(made.logs())  # captured: pytest shows it with a failure
        if made.redis is not None:
            made.redis.stop()
        try:
            if not cluster.postgres.accepts():
                cluster.postgres.start()
            with cluster.postgres.connect() as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            shutil.rmtree(root, ignore_errors=True)
