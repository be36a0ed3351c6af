"""Console routes: overview (see kmsconsole/console/urls.py)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
