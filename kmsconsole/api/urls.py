"""REST API routes (/api/v1/…) and the OpenAPI schema with its two documentation pages (local assets only)."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from kmsconsole.api.views import keys, policy, resources

KEY = "v1/keys/<str:key_id>"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path(
        "redoc/",
        SpectacularRedocView.as_view(url_name="api-schema", template_name="api/redoc.html"),
        name="api-redoc",
    ),
    path("v1/keys", keys.KeyListView.as_view(), name="api-keys"),
    path(KEY, keys.KeyDetailView.as_view(), name="api-key"),
    path(f"{KEY}/enable", keys.KeyEnableView.as_view(), name="api-key-enable"),
    path(f"{KEY}/disable", keys.KeyDisableView.as_view(), name="api-key-disable"),
    path(
        f"{KEY}/schedule-deletion", keys.KeyScheduleDeletionView.as_view(), name="api-key-schedule-deletion"
    ),
    path(f"{KEY}/cancel-deletion", keys.KeyCancelDeletionView.as_view(), name="api-key-cancel-deletion"),
    path(f"{KEY}/rotate", keys.KeyRotateView.as_view(), name="api-key-rotate"),
    path(f"{KEY}/rotation", keys.KeyRotationView.as_view(), name="api-key-rotation"),
    path(f"{KEY}/policy", policy.KeyPolicyView.as_view(), name="api-key-policy"),
    path(f"{KEY}/policy/validate", policy.KeyPolicyValidateView.as_view(), name="api-key-policy-validate"),
    path(f"{KEY}/policy/versions", policy.KeyPolicyVersionListView.as_view(), name="api-key-policy-versions"),
    path(
        f"{KEY}/policy/versions/<int:version>/restore",
        policy.KeyPolicyRestoreView.as_view(),
        name="api-key-policy-restore",
    ),
    path(f"{KEY}/tags", resources.KeyTagsView.as_view(), name="api-key-tags"),
    path(f"{KEY}/grants", resources.KeyGrantsView.as_view(), name="api-key-grants"),
    path(f"{KEY}/grants/<str:grant_id>/retire", resources.GrantRetireView.as_view(), name="api-grant-retire"),
    path(f"{KEY}/grants/<str:grant_id>/revoke", resources.GrantRevokeView.as_view(), name="api-grant-revoke"),
    path("v1/aliases", resources.AliasListView.as_view(), name="api-aliases"),
    path("v1/aliases/<path:alias_name>", resources.AliasDetailView.as_view(), name="api-alias"),
    path("v1/audit-events", resources.AuditEventListView.as_view(), name="api-audit-events"),
    path("v1/audit-events/<uuid:event_id>", resources.AuditEventDetailView.as_view(), name="api-audit-event"),
    path("v1/job-runs", resources.JobRunListView.as_view(), name="api-job-runs"),
]
