"""Health probes: /healthz (the process answers) and /readyz (database, broker and a worker are up, and the
console's static files are collected)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from kmsconsole.core.staticfiles import console_static_problem
from kmsconsole.jobs.models import WorkerHeartbeat

_BROKER_TIMEOUT_SECONDS = 2


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database_ok() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return False, type(exc).__name__
    return True, connection.vendor


def _broker_ok() -> tuple[bool, str]:
    from kmsconsole.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=_BROKER_TIMEOUT_SECONDS)
            return True, "connected"
    except Exception as exc:
        return False, type(exc).__name__


def _worker_ok() -> tuple[bool, str]:
    try:
        latest = WorkerHeartbeat.objects.order_by("-seen_at").first()
    except Exception as exc:
        return False, type(exc).__name__
    if latest is None:
        return False, "no worker has reported"
    age = timezone.now() - latest.seen_at
    if age > timedelta(seconds=settings.KMS_WORKER_STALE_SECONDS):
        return False, f"last heartbeat {int(age.total_seconds())}s ago"
    return True, f"last heartbeat {int(age.total_seconds())}s ago"


def _static_ok() -> tuple[bool, str]:
    # Without the manifest every console page is a 500, although the KMS endpoint answers.
    problem = console_static_problem()
    return (False, problem) if problem else (True, "collected")


@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": _database_ok(),
        "broker": _broker_ok(),
        "worker": _worker_ok(),
        "static": _static_ok(),
    }
    ready = all(ok for ok, _ in checks.values())
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {name: {"ok": ok, "detail": detail} for name, (ok, detail) in checks.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)
