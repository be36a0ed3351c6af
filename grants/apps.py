from django.apps import AppConfig


class GrantsConfig(AppConfig):
    """Grants on KMS keys (CreateGrant, RetireGrant, RevokeGrant, eventual consistency)."""

    name = "grants"

    def ready(self) -> None:
        from grants import (
            checks,  # noqa: F401 - registers the database check of integrated-service bindings
            rootkey_dependents,  # noqa: F401 - registers what the app keeps under a root key
        )
