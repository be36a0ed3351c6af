"""REST API routes (/api/v1/…) and the OpenAPI schema with its two documentation pages (local assets only)."""

from csp.decorators import csp_update
from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from kmsconsole.api.exceptions import unknown_route
from kmsconsole.api.views import analyzer, identity, keys, policy, principals, resources

KEY = "v1/keys/<str:key_id>"

# Swagger UI and ReDoc style themselves with inline <style> elements at run time; only these two documentation
# pages may, and they still run no inline script.
_docs_csp = csp_update({"style-src": ["'unsafe-inline'"], "worker-src": ["'self'", "blob:"]})

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", _docs_csp(SpectacularSwaggerSplitView.as_view(url_name="api-schema")), name="api-docs"),
    path(
        "redoc/",
        _docs_csp(SpectacularRedocView.as_view(url_name="api-schema", template_name="api/redoc.html")),
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
    path(f"{KEY}/last-usage", keys.KeyLastUsageView.as_view(), name="api-key-last-usage"),
    path(f"{KEY}/policy", policy.KeyPolicyView.as_view(), name="api-key-policy"),
    path(f"{KEY}/policy/validate", policy.KeyPolicyValidateView.as_view(), name="api-key-policy-validate"),
    path(f"{KEY}/policy/versions", policy.KeyPolicyVersionListView.as_view(), name="api-key-policy-versions"),
    path(
        f"{KEY}/policy/versions/<int:version>/restore",
        policy.KeyPolicyRestoreView.as_view(),
        name="api-key-policy-restore",
    ),
    path(f"{KEY}/policy/compare", analyzer.KeyPolicyCompareView.as_view(), name="api-key-policy-compare"),
    path(f"{KEY}/access", analyzer.KeyAccessView.as_view(), name="api-key-access"),
    path(f"{KEY}/tags", resources.KeyTagsView.as_view(), name="api-key-tags"),
    path(f"{KEY}/grants", resources.KeyGrantsView.as_view(), name="api-key-grants"),
    path(f"{KEY}/grants/<str:grant_id>/retire", resources.GrantRetireView.as_view(), name="api-grant-retire"),
    path(f"{KEY}/grants/<str:grant_id>/revoke", resources.GrantRevokeView.as_view(), name="api-grant-revoke"),
    path(f"{KEY}/rotations", keys.KeyRotationListView.as_view(), name="api-key-rotations"),
    path("v1/retirable-grants", resources.RetirableGrantListView.as_view(), name="api-retirable-grants"),
    path("v1/aliases", resources.AliasListView.as_view(), name="api-aliases"),
    path("v1/aliases/<path:alias_name>", resources.AliasDetailView.as_view(), name="api-alias"),
    path("v1/audit-events", resources.AuditEventListView.as_view(), name="api-audit-events"),
    path("v1/audit-events/<uuid:event_id>", resources.AuditEventDetailView.as_view(), name="api-audit-event"),
    path("v1/job-runs", resources.JobRunListView.as_view(), name="api-job-runs"),
    path("v1/findings", analyzer.FindingListView.as_view(), name="api-findings"),
    path("v1/simulations", analyzer.SimulationView.as_view(), name="api-simulations"),
    path("v1/accounts", principals.AccountListView.as_view(), name="api-accounts"),
    path("v1/users", principals.UserListView.as_view(), name="api-users"),
    path("v1/users/<str:name>", principals.UserDetailView.as_view(), name="api-user"),
    path("v1/roles", principals.RoleListView.as_view(), name="api-roles"),
    path("v1/roles/<str:name>", principals.RoleDetailView.as_view(), name="api-role"),
    path("v1/groups", principals.GroupListView.as_view(), name="api-groups"),
    path("v1/groups/<str:name>", principals.GroupDetailView.as_view(), name="api-group"),
    path("v1/groups/<str:name>/members", principals.GroupMembersView.as_view(), name="api-group-members"),
    path(
        "v1/groups/<str:name>/members/<str:user_name>",
        principals.GroupMemberView.as_view(),
        name="api-group-member",
    ),
    *(
        route
        for kind, (list_view, detail_view) in {
            "users": (identity.UserPolicyListView, identity.UserPolicyDetailView),
            "roles": (identity.RolePolicyListView, identity.RolePolicyDetailView),
            "groups": (identity.GroupPolicyListView, identity.GroupPolicyDetailView),
        }.items()
        for route in (
            path(f"v1/{kind}/<str:name>/policies", list_view.as_view(), name=f"api-{kind}-policies"),
            path(
                f"v1/{kind}/<str:name>/policies/<str:policy_name>",
                detail_view.as_view(),
                name=f"api-{kind}-policy",
            ),
        )
    ),
    path("v1/users/<str:name>/access-keys", identity.AccessKeyListView.as_view(), name="api-access-keys"),
    path(
        "v1/users/<str:name>/access-keys/<str:access_key_id>",
        identity.AccessKeyDetailView.as_view(),
        name="api-access-key",
    ),
    path("v1/api-tokens", identity.ApiTokenListView.as_view(), name="api-tokens"),
    path(
        "v1/api-tokens/<int:token_id>/revoke", identity.ApiTokenRevokeView.as_view(), name="api-token-revoke"
    ),
    # Anything else under /api/ is a JSON 404 in the API's error shape, never Django's HTML page.
    re_path(r"^.*$", unknown_route, name="api-unknown-route"),
]
