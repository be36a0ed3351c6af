from django.apps import AppConfig


class KeysConfig(AppConfig):
    """KMS keys: the pure crypto core (keys/crypto) and the services that use it."""

    name = "keys"
