"""URL routes. `POST /` is the AWS KMS endpoint (what SDKs call with endpoint_url); `GET /` is the console;
`/api/` is the REST API and its OpenAPI schema and docs.

There is deliberately no Django admin: it would edit rows around the service layer, its authorization and
its audit trail.
"""

from django.urls import include, path, re_path

from kmsconsole.console.views import signin
from kmsconsole.core import health, views

urlpatterns = [
    path("", views.root, name="home"),
    re_path(r"^kms/?$", views.kms_only, name="kms-endpoint"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("signin/", signin.SignInView.as_view(), name="login"),
    path("signout/", signin.SignOutView.as_view(), name="logout"),
    path("console/", include("kmsconsole.console.urls")),
    path("api/", include("kmsconsole.api.urls")),
]

# An unhandled exception (the database gone mid-request), and a request Django refuses as suspicious (a Host header
# not allowed), are answered in the interface's own error shape.
handler500 = "kmsconsole.core.errorpages.server_error"
handler400 = "kmsconsole.core.errorpages.bad_request"
# An AWS SDK pointed at a path where no endpoint is gets AWS's JSON, not an HTML page botocore cannot read.
handler404 = "kmsconsole.core.errorpages.not_found"
