"""Console routes, under /console/ (the overview is the site root, GET /). Each area keeps its routes in
kmsconsole/console/routes/<area>.py."""

from django.urls import path

from kmsconsole.console.routes import analyzer, audit, key_tabs, keys, overview, policy, principals
from kmsconsole.console.views import auth

app_name = "console"

urlpatterns = [
    path("confirm/", auth.sudo, name="sudo"),
    *overview.urlpatterns,
    *keys.urlpatterns,
    *key_tabs.urlpatterns,
    *policy.urlpatterns,
    *principals.urlpatterns,
    *audit.urlpatterns,
    *analyzer.urlpatterns,
]
