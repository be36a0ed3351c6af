"""Console routes: the access analyzer and the policy simulator (see kmsconsole/console/urls.py)."""

from django.urls import URLPattern, path

from kmsconsole.console.views import analyzer, simulator

urlpatterns: list[URLPattern] = [
    path("analyzer/", analyzer.finding_list, name="analyzer"),
    path("keys/<uuid:key_id>/access/", analyzer.key_access, name="key-access"),
    path("simulator/", simulator.simulator, name="simulator"),
]
