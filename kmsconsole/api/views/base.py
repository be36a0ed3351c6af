"""What every REST API view shares: authentication, the operation run, and list views over authorized querysets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet
from django.http import QueryDict
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response

from kmsconsole.api.dispatch import OTHER_PARAMETERS, run
from kmsconsole.core.pagination import RECORDED_CURSOR
from kmsconsole.core.text import SHOWN_CHARS, recorded
from kmsconsole.operations import OperationContext

# Query parameters that carry a page link's cursor (DRF's CursorPagination and the key list's sealed cursors).
CURSOR_PARAMS = frozenset({"cursor"})
# The one entry that stands for every query parameter a list does not declare (its names are not recorded).


def recorded_query(query: QueryDict, declared: Mapping[str, int]) -> dict[str, Any]:
    """A list's query string as its audit event records it. Only the parameters the list declares (`declared`: each
    name with the longest a well-formed value of it may be) are recorded by name, each value whole up to its limit
    and longer cut (`kmsconsole.core.text.recorded`); everything else the request carries is summarised as one
    entry, OTHER_PARAMETERS, how many and how many characters, its names and values not recorded: nothing but the
    request line bounds them, and the trail records what was asked, not whatever a request carried. A cursor is
    recorded only as RECORDED_CURSOR: the trail's readers are other principals, and a cursor is a position in the
    list as this caller saw it."""
    params: dict[str, Any] = {}
    others = other_chars = 0
    for name, values in query.lists():
        if name not in declared:
            others += len(values)
            other_chars += sum(len(name) + len(value) for value in values)
        elif values[-1] and name in CURSOR_PARAMS:
            params[name] = RECORDED_CURSOR
        else:
            params[name] = recorded(values[-1], declared[name])  # the one the list reads (QueryDict.get)
    if others:
        params[OTHER_PARAMETERS] = f"{others} parameters, {other_chars} characters"
    return params


def echo(data: Any) -> dict[str, Any]:
    """Record the response body as the audit event's response elements (small write results)."""
    return dict(data)


class OperationListView(generics.ListAPIView):
    """A list whose read is one operation: `rows(ctx)` authorizes and returns the queryset; the view filters,
    orders and pages it inside the operation (a bad filter is then audited like any other bad request)."""

    operation = ""

    def rows(self, ctx: OperationContext) -> QuerySet[Any]:
        raise NotImplementedError

    def shown_of_rows(self, ctx: OperationContext, rows: list[Any]) -> dict[str, Any]:
        """Serializer context for a page of rows whose fields are themselves decisions (a key's tags, say)."""
        return {}

    def shown_rows(self, ctx: OperationContext, rows: list[Any]) -> list[Any]:
        """The page's rows as the caller may see them (an audit event of a request on another account's key)."""
        return rows

    # The view's own query parameters, beyond its filter set's, its filter backends' and its pagination's, each
    # with the longest a well-formed value may be (what `rows` or `list` reads from the query string).
    own_query_params: Mapping[str, int] = {}

    def declared_query_params(self) -> dict[str, int]:
        """Every query parameter the list takes, each with the longest a well-formed value may be: its filter set's
        (a range filter's two, a filter's max_length where it has one), its filter backends' (ordering, search),
        its pagination's and its own (`own_query_params`)."""
        declared: dict[str, int] = {}
        filterset_class = getattr(self, "filterset_class", None)
        for name, query_filter in (filterset_class.base_filters if filterset_class else {}).items():
            limit = query_filter.extra.get("max_length") or SHOWN_CHARS
            suffixes = getattr(query_filter.field.widget, "suffixes", None)
            for suffix in suffixes or [""]:
                declared[f"{name}_{suffix}" if suffix else name] = limit
        for backend in self.filter_backends:
            for attribute in ("ordering_param", "search_param"):
                if name := getattr(backend, attribute, None):
                    declared[name] = SHOWN_CHARS
        for attribute in ("page_query_param", "page_size_query_param", "cursor_query_param"):
            if name := getattr(self.paginator, attribute, None):
                declared[name] = SHOWN_CHARS
        declared.update(self.own_query_params)
        return declared

    def audit_params(self) -> dict[str, Any]:
        """The URL's arguments and the query string as `recorded_query` records it."""
        query = recorded_query(self.request.query_params, self.declared_query_params())
        return {**self.kwargs, "Query": query}

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        def work(ctx: OperationContext) -> Response:
            page = self.paginate_queryset(self.filter_queryset(self.rows(ctx)))
            rows = self.shown_rows(ctx, page if page is not None else [])
            context = {**self.get_serializer_context(), **self.shown_of_rows(ctx, rows)}
            return self.get_paginated_response(self.get_serializer(rows, many=True, context=context).data)

        return run(request, self.operation, work, params=self.audit_params())
