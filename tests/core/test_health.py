"""/healthz and /readyz, and a real Celery worker consuming the heartbeat over the configured broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from kmsconsole.celery import app
from kmsconsole.core.staticfiles import collect_static_if_needed
from kmsconsole.jobs.models import WorkerHeartbeat
from kmsconsole.jobs.tasks import heartbeat

REPO = Path(__file__).resolve().parents[2]


def test_healthz(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_503_until_a_worker_reports(client: Any) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] and checks["broker"]["ok"]
    assert checks["worker"] == {"ok": False, "detail": "no worker has reported"}
    heartbeat.apply()
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json()["status"] == "ready"


@pytest.mark.django_db
def test_readyz_reports_a_stale_worker(client: Any, settings: Any) -> None:
    heartbeat.apply()
    settings.KMS_WORKER_STALE_SECONDS = -1
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["checks"]["worker"]["detail"].startswith(
        "last heartbeat"
    )


@pytest.mark.django_db
def test_readyz_reports_a_broker_that_does_not_answer(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    heartbeat.apply()
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False


@pytest.mark.django_db
# WhiteNoise warns, when the test client builds the middleware, that STATIC_ROOT does not exist yet: the state
# this test starts from.
@pytest.mark.filterwarnings("ignore:No directory at:UserWarning")
def test_readyz_reports_static_files_not_collected(client: Any, settings: Any, tmp_path: Path) -> None:
    """Without `collectstatic`, the manifest storage makes every console page a 500: /readyz must not say ready."""
    heartbeat.apply()
    settings.STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    settings.STATIC_ROOT = tmp_path / "static"
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["status"] == "not ready"
    static = response.json()["checks"]["static"]
    assert static["ok"] is False and "manage.py collectstatic --noinput" in static["detail"]
    assert "img/favicon.svg" in static["detail"]
    assert collect_static_if_needed() is True
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json()["checks"]["static"] == {
        "ok": True,
        "detail": "collected",
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_a_real_worker_consumes_the_heartbeat(tmp_path: Path) -> None:
    """Start `celery worker` on the suite's broker (Redis in CI) and database; send it the heartbeat task."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        database_url = f"sqlite:///{db['NAME']}"
    else:
        database_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    broker = app.conf.broker_url
    env = dict(
        os.environ, DATABASE_URL=database_url, KMS_BROKER_URL=broker, DJANGO_SETTINGS_MODULE="tests.settings"
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "kmsconsole", "worker", "--pool", "solo", "--loglevel", "WARNING",
         "--without-gossip", "--without-mingle", "--hostname", f"test-{os.getpid()}@%h"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        heartbeat.delay()
        deadline = time.monotonic() + 60
        while (
            time.monotonic() < deadline
            and not WorkerHeartbeat.objects.filter(hostname__startswith="test-").exists()
        ):
            assert worker.poll() is None, worker.stdout.read().decode() if worker.stdout else ""
            time.sleep(0.3)
        assert WorkerHeartbeat.objects.filter(hostname=f"test-{os.getpid()}@{os.uname().nodename}").exists()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
