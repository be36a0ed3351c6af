from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "kmsconsole.api"
    label = "api"
    verbose_name = "REST API"

    def ready(self) -> None:
        from kmsconsole.api import (
            rootkey_dependents,  # noqa: F401 - registers what the app keeps under a root key
            schema,  # noqa: F401 - registers the OpenAPI authentication extensions
            token_dependents,  # noqa: F401 - registers "API token digests" (rootkey)
        )
