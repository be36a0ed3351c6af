"""Fail the start of a web server or worker on the errors the system checks find (root key, SECRET_KEY).

The web server (granian) and celery do not run Django's system checks, so the processes call this at start-up.
"""

from __future__ import annotations

from django.core import checks
from django.core.exceptions import ImproperlyConfigured


def refuse_insecure_start() -> None:
    problems = [msg for msg in checks.run_checks(tags=[checks.Tags.security]) if msg.is_serious()]
    problems = [msg for msg in problems if msg.id and msg.id.startswith("kmsconsole.")]
    if problems:
        raise ImproperlyConfigured("; ".join(f"{msg.id}: {msg.msg}" for msg in problems))
