from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Cross-cutting pieces: errors, the root key, request identity, start-up checks, the landing pages."""

    name = "kmsconsole.core"
    label = "core"

    def ready(self) -> None:
        from kmsconsole.core import checks  # noqa: F401 - registers the system checks
