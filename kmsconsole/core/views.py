"""The root URL: the KMS endpoint for POST, the console's home page for GET."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from kmsconsole.awskms.views import kms_endpoint


# The KMS endpoint authenticates every request with SigV4, not with cookies, so CSRF does not apply to it.
@csrf_exempt
def root(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return kms_endpoint(request)
    return home(request)


@csrf_exempt
def kms_only(request: HttpRequest) -> HttpResponse:
    return kms_endpoint(request)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    identity = getattr(request.user, "kms_identity", None)
    endpoint = request.build_absolute_uri("/")
    return render(
        request,
        "core/home.html",
        {
            "principal_arn": identity.iam_user.arn if identity else None,
            "endpoint": endpoint,
            "region": settings.KMS_REGION,
            "account_id": settings.KMS_ACCOUNT_ID,
            # Shortened days are for demos and tests; whoever looks at the console must know deletion
            # windows and rotation periods are not real days.
            "day_seconds": settings.KMS_DAY_SECONDS if settings.KMS_DAY_SECONDS != 86400 else None,
        },
    )
