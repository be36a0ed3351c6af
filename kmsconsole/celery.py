"""The Celery application: worker and beat read their configuration from Django settings (CELERY_*)."""

import os
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kmsconsole.settings")

app = Celery("kmsconsole")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# How long a request may wait for the broker before it gives up on a message (the sweepers make up for it).
PUBLISH_CONNECT_TIMEOUT_SECONDS = 2


def publish_or_skip(task: Any, args: tuple[Any, ...] = (), **options: Any) -> bool:
    """Send `task` if the broker answers now; False (logged by the caller) if it does not.

    For the messages a request sends after its commit, which only make the workers prompt: the database holds
    the due work and a beat sweeper finds it anyway (DESIGN.md, Workers). `apply_async(retry=False)` alone is not
    enough: kombu still retries *connecting* without limit, so with Redis down the request thread would hang.
    Here the connection is tried once, with a short timeout.
    """
    transport_options = {
        **(app.conf.broker_transport_options or {}),
        "socket_connect_timeout": PUBLISH_CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": PUBLISH_CONNECT_TIMEOUT_SECONDS,
    }
    try:
        with app.connection_for_write(
            connect_timeout=PUBLISH_CONNECT_TIMEOUT_SECONDS, transport_options=transport_options
        ) as connection:
            connection.ensure_connection(max_retries=0)
            task.apply_async(args, connection=connection, retry=False, **options)
    except Exception:  # any broker failure: the caller's sweeper covers it
        return False
    return True
