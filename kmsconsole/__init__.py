"""kmsconsole: a self-hosted key management service compatible with AWS KMS."""

from kmsconsole.celery import app as celery_app

__all__ = ["celery_app"]
