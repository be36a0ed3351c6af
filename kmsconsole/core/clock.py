"""Service time units that settings may shorten for demos and tests."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings


def days(count: int) -> timedelta:
    """`count` days of a deletion window or rotation period; a day lasts KMS_DAY_SECONDS (86400 unless shortened)."""
    return timedelta(seconds=count * settings.KMS_DAY_SECONDS)
