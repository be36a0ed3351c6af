"""The key list (ListKeys): search, filters, sorting, and keyset pages that stay fast at 100,000 keys.

Every sort is an indexed ordering (keys/models.py: by creation, or by state, spec or the start of the
description, each then by creation and id), and a page link carries the position of the row it continues from
(a signed cursor), so a deep page is an index seek, never an OFFSET, and nothing counts the whole table.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.core import signing
from django.db.models import F, Q, QuerySet
from django.db.models.expressions import Expression
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers

from keys.models import Alias, Key, KeyState, description_sort_key
from kmsconsole.api import reads
from kmsconsole.console.dispatch import attempt, console_view
from kmsconsole.console.views.keys import error_status
from kmsconsole.console.views.keys_catalog import ALL_SPECS, ALL_USAGES, usage_label
from kmsconsole.operations import OperationContext
from policies.selectors import account_get

PAGE_SIZE = 50
SEARCH_MAX_LENGTH = 256
CURSOR_SALT = "kmsconsole.console.keys.cursor"

# name -> (column heading, leading sort expression before (created_at, pk); None sorts by creation alone).
SORTS: dict[str, tuple[str, Callable[[], Expression] | None]] = {
    "created": ("Created", None),
    "description": ("Description", description_sort_key),
    "state": ("Status", lambda: F("state")),
    "spec": ("Key spec", lambda: F("key_spec")),
}
DEFAULT_SORT = "-created"
SORT_CHOICES = [(f"{prefix}{name}", name) for name in SORTS for prefix in ("", "-")]


class KeyListForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=SEARCH_MAX_LENGTH)
    state = forms.ChoiceField(label="Status", required=False, choices=[("", "Any status"), *KeyState.choices])
    spec = forms.ChoiceField(
        label="Key spec", required=False, choices=[("", "Any key spec"), *((s, s) for s in ALL_SPECS)]
    )
    usage = forms.ChoiceField(
        label="Key usage",
        required=False,
        choices=[("", "Any key usage"), *((u, usage_label(u)) for u in ALL_USAGES)],
    )
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES)
    after = forms.CharField(required=False)
    before = forms.CharField(required=False)

    def clean_sort(self) -> str:
        return self.cleaned_data.get("sort") or DEFAULT_SORT

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        data["position"] = None
        sort = data.get("sort") or DEFAULT_SORT
        for direction in ("after", "before"):
            if data.get(direction):
                try:
                    data["position"] = Position.load(direction, data[direction], sort)
                except (signing.BadSignature, ValueError, TypeError):
                    raise forms.ValidationError(
                        "That page link is no longer valid (the list or its sort changed). "
                        "Start again from the first page."
                    ) from None
        return data

    @property
    def filter_fields(self) -> list[forms.BoundField]:
        return [self["state"], self["spec"], self["usage"]]

    @property
    def narrowed(self) -> bool:
        return any(self.cleaned_data.get(name) for name in ("q", "state", "spec", "usage"))


@dataclass(frozen=True)
class Position:
    """Where a page continues from: after (or before) the row with these sort values."""

    direction: str
    values: tuple[Any, ...]

    @staticmethod
    def dump(sort: str, key: Key) -> str:
        lead = [key.sort_value] if SORTS[sort.lstrip("-")][1] is not None else []  # type: ignore[attr-defined]
        return signing.dumps([sort, *lead, key.created_at.isoformat(), key.pk], salt=CURSOR_SALT)

    @classmethod
    def load(cls, direction: str, cursor: str, sort: str) -> Position:
        saved = signing.loads(cursor, salt=CURSOR_SALT)
        if not isinstance(saved, list) or not saved or saved[0] != sort:
            raise ValueError("cursor of another sort")
        *lead, created, pk = saved[1:]
        return cls(direction, (*lead, datetime.fromisoformat(created), int(pk)))


@dataclass(frozen=True)
class KeyPage:
    keys: list[Key]
    next_cursor: str | None
    previous_cursor: str | None


def matching(rows: QuerySet[Key], query: str) -> QuerySet[Key]:
    """Keys whose id, alias or description contains `query` (case-insensitive): what the list shows. Not tags:
    ListKeys is an IAM-only permission, and a search that matched tags would tell a caller refused
    kms:ListResourceTags (a key policy decision) what a key's tags hold, a character at a time."""
    match = Q(description__icontains=query)
    match |= Q(pk__in=Alias.objects.filter(name__icontains=query).values("key_id"))
    try:
        match |= Q(key_id=uuid.UUID(query))
    except ValueError:
        if query.replace("-", "").isalnum():
            match |= Q(key_id__icontains=query)
    return rows.filter(match)


def key_page(rows: QuerySet[Key], *, sort: str, position: Position | None) -> KeyPage:
    """One page of `rows` in `sort` order, continuing from `position`: an index range scan of PAGE_SIZE + 1."""
    name, descending = sort.lstrip("-"), sort.startswith("-")
    lead = SORTS[name][1]
    columns = ["created_at", "pk"]
    if lead is not None:
        rows = rows.annotate(sort_value=lead())
        columns.insert(0, "sort_value")
    backwards = position is not None and position.direction == "before"
    reverse = descending != backwards
    if position is not None:
        beyond = TupleLessThan if reverse else TupleGreaterThan
        rows = rows.filter(beyond(Tuple(*(F(column) for column in columns)), position.values))
        # The leading column's bound too: SQLite seeks an index on an expression only with a plain comparison.
        rows = rows.filter(**{f"{columns[0]}__{'lte' if reverse else 'gte'}": position.values[0]})
    batch = list(rows.order_by(*(f"-{c}" if reverse else c for c in columns))[: PAGE_SIZE + 1])
    more = len(batch) > PAGE_SIZE
    batch = batch[:PAGE_SIZE]
    if backwards:
        batch.reverse()
    has_next = more if not backwards else True
    has_previous = position is not None and (more if backwards else True)
    return KeyPage(
        keys=batch,
        next_cursor=Position.dump(sort, batch[-1]) if batch and has_next else None,
        previous_cursor=Position.dump(sort, batch[0]) if batch and has_previous else None,
    )


def _list_url(request: HttpRequest, form: KeyListForm, **changes: str) -> str:
    """This list with the current search and filters and `changes` (a new sort or page)."""
    keep = {name: form.cleaned_data.get(name) or "" for name in ("q", "state", "spec", "usage", "sort")}
    keep.update(changes)
    query = {name: value for name, value in keep.items() if value and (name, value) != ("sort", DEFAULT_SORT)}
    return f"{request.path}?{urlencode(query)}" if query else request.path


def _sort_headings(request: HttpRequest, form: KeyListForm) -> dict[str, dict[str, str]]:
    """Each sortable column's link (toggling the direction when it is the current sort) and aria-sort."""
    current = form.cleaned_data["sort"]
    headings = {}
    for name, (label, _lead) in SORTS.items():
        active = current.lstrip("-") == name
        descending = current.startswith("-")
        target = (name if descending else f"-{name}") if active else name
        headings[name] = {
            "label": label,
            "url": _list_url(request, form, sort=target),
            "aria_sort": ("descending" if descending else "ascending") if active else "none",
        }
    return headings


@console_view
def key_list(request: HttpRequest) -> HttpResponse:
    form = KeyListForm(request.GET)
    context: dict[str, Any] = {"form": form, "keys": [], "page_size": PAGE_SIZE}
    if not form.is_valid():
        form.cleaned_data.setdefault("sort", DEFAULT_SORT)
        context["sorts"] = _sort_headings(request, form)
        return _respond(request, context, status=400)
    data = form.cleaned_data

    def work(ctx: OperationContext) -> KeyPage:
        # The account's primary key too, not only its id through the join: PostgreSQL then walks the listing
        # index in order and stops after a page, instead of sorting every key of the account.
        rows = reads.account_keys(ctx).filter(account=account_get(ctx.caller.account_id))
        if data["q"]:
            rows = matching(rows, data["q"])
        for field, column in (("state", "state"), ("spec", "key_spec"), ("usage", "key_usage")):
            if data[field]:
                rows = rows.filter(**{column: data[field]})
        return key_page(rows, sort=data["sort"], position=data["position"])

    audited = {"Search": "q", "KeyState": "state", "KeySpec": "spec", "KeyUsage": "usage", "Sort": "sort"}
    params = {"Limit": PAGE_SIZE, **{member: data[name] for member, name in audited.items() if data[name]}}
    outcome = attempt(request, "ListKeys", work, params=params)
    context["sorts"] = _sort_headings(request, form)
    context["error"] = outcome.error
    if outcome.value is not None:
        page = outcome.value
        context["keys"] = page.keys
        context["next_url"] = page.next_cursor and _list_url(request, form, after=page.next_cursor)
        context["previous_url"] = page.previous_cursor and _list_url(
            request, form, before=page.previous_cursor
        )
        context["first_url"] = _list_url(request, form) if data["position"] else ""
        context["narrowed"] = form.narrowed
        context["clear_url"] = _list_url(request, form, q="", state="", spec="", usage="")
    return _respond(request, context, status=error_status(outcome.code) if outcome.code else 200)


def _respond(request: HttpRequest, context: dict[str, Any], *, status: int) -> HttpResponse:
    """The page, or for htmx only the results. htmx swaps only successful responses, so a refusal or a bad
    filter it asked about comes as a 200 whose results hold the message in words."""
    if request.headers.get("HX-Request") and not request.headers.get("HX-History-Restore-Request"):
        response = render(request, "console/_partials/key_list_results.html", context)
    else:
        response = render(request, "console/key_list.html", context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response
