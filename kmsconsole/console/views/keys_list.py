"""The key list (ListKeys): search, filters, creation order, and pages that stay fast at 100,000 keys.

What a row shows, how search and filters match, and how pages are cut are the REST list's too
(`kmsconsole.api.key_listing`): a key's description, state, spec, usage and creation date only where a DescribeKey
request by the caller would be allowed, its aliases only where ListAliases would be; a search or filter matches
only what the row shows and looks through a bounded number of keys per request ("look further" continues). A
page link carries only a sealed position; a changed or foreign one is refused in words, never a 500.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers

from keys.models import KeyState
from kmsconsole.api.key_listing import (
    SEARCH_MAX_LENGTH,
    WALK_LIMIT,
    KeyListing,
    KeyListPage,
    KeyQuery,
    only_by_creation,
)
from kmsconsole.console.dispatch import attempt, console_view
from kmsconsole.console.views.keys import error_status
from kmsconsole.console.views.keys_catalog import ALL_SPECS, ALL_USAGES, usage_label
from kmsconsole.core.pagination import RECORDED_CURSOR
from kmsconsole.operations import OperationContext

PAGE_SIZE = 50
DEFAULT_SORT = "-created"
SORT_CHOICES = [("created", "Oldest first"), ("-created", "Newest first")]
FILTERS = ("q", "state", "spec", "usage")


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
    sort = forms.ChoiceField(
        required=False,
        choices=SORT_CHOICES,
        error_messages={
            "invalid_choice": '"%(value)s" is not an order of the key list. '
            + only_by_creation('"created", oldest first, or "-created", newest first')
        },
    )
    cursor = forms.CharField(required=False, max_length=256)

    def clean_sort(self) -> str:
        return self.cleaned_data.get("sort") or DEFAULT_SORT

    @property
    def filter_fields(self) -> list[forms.BoundField]:
        return [self["state"], self["spec"], self["usage"]]

    @property
    def narrowed(self) -> bool:
        return any(self.cleaned_data.get(name) for name in FILTERS)

    def query(self) -> KeyQuery:
        data = self.cleaned_data
        return KeyQuery(
            search=data["q"],
            state=data["state"],
            key_spec=data["spec"],
            key_usage=data["usage"],
            descending=data["sort"] == "-created",
        )


def _list_url(request: HttpRequest, form: KeyListForm, **changes: str) -> str:
    """This list with the current search and filters and `changes` (a new sort or page)."""
    keep = {name: form.cleaned_data.get(name) or "" for name in (*FILTERS, "sort")}
    keep.update(changes)
    query = {name: value for name, value in keep.items() if value and (name, value) != ("sort", DEFAULT_SORT)}
    return f"{request.path}?{urlencode(query)}" if query else request.path


def _created_heading(request: HttpRequest, form: KeyListForm) -> dict[str, str]:
    """The Created column's link (toggling the direction) and aria-sort: the only order (an order by description,
    state or spec would place a key by what the caller may not see)."""
    descending = form.cleaned_data["sort"].startswith("-")
    return {
        "label": "Created",
        "url": _list_url(request, form, sort="created" if descending else "-created"),
        "aria_sort": "descending" if descending else "ascending",
    }


@console_view
def key_list(request: HttpRequest) -> HttpResponse:
    form = KeyListForm(request.GET)
    context: dict[str, Any] = {"form": form, "rows": [], "page_size": PAGE_SIZE, "walk_limit": WALK_LIMIT}
    if not form.is_valid():
        form.cleaned_data.setdefault("sort", DEFAULT_SORT)
        context["created"] = _created_heading(request, form)
        return _respond(request, context, status=400)
    data = form.cleaned_data
    cursor = data["cursor"]
    holder: dict[str, KeyListing] = {}

    def work(ctx: OperationContext) -> KeyListPage:
        listing = holder["listing"] = KeyListing(ctx, form.query(), page_size=PAGE_SIZE)
        return listing.page(cursor or None)

    audited = {"Search": "q", "KeyState": "state", "KeySpec": "spec", "KeyUsage": "usage", "Sort": "sort"}
    params = {"Limit": PAGE_SIZE, **{member: data[name] for member, name in audited.items() if data[name]}}
    if cursor:
        params["Cursor"] = RECORDED_CURSOR  # that the request continued a list, never where (pagination.py)
    outcome = attempt(request, "ListKeys", work, params=params)
    context["created"] = _created_heading(request, form)
    context["error"] = outcome.error
    if outcome.value is not None:
        page, listing = outcome.value, holder["listing"]
        context["rows"] = page.rows
        context["aliases_shown"] = listing.aliases_shown
        context["search_unavailable"] = listing.search_unavailable
        context["searched"] = page.searched
        context["searched_to"] = page.searched_to
        context["next_url"] = page.next_cursor and _list_url(request, form, cursor=page.next_cursor)
        context["previous_url"] = page.previous_cursor and _list_url(
            request, form, cursor=page.previous_cursor
        )
        context["first_url"] = _list_url(request, form) if cursor else ""
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
