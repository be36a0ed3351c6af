"""Console routes: overview (see kmsconsole/console/urls.py). The overview itself is the site root, GET / (url name
"home"): kmsconsole/core/views.root hands GET to kmsconsole/console/views/overview.py and POST to the KMS
endpoint. It has no routes of its own under /console/."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
