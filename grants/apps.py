from django.apps import AppConfig


class GrantsConfig(AppConfig):
    """Grants on KMS keys (CreateGrant, RetireGrant, RevokeGrant, eventual consistency)."""

    name = "grants"
