from django.apps import AppConfig


class KeysConfig(AppConfig):
    """KMS keys: the pure crypto core (keys/crypto) and the services that use it."""

    name = "keys"

    def ready(self) -> None:
        from keys import rootkey_dependents  # noqa: F401 - registers what the app keeps under a root key
