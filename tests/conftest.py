"""Shared fixtures and personas: an admin (Allow * on *), a random-user (only kms:GenerateRandom), an outsider
(no policies), a role with a session. Principals are created through the same services the CLI uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from django.conf import settings
from django.db import connection

from kmsconsole.audit.recorder import AuditRecord
from kmsconsole.core import ratelimit
from kmsconsole.core.context import RequestMeta, operator_caller
from kmsconsole.core.rootkey import create_root_key_file, root_key
from kmsconsole.operations import OPERATIONS, OperationContext, perform
from policies import services
from policies.models import Account
from tests.secrets_watch import (
    WATCH,
    audit_texts,
    collect_every_log_record,
    on_task_publish,
    register_result,
    watch_boto3_client,
    watch_every_answer,
)

REPO = Path(__file__).resolve().parent.parent


# Tests of what only PostgreSQL does (the one-statement audit batch, concurrent writers' row locks); CI runs the
# suite on PostgreSQL, the embedded default is SQLite.
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")


def pytest_configure(config: pytest.Config) -> None:
    # The test data dir gets its own root key the first time (mode 0600, like a real start), and the
    # embedded broker its folders (used when REDIS_URL is not set).
    create_root_key_file()
    for folder in ("queue", "processed", "control"):
        (settings.KMS_BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    # The secrets watch (tests/secrets_watch.py): the root key is always a secret; every log record, every
    # Celery message published and every answer the service gives in this process is collected for the scan at
    # the end of each test.
    key = root_key()
    WATCH.register(key, key.hex(), permanent=True)
    collect_every_log_record()
    watch_every_answer()
    from celery.signals import before_task_publish

    before_task_publish.connect(on_task_publish, weak=False)


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> None:
    """Every test starts with no failed authentication counted and full quotas (the counts live in process
    memory, kmsconsole.core.ratelimit, and would otherwise carry over between tests of one worker)."""
    ratelimit.reset()


@pytest.fixture(autouse=True)
def no_secret_leaves(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test if a secret it handled reached a log, the audit trail, an error message or the broker."""
    uses_db = "_django_db_helper" in request.fixturenames
    if uses_db:
        # Set up the database first, so its teardown (a rollback or a flush) comes after this scan.
        request.getfixturevalue("_django_db_helper")
    WATCH.reset()
    yield
    leaks = WATCH.leaks(audit_texts() if uses_db else ())
    WATCH.reset()
    assert not leaks, "\n".join(leaks)


ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
ALLOW_RANDOM = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kms:GenerateRandom", "Resource": "*"}],
    }
)


def encrypt_only_over_tls_policy() -> str:
    """A key policy: the account root may do anything, and nobody may Encrypt without secure transport (for the
    tests of what counts as secure transport, aws:SecureTransport)."""
    root = f"arn:aws:iam::{settings.KMS_ACCOUNT_ID}:root"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Admin",
                    "Effect": "Allow",
                    "Principal": {"AWS": root},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "NoPlainHttp",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "kms:Encrypt",
                    "Resource": "*",
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        }
    )


def as_operator(operation: str, work: Callable[[Any], Any], **params: Any) -> Any:
    """Run a principals service the way `manage.py iam` does: through perform(), as the local operator."""
    holder: dict[str, Any] = {}

    def service(ctx: Any) -> dict[str, Any]:
        holder["result"] = work(ctx)
        return {}

    perform(
        operation,
        caller=operator_caller(settings.KMS_ACCOUNT_ID, "tests"),
        meta=RequestMeta(interface="cli"),
        params=params,
        service=service,
    )
    # A new access key's secret, an API token, a grant token: the test holds it now.
    register_result(holder["result"])
    return holder["result"]


def operator_context(operation: str, *, dry_run: bool = False) -> OperationContext:
    """The context of `operation` run by the local operator, for a test that calls a service's helper (such as
    `keys.materials.open_material`) directly, recorded nowhere."""
    meta = RequestMeta(interface="cli")
    return OperationContext(
        operation=OPERATIONS[operation],
        caller=operator_caller(settings.KMS_ACCOUNT_ID, "tests"),
        meta=meta,
        audit=AuditRecord(operation=operation, meta=meta),
        dry_run=dry_run,
    )


@dataclass(frozen=True)
class Persona:
    name: str
    arn: str
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


@pytest.fixture
def account(db: None) -> Account:
    return as_operator(
        "iam:CreateAccount", lambda ctx: services.account_create(ctx=ctx, account_id=settings.KMS_ACCOUNT_ID)
    )


def create_user(account: Account, name: str, *policies: str) -> Persona:
    """An IAM user with inline identity policies and an access key, created the way `manage.py iam` does."""
    user = as_operator(
        "iam:CreateUser", lambda ctx: services.user_create(ctx=ctx, account=account, user_name=name)
    )
    for index, document in enumerate(policies):
        as_operator(
            "iam:PutUserPolicy",
            lambda ctx, d=document, i=index: services.identity_policy_put(
                ctx=ctx, owner=user, policy_name=f"policy-{i}", document=d
            ),
        )
    key = as_operator(
        "iam:CreateAccessKey",
        lambda ctx: services.access_key_create(ctx=ctx, account=account, user_name=name),
    )
    WATCH.register(key.secret_access_key)
    return Persona(name, user.arn, key.access_key_id, key.secret_access_key)


@pytest.fixture
def make_user(account: Account) -> Callable[..., Persona]:
    def make(name: str, *policies: str) -> Persona:
        return create_user(account, name, *policies)

    return make


PARTNER_ACCOUNT = "444455556666"


@pytest.fixture
def partner(account: Account) -> Callable[..., Persona]:
    """Principals of a second account (444455556666): `partner("name", *policies)` makes a user, `partner(None)`
    gives its root an access key."""

    def make(name: str | None, *policies: str) -> Persona:
        other = Account.objects.filter(account_id=PARTNER_ACCOUNT).first() or as_operator(
            "iam:CreateAccount", lambda ctx: services.account_create(ctx=ctx, account_id=PARTNER_ACCOUNT)
        )
        if name is not None:
            return create_user(other, name, *policies)
        created = as_operator(
            "iam:CreateAccessKey",
            lambda ctx: services.access_key_create(ctx=ctx, account=other, user_name=None),
        )
        WATCH.register(created.secret_access_key)
        return Persona("partner-root", other.root_arn, created.access_key_id, created.secret_access_key)

    return make


@pytest.fixture
def admin(make_user: Callable[..., Persona]) -> Persona:
    return make_user("admin", ALLOW_ALL)


@pytest.fixture
def random_user(make_user: Callable[..., Persona]) -> Persona:
    return make_user("random-user", ALLOW_RANDOM)


@pytest.fixture
def outsider(make_user: Callable[..., Persona]) -> Persona:
    return make_user("outsider")


@pytest.fixture
def role_session(account: Account) -> Callable[..., Persona]:
    def make(role_name: str = "app", *policies: str, seconds: int | None = None) -> Persona:
        role = as_operator(
            "iam:CreateRole", lambda ctx: services.role_create(ctx=ctx, account=account, role_name=role_name)
        )
        for index, document in enumerate(policies):
            as_operator(
                "iam:PutRolePolicy",
                lambda ctx, d=document, i=index: services.identity_policy_put(
                    ctx=ctx, owner=role, policy_name=f"policy-{i}", document=d
                ),
            )
        creds = as_operator(
            "sts:AssumeRole",
            lambda ctx: services.role_assume(
                ctx=ctx,
                account=account,
                role_name=role_name,
                session_name="session-1",
                duration_seconds=seconds,
            ),
        )
        WATCH.register(creds.secret_access_key, creds.session_token)
        return Persona(
            role_name,
            creds.assumed_role_arn,
            creds.access_key_id,
            creds.secret_access_key,
            creds.session_token,
        )

    return make


@pytest.fixture
def kms_client(live_server: Any) -> Callable[..., Any]:
    """A real boto3 KMS client pointed at the live test server, signing as `persona`."""

    def make(persona: Persona, **overrides: Any) -> Any:
        WATCH.register(persona.secret_access_key, persona.session_token)
        return watch_boto3_client(
            boto3.client(
                "kms",
                endpoint_url=live_server.url,
                region_name=overrides.pop("region_name", settings.KMS_REGION),
                aws_access_key_id=overrides.pop("access_key_id", persona.access_key_id),
                aws_secret_access_key=overrides.pop("secret_access_key", persona.secret_access_key),
                aws_session_token=overrides.pop("session_token", persona.session_token),
                config=Config(
                    retries=overrides.pop("retries", {"max_attempts": 1, "mode": "standard"}), **overrides
                ),
            )
        )

    return make


class WorkerProcesses:
    """Real `celery worker` processes on the suite's broker and database, consuming a queue of the test's own
    (so no other test's worker takes its tasks). Send tasks with `task.apply_async(queue=workers.queue)`."""

    def __init__(self) -> None:
        self.queue = f"test-{uuid.uuid4().hex[:12]}"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, *, threads: int = 2, **extra_env: str) -> subprocess.Popen[bytes]:
        from django.db import connection

        from kmsconsole.celery import app

        db = connection.settings_dict
        if connection.vendor == "sqlite":
            database_url = f"sqlite:///{db['NAME']}"
        else:
            database_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        env = dict(
            os.environ,
            DATABASE_URL=database_url,
            KMS_BROKER_URL=app.conf.broker_url,
            DJANGO_SETTINGS_MODULE="tests.settings",
            **extra_env,
        )
        # Its output goes to a file the secrets watch reads (a pipe nobody reads would also block it when full).
        log = Path(settings.KMS_DATA_DIR) / "test-logs" / f"{self.queue}-{len(self.processes)}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "kmsconsole", "worker", "--pool", "threads",
                 "--concurrency", str(threads), "--queues", self.queue, "--loglevel", "WARNING",
                 "--without-gossip", "--without-mingle", "--without-heartbeat",
                 "--hostname", f"{self.queue}-{len(self.processes)}@%h"],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        WATCH.follow(log, f"the output of worker {self.queue}-{len(self.processes)}")
        self.processes.append(worker)
        self.logs.append(log)
        return worker

    def output(self) -> str:
        return "\n".join(log.read_text(errors="replace") for log in self.logs if log.exists())

    def stop(self) -> None:
        for worker in self.processes:
            if worker.poll() is None:
                worker.terminate()
            worker.wait(timeout=30)
        for log in self.logs:
            WATCH.collect(log)
            log.unlink(missing_ok=True)


@pytest.fixture
def real_worker() -> Iterator[WorkerProcesses]:
    workers = WorkerProcesses()
    yield workers
    workers.stop()


class RootKeyFile:
    """A root key file of the test's own (KMS_ROOT_KEY_FILE), starting with the suite's root key as the only one,
    so rows made before the test still open. `rotate()` and `write()` change it and make this process read it
    again, as `rootkey rotate` and a restart would; other tests and processes keep the suite's file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.write(root_key().hex())

    def write(self, text: str) -> None:
        from kmsconsole.core.rootkey import reload_root_keys

        self.path.write_text(text if text.endswith("\n") else text + "\n")
        self.path.chmod(0o600)
        for line in text.replace(",", "\n").splitlines():
            WATCH.register(line.strip().removeprefix("retired:"))
        reload_root_keys()

    def rotate(self) -> str:
        """Put a new current key in front of the others; returns its id."""
        import secrets as random

        from kmsconsole.core.rootkey import root_keys

        self.write(random.token_hex(32) + "\n" + self.path.read_text())
        return root_keys().current.key_id


@pytest.fixture
def root_key_file(settings: Any, tmp_path: Path) -> Iterator[RootKeyFile]:
    from kmsconsole.core.rootkey import reload_root_keys

    original = settings.KMS_ROOT_KEY_FILE
    settings.KMS_ROOT_KEY_FILE = str(tmp_path / "root.key")
    try:
        yield RootKeyFile(tmp_path / "root.key")
    finally:
        settings.KMS_ROOT_KEY_FILE = original
        reload_root_keys()
