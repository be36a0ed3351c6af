"""Console routes, under /console/ (the overview is the site root, GET /)."""

from django.urls import path

from kmsconsole.console.views import auth

app_name = "console"

urlpatterns = [
    path("confirm/", auth.sudo, name="sudo"),
]
