"""Console sessions end after KMS_SESSION_IDLE_SECONDS without a request, and KMS_SESSION_AGE_SECONDS after
sign-in whatever happens: an unattended laptop does not stay signed in to the key management console."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from kmsconsole.console.views.signin import record_sign_out

SIGNED_IN_AT = "kms_signed_in_at"
LAST_SEEN_AT = "kms_last_seen_at"
# Saving the session on every request would be a write per page; a minute's precision is enough for an
# idle timeout measured in tens of minutes.
_TOUCH_EVERY_SECONDS = 60


@receiver(user_logged_in)
def _stamp_sign_in(sender: object, request: HttpRequest | None, **kwargs: object) -> None:
    if request is not None and hasattr(request, "session"):
        now = int(time.time())
        request.session[SIGNED_IN_AT] = now
        request.session[LAST_SEEN_AT] = now


class SessionLifetimeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = int(time.time())
            signed_in = int(request.session.get(SIGNED_IN_AT, 0))
            last_seen = int(request.session.get(LAST_SEEN_AT, 0))
            if (
                now - signed_in > settings.SESSION_COOKIE_AGE
                or now - last_seen > settings.KMS_SESSION_IDLE_SECONDS
            ):
                # A session without the stamps predates them (or was forged around sign-in): end it too.
                record_sign_out(request, "The session ended: idle too long, or past its lifetime.")
                logout(request)
            elif now - last_seen >= _TOUCH_EVERY_SECONDS:
                request.session[LAST_SEEN_AT] = now
        return self.get_response(request)
