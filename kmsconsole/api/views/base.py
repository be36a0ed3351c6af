"""What every REST API view shares: authentication, the operation run, and list views over authorized querysets."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response

from kmsconsole.api.dispatch import run
from kmsconsole.audit.recorder import recorded_text
from kmsconsole.core.pagination import RECORDED_CURSOR
from kmsconsole.operations import OperationContext

# Query parameters that carry a page link's cursor (DRF's CursorPagination and the key list's sealed cursors).
CURSOR_PARAMS = frozenset({"cursor"})


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

    def audit_params(self) -> dict[str, Any]:
        """The URL's arguments and the query string, a cursor recorded only as RECORDED_CURSOR: the trail's readers
        are other principals, and a cursor is a position in the list as this caller saw it. Each name and value of
        the query is cut at RECORDED_TEXT_CHARS (as typed, whether the filters take it or refuse it, it is bounded
        by nothing but the request line)."""
        query = {
            recorded_text(name): recorded_text(value) for name, value in self.request.query_params.items()
        }
        for name in CURSOR_PARAMS | {getattr(self.paginator, "cursor_query_param", "cursor")}:
            if query.get(name):
                query[name] = RECORDED_CURSOR
        return {**self.kwargs, "Query": query}

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        def work(ctx: OperationContext) -> Response:
            page = self.paginate_queryset(self.filter_queryset(self.rows(ctx)))
            rows = self.shown_rows(ctx, page if page is not None else [])
            context = {**self.get_serializer_context(), **self.shown_of_rows(ctx, rows)}
            return self.get_paginated_response(self.get_serializer(rows, many=True, context=context).data)

        return run(request, self.operation, work, params=self.audit_params())
