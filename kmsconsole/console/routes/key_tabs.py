"""Console routes: the key detail tabs other than general and policy (see kmsconsole/console/urls.py)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
