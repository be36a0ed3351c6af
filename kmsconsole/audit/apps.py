from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The append-only, hash-chained audit trail."""

    name = "kmsconsole.audit"
    label = "audit"

    def ready(self) -> None:
        # The trail's anchors under a root key, for `rootkey status`, `reseal` and `retire`.
        from kmsconsole.audit import rootkeys  # noqa: F401
