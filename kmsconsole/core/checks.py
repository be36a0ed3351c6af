"""Start-up checks: production misconfiguration fails loudly (DESIGN.md, Settings)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

from kmsconsole.core.rootkey import HOW_TO_CREATE, find_root_key


@register(Tags.security)
def root_key_configured(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    try:
        key = find_root_key()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="kmsconsole.E001")]
    if key is None and not settings.DEBUG:
        return [Error(HOW_TO_CREATE, id="kmsconsole.E001")]
    return []


@register(Tags.security)
def secret_key_configured(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    if settings.SECRET_KEY == settings.INSECURE_SECRET_KEY_DEFAULT and not settings.DEBUG:
        return [
            Error(
                "SECRET_KEY is the insecure default. Set SECRET_KEY or SECRET_KEY_FILE, or run "
                "`python manage.py rootkey init`, which also creates KMS_DATA_DIR/secret.key.",
                id="kmsconsole.E002",
            )
        ]
    return []
