"""Console routes: the audit dashboard (see kmsconsole/console/urls.py)."""

from django.urls import URLPattern, path

from kmsconsole.console.views import audit

urlpatterns: list[URLPattern] = [
    path("audit/", audit.audit_trail, name="audit"),
    path("audit/events/<uuid:event_id>/", audit.audit_event, name="audit-event"),
    path("audit/export.csv", audit.audit_export_csv, name="audit-export-csv"),
    path("audit/export.jsonl", audit.audit_export_jsonl, name="audit-export-jsonl"),
    path("audit/verify/", audit.audit_verify, name="audit-verify"),
]
