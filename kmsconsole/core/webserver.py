"""The web server: granian (HTTP in Rust, the WSGI application on a pool of Python threads per process), and the
one command line for it. `manage.py serve` runs it; the tests that need a real server process start the same.

Why granian and not gunicorn (issue 9, measured on the 2-core reference machine with `manage.py bench kms`):
HTTP parsing, keep-alive and idle connections are handled in Rust, off the GIL. A hello-world WSGI app cost
gunicorn's gthread workers 0.19 ms of CPU per request (7,474 requests/s on two cores) and granian 0.04 ms
(25,738 requests/s); with this application, Encrypt went from 888-918 requests/s (gunicorn 2 x 4, p99 39 ms) to
1,192-1,249 (granian 2 x 8, p99 28-31 ms), in interleaved runs. Connections that send nothing, or an incomplete
request head, hold no thread: twelve of them left a request waiting 0.16 s, where gunicorn stopped answering
for more than 30 s. (uWSGI was faster still but keeps a thread on each idle keep-alive connection.)

A worker process that dies is started again (`--respawn-failed-workers`); one that fails while loading the
application (`kmsconsole.core.startup` refusing a configuration) stops the server at start, before any respawn.

The access log is the application's (kmsconsole.core.accesslog): granian's cost a tenth of a worker's CPU.
"""

from __future__ import annotations

import sys

# How long granian lets a worker finish its requests when stopping before it kills it.
WEB_WORKERS_KILL_SECONDS = 10


def web_server_command(*, host: str, port: int, processes: int, threads: int, access_log: bool) -> list[str]:
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "wsgi",
        "--host",
        host,
        "--port",
        str(port),
        "--http",
        "1",  # HTTP/1.1 only: what AWS SDKs, browsers and proxies speak to it; no HTTP/2 surface
        "--no-ws",
        "--workers",
        str(processes),
        "--blocking-threads",
        str(threads),
        "--respawn-failed-workers",
        "--respawn-interval",
        "1",
        "--workers-kill-timeout",
        # `serve` waits longer than this for the whole service, so granian always reaps its own workers.
        str(WEB_WORKERS_KILL_SECONDS),
        # The application writes the access log itself, off the request's thread (kmsconsole.core.accesslog).
        "--no-access-log",
        "kmsconsole.wsgi:application" if access_log else "kmsconsole.wsgi:application_without_access_log",
    ]
