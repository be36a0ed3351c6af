from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The append-only, hash-chained audit trail."""

    name = "kmsconsole.audit"
    label = "audit"
