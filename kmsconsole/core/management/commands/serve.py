"""`python manage.py serve`: run the whole service (granian web server, Celery worker, Celery beat) in the
foreground, and stop all three on Ctrl-C or SIGTERM. `make run` calls it after migrating and bootstrapping. It
collects the static files first when they are missing or older than their sources (kmsconsole.core.staticfiles).

The worker and beat are started again when they exit (after a backoff that grows while they keep failing): they
ride out a broker outage by themselves, but a crash or an out-of-memory kill of either must not take the KMS
endpoint down with it, nor leave deletions, rotations and grant propagation silently stopped. If the web server
exits, everything stops (with status 1), as there is nothing left to serve.

The broker is decided here, once, and handed to the three processes: Redis when REDIS_URL answers, otherwise
the embedded filesystem broker under KMS_DATA_DIR.

Stopping: the web server runs in a process group of its own, so that its worker processes are stopped by granian
alone, with one SIGTERM each. Ctrl-C signals the terminal's whole process group: a granian worker then received
the terminal's SIGINT and, a moment later, granian's SIGTERM, and sometimes missed both (py-spy: its main thread
still waiting in granian's `_main` for the shutdown event, with or without requests served, the application's own
threads not involved; the same with a hello-world WSGI app), so it was killed after granian's kill timeout of 20 s,
the moment `serve` gave up on granian too, which could leave that worker behind holding the port. The web server
is told to stop by `serve` (SIGTERM), and by the kernel if `serve` itself dies (PR_SET_PDEATHSIG, set by
kmsconsole/core/orphan_guard.py before the command runs), so it is never left behind; `serve` waits longer than
granian's kill timeout, so granian always reaps its workers. The worker and beat stay in `serve`'s group, and are
started through the same guard: a SIGKILL of `serve` alone leaves no worker, nor a beat that a new `serve` would
run beside.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from kmsconsole.core.orphan_guard import wrapped
from kmsconsole.core.startup import refuse_insecure_start
from kmsconsole.core.staticfiles import collect_static_if_needed
from kmsconsole.core.webserver import WEB_WORKERS_KILL_SECONDS, web_server_command

logger = logging.getLogger("kmsconsole.serve")

# granian kills a worker that has not stopped after WEB_WORKERS_KILL_SECONDS (kmsconsole.core.webserver); `serve`
# waits longer than that for the whole service, so that granian always reaps its own workers.
_STOP_GRACE_SECONDS = WEB_WORKERS_KILL_SECONDS + 10
# The processes started again when they exit; the delay doubles from the first to the last while they keep
# exiting, and starts over once one has run RESTART_RESET_SECONDS.
RESTARTED = frozenset({"worker", "beat"})
RESTART_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
RESTART_RESET_SECONDS = 60.0


def redis_answers(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        return bool(client.ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def choose_broker() -> str:
    url: str = settings.REDIS_URL
    if url and redis_answers(url):
        logger.info("Celery broker: Redis at %s", url.split("@")[-1])
        return url
    reason = "REDIS_URL is not set" if not url else "Redis at REDIS_URL does not answer"
    logger.warning(
        "Celery broker: the embedded filesystem broker in %s (%s).", settings.KMS_BROKER_DIR, reason
    )
    for folder in ("queue", "processed", "control"):
        (settings.KMS_BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
    return "filesystem://"


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and Celery beat until interrupted."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--workers",
            type=int,
            default=int(os.environ.get("KMS_WEB_WORKERS", "2")),
            help="web server processes (KMS_WEB_WORKERS, default 2)",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=int(os.environ.get("KMS_WEB_THREADS", "8")),
            help="application threads per web server process (KMS_WEB_THREADS, default 8)",
        )
        parser.add_argument(
            "--access-log",
            action=argparse.BooleanOptionalAction,
            default=os.environ.get("KMS_ACCESS_LOG", "true").strip().lower()
            not in ("0", "false", "no", "off"),
            help="the access log on standard output (KMS_ACCESS_LOG, default on)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Here too, not only in each web process: granian starts a worker that fails to load the application
        # again, so a refused configuration must stop the service before the web server is started.
        refuse_insecure_start()
        # Every console page names its static files through the manifest: without `collectstatic` each one is a
        # 500. Collected here (only when missing or stale), so `manage.py serve` alone is enough.
        collect_static_if_needed()
        env = dict(os.environ, KMS_BROKER_URL=choose_broker(), DJANGO_SETTINGS_MODULE="kmsconsole.settings")
        # Each web worker takes its share of the rate limits (kmsconsole.core.ratelimit.per_worker).
        env["KMS_WEB_WORKERS"] = str(options["workers"])
        # And knows how many threads it has (kmsconsole.core.bodyreads lets a quarter of them wait).
        env["KMS_WEB_THREADS"] = str(options["threads"])
        bind = f"{settings.KMS_HOST}:{settings.KMS_PORT}"
        python = sys.executable
        commands = {
            "web": web_server_command(
                host=settings.KMS_HOST,
                port=settings.KMS_PORT,
                processes=options["workers"],
                threads=options["threads"],
                access_log=options["access_log"],
            ),
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "kmsconsole",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                "--without-gossip",
                "--without-mingle",
            ],
            "beat": [
                python,
                "-m",
                "celery",
                "-A",
                "kmsconsole",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                settings.CELERY_BEAT_SCHEDULE_FILENAME,
            ],
        }
        processes: dict[str, subprocess.Popen[bytes]] = {}
        stopping = False

        def stop(signum: int, _frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)

        def start(name: str) -> None:
            # The web server in a group of its own: only granian signals its workers (see the module docstring);
            # it reads nothing, and a background group must not touch the terminal. Started from this (main)
            # thread: the kernel's signal comes when the thread that started a process exits.
            alone: dict[str, Any] = {"process_group": 0, "stdin": subprocess.DEVNULL} if name == "web" else {}
            processes[name] = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments, no shell
                wrapped(commands[name]), env=env, cwd=settings.BASE_DIR, **alone
            )
            started_at[name] = time.monotonic()

        started_at: dict[str, float] = {}
        failures: dict[str, int] = {}  # consecutive early exits, per process
        restart_at: dict[str, float] = {}
        for name in commands:
            start(name)
        logger.info("Serving the KMS endpoint and console on http://%s/ (Ctrl-C stops everything)", bind)
        exit_code = 0
        while not stopping:
            now = time.monotonic()
            for name, process in processes.items():
                if process.poll() is None or stopping:
                    continue
                if name not in RESTARTED:
                    logger.error(
                        "The %s process exited with status %s; stopping the others.", name, process.returncode
                    )
                    stopping, exit_code = True, 1
                elif name not in restart_at:
                    ran = now - started_at[name]
                    failures[name] = 0 if ran >= RESTART_RESET_SECONDS else failures.get(name, 0) + 1
                    delay = RESTART_DELAYS[min(failures[name], len(RESTART_DELAYS) - 1)]
                    logger.error(
                        "The %s process exited with status %s after %.0f s; starting it again in %.0f s.",
                        name,
                        process.returncode,
                        ran,
                        delay,
                    )
                    restart_at[name] = now + delay
            for name, due in list(restart_at.items()):
                if not stopping and now >= due:
                    del restart_at[name]
                    start(name)
            time.sleep(0.3)
        self._stop_all(processes)
        raise SystemExit(exit_code)

    def _stop_all(self, processes: dict[str, subprocess.Popen[bytes]]) -> None:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_SECONDS
        for name, process in processes.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("The %s process did not stop in time; killing it.", name)
                process.kill()
                process.wait()
        logger.info("Stopped web, worker and beat.")
