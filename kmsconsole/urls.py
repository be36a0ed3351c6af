"""URL routes. `POST /` is the AWS KMS endpoint (what SDKs call with endpoint_url); `GET /` is the console;
`/api/` is the REST API and its OpenAPI schema and docs.

There is deliberately no Django admin: it would edit rows around the service layer, its authorization and
its audit trail.
"""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from kmsconsole.core import health, views

urlpatterns = [
    path("", views.root, name="home"),
    path("kms/", views.kms_only, name="kms-endpoint"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path(
        "signin/",
        auth_views.LoginView.as_view(template_name="core/signin.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("signout/", auth_views.LogoutView.as_view(), name="logout"),
    path("console/", include("kmsconsole.console.urls")),
    path("api/", include("kmsconsole.api.urls")),
]

# An unhandled exception (the database gone mid-request) is answered in the interface's own error shape.
handler500 = "kmsconsole.core.errorpages.server_error"
