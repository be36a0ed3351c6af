from django.apps import AppConfig


class GrantsConfig(AppConfig):
    """Grants on KMS keys (CreateGrant, RetireGrant, RevokeGrant, eventual consistency)."""

    name = "grants"

    def ready(self) -> None:
        from grants import checks  # noqa: F401 - registers the database check of integrated-service bindings
