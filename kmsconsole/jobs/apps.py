from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Background work: worker heartbeats and the record of every periodic job run."""

    name = "kmsconsole.jobs"
    label = "jobs"

    def ready(self) -> None:
        from celery.signals import worker_init

        from kmsconsole.core.startup import refuse_insecure_start

        worker_init.connect(lambda **_: refuse_insecure_start(), weak=False)
