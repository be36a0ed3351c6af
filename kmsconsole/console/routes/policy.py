"""Console routes: policy (see kmsconsole/console/urls.py)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
