from django.apps import AppConfig
from django.db.models.signals import post_migrate


class GenerationsConfig(AppConfig):
    """Generation counters that tell every process when what it cached for the KMS request path is stale."""

    name = "kmsconsole.generations"
    label = "generations"

    def ready(self) -> None:
        from kmsconsole.generations.triggers import on_post_migrate

        # After every migrate (of any app), so tables that a migration rebuilt get their triggers back.
        post_migrate.connect(on_post_migrate, dispatch_uid="kmsconsole.generations.triggers")
