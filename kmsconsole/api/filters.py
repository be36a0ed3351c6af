"""django-filter filter sets and the paginations of the REST API."""

from __future__ import annotations

from typing import Any, get_args

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db.models import QuerySet
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination, PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from kmsconsole.api.exceptions import FieldValidationError
from kmsconsole.audit.marks import PENDING_DELETION_USE, SELF_GRANTED_USE
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.scope import Scope
from kmsconsole.audit.trail import (
    ACCOUNT_ID,
    ACCOUNT_ID_RULE,
    CONTEXT_VALUE_NEEDS_KEY,
    KEY_ARN,
    TEXT_FILTER_CHARS,
    TrailQuery,
    narrowed,
    operation_for,
    resolve,
    source_ip_problem,
)
from kmsconsole.core.context import Interface

# A key ARN filter that is not one is refused for its shape (a 400 inside the read, audited as failed), as the
# console refuses a key that is not one; a well-formed ARN of a key that does not exist matches no event.
_KEY_ARN_SHAPE = RegexValidator(KEY_ARN, "Give a key ARN (arn:aws:kms:<region>:<account>:key/<key-id>).")
PAGE_RULE = "Must be a whole number from 1."
INVALID_CURSOR = "The cursor is not valid; start again from the first page (without a cursor)."


def described(parameters: list[dict[str, Any]], descriptions: dict[str, str]) -> list[dict[str, Any]]:
    """A pagination's OpenAPI query parameters, with the descriptions this API gives some of them."""
    for parameter in parameters:
        if parameter["name"] in descriptions:
            parameter["description"] = descriptions[parameter["name"]]
    return parameters


def _column_length(name: str) -> int | None:
    """The audit event column's max_length: a filter on it takes no longer text (a 400, not a match of nothing), so
    a well-formed filter is recorded whole (kmsconsole.api.views.base.recorded_query)."""
    return AuditEvent._meta.get_field(name).max_length  # type: ignore[union-attr]


def _source_ip(value: str) -> None:
    if problem := source_ip_problem(value):
        raise ValidationError(problem)


class TrailQueryFilter(django_filters.CharFilter):
    """A filter of the dashboard's (kmsconsole.audit.trail.TrailQuery), with its length: the filter set applies
    every one of them at once through the trail's own query (`AuditEventFilter.trail_narrowed`), after the whole
    query is valid, as the dashboard does; alone it narrows nothing."""

    def __init__(self, name: str, help_text: str, **kwargs: Any) -> None:
        super().__init__(max_length=TEXT_FILTER_CHARS.get(name), help_text=help_text, **kwargs)

    def filter(self, qs: Any, value: Any) -> Any:
        return qs


# The time filters are inclusive both ways: one instant may be asked for, a range that ends before it starts not.
TIME_ORDER = "time_after must not be later than time_before."


class AuditQueryForm(forms.Form):
    """The checks that involve two filters, as the dashboard's form makes them (its "Until must be after From" and
    an encryption context value without its key), each a 400 naming the filters."""

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        after, before = data.get("time_after"), data.get("time_before")
        if after and before and after > before:
            self.add_error("time_after", TIME_ORDER)
            self.add_error("time_before", TIME_ORDER)
        if data.get("context_value") and not data.get("context_key"):
            self.add_error("context_key", CONTEXT_VALUE_NEEDS_KEY)
        return data


class AuditEventFilter(django_filters.FilterSet):
    # Two filters, not one range filter: a bad value's error then names the parameter sent (time_after or
    # time_before), not the range's "time".
    time_after = django_filters.IsoDateTimeFilter(
        field_name="time", lookup_expr="gte", help_text="Events at or after this time (ISO 8601)."
    )
    time_before = django_filters.IsoDateTimeFilter(
        field_name="time",
        lookup_expr="lte",
        help_text="Events at or before this time (ISO 8601); one earlier than time_after is a 400 naming both.",
    )
    key_arn = django_filters.CharFilter(
        validators=[_KEY_ARN_SHAPE],
        max_length=_column_length("key_arn"),
        help_text="A key ARN (a 400 otherwise).",
    )
    caller_arn = django_filters.CharFilter(
        max_length=_column_length("caller_arn"),
        help_text="The caller's ARN, exactly (a role's sessions are not it).",
    )
    operation = django_filters.CharFilter(
        method="_operation",
        max_length=_column_length("operation"),
        help_text="An operation, in any case, with or without its service prefix (decrypt, kms:Decrypt), as the "
        "dashboard takes it; a name no operation has matches events recorded under exactly that name.",
    )
    decision = django_filters.ChoiceFilter(choices=AuditEvent.Decision.choices)
    error_code = django_filters.CharFilter(max_length=_column_length("error_code"))
    interface = django_filters.ChoiceFilter(
        choices=[(name, name) for name in get_args(Interface)],
        help_text="The interface the request came through.",
    )
    # The dashboard's filters, parsed and matched by its own query (kmsconsole.audit.trail).
    principal = TrailQueryFilter(
        "principal",
        "A principal's ARN, or a user or role name of the caller's account; a role includes its sessions. A name "
        "that is neither matches no event.",
    )
    account = TrailQueryFilter(
        "account",
        "A 12-digit account id: the key's account (scope=caller), or the caller's account (scope=key-owner).",
        validators=[RegexValidator(ACCOUNT_ID, ACCOUNT_ID_RULE)],
    )
    decided_by = TrailQueryFilter(
        "decided_by", "The statement or grant that decided, as events record it (and as the scope shows it)."
    )
    request_id = TrailQueryFilter("request_id", "A request id, whole or its beginning.")
    source_ip = TrailQueryFilter(
        "source_ip", "An IPv4 or IPv6 address (a 400 otherwise).", validators=[_source_ip]
    )
    context_key = TrailQueryFilter("context_key", "An encryption context key the request carried.")
    context_value = TrailQueryFilter(
        "context_value", "The value of `context_key` (a 400 without context_key)."
    )
    notable = TrailQueryFilter(
        "notable", f'An event\'s notable mark, exactly: "{PENDING_DELETION_USE}" or "{SELF_GRANTED_USE}".'
    )

    def _operation(self, queryset: Any, name: str, value: str) -> Any:
        """The dashboard's reading of an operation name (kmsconsole.audit.trail.operation_for); its note about an
        unknown name has no place in a list's answer."""
        return queryset.filter(operation=operation_for(value)[0])

    class Meta:
        model = AuditEvent
        form = AuditQueryForm
        fields = [
            "time_after",
            "time_before",
            "key_arn",
            "caller_arn",
            "operation",
            "decision",
            "error_code",
            "interface",
        ]

    def trail_narrowed(self, *, account_id: str, scope: Scope) -> QuerySet[AuditEvent]:
        """The filtered events: the column filters, then the dashboard's, resolved in the reader's account and
        matched as the dashboard matches them (kmsconsole.audit.trail.resolve and narrowed). Call once valid."""
        given = {
            name: self.form.cleaned_data.get(name) or ""
            for name, query_filter in self.filters.items()
            if isinstance(query_filter, TrailQueryFilter)
        }
        trail = TrailQuery(scope=scope, **given)
        return narrowed(self.qs, resolve(trail, account_id=account_id))


def refused_parameter(name: str, message: str) -> FieldValidationError:
    """A bad paging parameter: a 400 ValidationException naming it (inside the read: audited as failed)."""
    return FieldValidationError("The request is not valid.", {name: [message]})


def whole_number(given: str) -> int | None:
    """`given` as a whole number from 1, or None: ASCII digits only (str.isdigit takes "²" and int() refuses it)."""
    return int(given) if given.isascii() and given.isdigit() and int(given) >= 1 else None


class StrictPageSize:
    """`page_size` is a whole number of 1 or more, else a 400 naming it (DRF ignored a bad one, then echoed it in
    the `next` link); one above `max_page_size` is served as `max_page_size`, as documented."""

    page_size: int
    page_size_query_param: str
    max_page_size: int

    def get_page_size(self, request: Request) -> int:
        given = request.query_params.get(self.page_size_query_param)
        if given is None:
            return self.page_size
        size = whole_number(given)
        if size is None:
            raise refused_parameter(self.page_size_query_param, self.page_size_rule())
        return min(size, self.max_page_size)

    def page_size_rule(self) -> str:
        return f"Must be a whole number from 1 (at most {self.max_page_size} are served)."

    def page_size_parameter(self, parameters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """OpenAPI: `page_size`'s bounds (DRF's parameter says neither)."""
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {**parameter["schema"], "minimum": 1, "maximum": self.max_page_size}
        return described(
            parameters,
            {
                self.page_size_query_param: f"Results per page: a whole number from 1; one above "
                f"{self.max_page_size} is served as {self.max_page_size}. Anything else is a 400 "
                "ValidationException naming it."
            },
        )


class PageNumbers(StrictPageSize, PageNumberPagination):
    """A page number that is not one, or past the last page, is a 400 naming `page` (DRF's was a 404)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        given = request.query_params.get(self.page_query_param)
        if given is not None and given not in self.last_page_strings and whole_number(given) is None:
            raise refused_parameter(self.page_query_param, PAGE_RULE)
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound:
            raise refused_parameter(
                self.page_query_param, f"There is no page {given}: follow the `next` and `previous` links."
            ) from None

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = self.page_size_parameter(super().get_schema_operation_parameters(view))
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"] = {**parameter["schema"], "minimum": 1}
        return described(
            parameters,
            {
                self.page_query_param: "A page number: a whole number from 1, up to the last page. Anything else "
                "is a 400 ValidationException naming it (a `next` link can outlive its page when rows are deleted "
                "meanwhile: start again from the first page)."
            },
        )


class AuditCursor(StrictPageSize, CursorPagination):
    """The audit log grows while it is read: a cursor never skips or repeats an event. A cursor that is not one is
    a bad request (ValidationException, 400, inside the read: audited as failed, the cursor recorded only as the
    placeholder), as the console refuses a page link that is not one, not DRF's 404."""

    ordering = "-seq"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            cursor: Cursor | None = super().decode_cursor(request)
        except NotFound:
            raise refused_parameter(self.cursor_query_param, INVALID_CURSOR) from None
        # The position is a seq: anything else would reach the database as a number it is not.
        if cursor is not None and cursor.position is not None and not cursor.position.isdigit():
            raise refused_parameter(self.cursor_query_param, INVALID_CURSOR)
        return cursor

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return described(
            self.page_size_parameter(super().get_schema_operation_parameters(view)),
            {
                self.cursor_query_param: "The cursor of a `next` or `previous` link. One that is not a cursor is "
                "a 400 ValidationException."
            },
        )


class KeyPages(PageNumbers):
    """The key list's pages (kmsconsole.api.key_listing). The whole list is paged by number and counted (ListKeys
    gives every key's id). A searched or filtered list is not counted (`count` is null: counting would decide every
    key) and continues through `next` and `previous` links that carry a sealed cursor; where it is walked,
    `searched` says how many keys this page looked through."""

    cursor_query_param = "cursor"

    def get_paginated_response(self, data: Any) -> Response:
        count = self.page.paginator.count if self.page is not None else 0
        return self._response(count, self.get_next_link(), self.get_previous_link(), None, data)

    def cursor_response(
        self,
        request: Request,
        data: Any,
        *,
        next_cursor: str | None,
        previous_cursor: str | None,
        searched: int | None,
    ) -> Response:
        def link(cursor: str | None) -> str | None:
            if not cursor:
                return None
            url = remove_query_param(request.build_absolute_uri(), self.page_query_param)
            return str(replace_query_param(url, self.cursor_query_param, cursor))

        return self._response(None, link(next_cursor), link(previous_cursor), searched, data)

    @staticmethod
    def _response(
        count: int | None, next_link: str | None, previous_link: str | None, searched: int | None, data: Any
    ) -> Response:
        return Response(
            {
                "count": count,
                "next": next_link,
                "previous": previous_link,
                "searched": searched,
                "results": data,
            }
        )

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return described(
            super().get_schema_operation_parameters(view),
            {
                self.page_query_param: "A page number of the whole list. A searched or filtered list has none: it "
                "continues with the `cursor` of its `next` link. A page number that is not a whole number from 1 or is "
                "past the last page, or another than 1 beside a search, filter or `cursor`, is a 400 "
                "ValidationException naming it.",
                self.page_size_query_param: f"Keys per page: a whole number from 1 (one above "
                f"{self.max_page_size} is served as {self.max_page_size}). A searched or filtered page looks "
                "through the same number of keys whatever its size.",
            },
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        paged = super().get_paginated_response_schema(schema)
        properties = paged["properties"]
        properties["count"] = {
            "type": "integer",
            "nullable": True,
            "description": "Every key of the account; null for a searched or filtered list (not counted).",
        }
        properties["searched"] = {
            "type": "integer",
            "nullable": True,
            "description": "How many keys a searched or filtered page looked through (at most 500, whatever the "
            "page size; `next` continues after the last); null when every key looked at is shown.",
        }
        paged["required"] = ["count", "results"]
        return paged
