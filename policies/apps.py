from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    """Principals (accounts, users, roles, groups, sessions, access keys), identity and key policies, the engine."""

    name = "policies"

    def ready(self) -> None:
        from policies import (
            rootkey_dependents,  # noqa: F401 - registers what the app keeps under a root key
            session_tokens,  # noqa: F401 - registers "session token digests" (rootkey)
        )
