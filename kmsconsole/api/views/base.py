"""What every REST API view shares: authentication, the operation run, and list views over authorized querysets."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response

from kmsconsole.api.dispatch import run
from kmsconsole.api.serializers import OPERATION_CONTEXT
from kmsconsole.operations import OperationContext


def echo(data: Any) -> dict[str, Any]:
    """Record the response body as the audit event's response elements (small write results)."""
    return dict(data)


class OperationListView(generics.ListAPIView):
    """A list whose read is one operation: `rows(ctx)` authorizes and returns the queryset; the view filters,
    orders and pages it inside the operation (a bad filter is then audited like any other bad request)."""

    operation = ""

    def rows(self, ctx: OperationContext) -> QuerySet[Any]:
        raise NotImplementedError

    def audit_params(self) -> dict[str, Any]:
        return {**self.kwargs, "Query": self.request.query_params.dict()}

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        def work(ctx: OperationContext) -> Response:
            page = self.paginate_queryset(self.filter_queryset(self.rows(ctx)))
            # The operation's context: what a row shows may itself be a decision (a key's tags, say).
            shown = self.get_serializer(
                page, many=True, context={**self.get_serializer_context(), OPERATION_CONTEXT: ctx}
            )
            return self.get_paginated_response(shown.data)

        return run(request, self.operation, work, params=self.audit_params())
