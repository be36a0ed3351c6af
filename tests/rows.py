"""Test setup that writes protected rows directly (a state no service reaches quickly, such as a due deletion date)
and gives them a fresh row MAC, as a service's write would. Tampering tests use plain `update()` instead."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Model, QuerySet

from keys.models import Alias, Tag
from kmsconsole.core.rowmac import MacProtectedRow
from policies.models import AccessKey, IdentityPolicy, RoleSession


def _key(row: Any) -> list[MacProtectedRow]:
    return [row.key]


def _owner(row: Any) -> list[MacProtectedRow]:
    return [row.user or row.group or row.role]


# Rows whose parent's MAC covers them (as (name, MAC) pairs): the parent is resealed too.
_PARENTS: dict[type[Model], Callable[[Any], list[MacProtectedRow]]] = {
    Alias: _key,
    Tag: _key,
    IdentityPolicy: _owner,
}


def update_sealed(queryset: QuerySet[Any], **values: Any) -> int:
    """`queryset.update(**values)`, then the MAC of every updated row recomputed (and of the access keys of
    updated role sessions, whose MAC covers the session, and of the parents whose MAC covers updated rows, before
    and after the update)."""
    model = queryset.model
    pks = list(queryset.values_list("pk", flat=True))
    parents_of = _PARENTS.get(model)
    parents = (
        [parent for row in model.objects.filter(pk__in=pks) for parent in parents_of(row)]
        if parents_of
        else []
    )
    changed = model.objects.filter(pk__in=pks).update(**values)
    rows = (
        AccessKey.objects.filter(session__in=pks)
        if model is RoleSession
        else model.objects.filter(pk__in=pks)
    )
    for row in rows:
        row.save(update_fields=["mac"])
        if parents_of:
            parents.extend(parents_of(row))
    for parent in parents:
        type(parent).objects.get(pk=parent.pk).save(update_fields=["mac"])  # type: ignore[attr-defined]
    return changed
