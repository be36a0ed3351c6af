"""Test setup that writes protected rows directly (a state no service reaches quickly, such as a due deletion date)
and gives them a fresh row MAC, as a service's write would. Tampering tests use plain `update()` instead."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from policies.models import AccessKey, RoleSession


def update_sealed(queryset: QuerySet[Any], **values: Any) -> int:
    """`queryset.update(**values)`, then the MAC of every updated row recomputed (and of the access keys of
    updated role sessions, whose MAC covers the session)."""
    model = queryset.model
    pks = list(queryset.values_list("pk", flat=True))
    changed = model.objects.filter(pk__in=pks).update(**values)
    rows = (
        AccessKey.objects.filter(session__in=pks)
        if model is RoleSession
        else model.objects.filter(pk__in=pks)
    )
    for row in rows:
        row.save(update_fields=["mac"])
    return changed
