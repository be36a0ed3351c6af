"""django-filter filter sets and the paginations of the REST API."""

from __future__ import annotations

import django_filters
from rest_framework.pagination import CursorPagination, PageNumberPagination

from keys.models import Key, KeyState
from kmsconsole.audit.models import AuditEvent


class KeyFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=KeyState.choices)
    key_spec = django_filters.CharFilter()
    key_usage = django_filters.CharFilter()

    class Meta:
        model = Key
        fields = ["state", "key_spec", "key_usage"]


class AuditEventFilter(django_filters.FilterSet):
    time = django_filters.IsoDateTimeFromToRangeFilter(help_text="time_after / time_before (ISO 8601).")
    key_arn = django_filters.CharFilter()
    caller_arn = django_filters.CharFilter()
    operation = django_filters.CharFilter()
    decision = django_filters.ChoiceFilter(choices=AuditEvent.Decision.choices)
    error_code = django_filters.CharFilter()

    class Meta:
        model = AuditEvent
        fields = ["time", "key_arn", "caller_arn", "operation", "decision", "error_code"]


class PageNumbers(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class AuditCursor(CursorPagination):
    """The audit log grows while it is read: a cursor never skips or repeats an event."""

    ordering = "-seq"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
