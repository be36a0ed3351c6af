"""Console sign-in lockouts: django-axes's database handler, plus a limit per address across user names.

AXES_LOCKOUT_PARAMETERS locks a (user name, address) pair after AXES_FAILURE_LIMIT failures: a person who
mistypes is not locked out by strangers, and a guesser gets five tries per name. On its own that lets one address
try five passwords for every user name (password spraying). django-axes can also lock by address, but with the
same limit for every parameter, so five typos anywhere in an office behind one NAT address would lock the whole
office out. This handler keeps the pair limit and adds a larger one for the address alone:
KMS_SIGNIN_ADDRESS_FAILURE_LIMIT failures from one address, over all user names, within AXES_COOLOFF_TIME.
"""

from __future__ import annotations

from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest


def address_failures(request: HttpRequest) -> int:
    """Failed sign-ins from the request's address within the cool-off time, whatever the user name."""
    address = getattr(request, "axes_ip_address", None)
    if not address:
        return 0
    recent = AccessAttempt.objects.filter(
        ip_address=address, attempt_time__gte=get_cool_off_threshold(request)
    ).aggregate(total=Sum("failures_since_start"))
    return int(recent["total"] or 0)


class SignInLockoutHandler(AxesDatabaseHandler):
    """Locked: the (user name, address) pair is over AXES_FAILURE_LIMIT, or the address is over
    KMS_SIGNIN_ADDRESS_FAILURE_LIMIT. Checked by axes's backend before the password is, on every sign-in and sudo
    confirmation."""

    def is_locked(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> bool:
        return super().is_locked(request, credentials) or _address_locked(request)

    def user_login_failed(
        self, sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
    ) -> None:
        """axes marks the request locked out when the pair reaches its limit; the address limit does the same,
        so the failure that reaches it, and every refusal after it, shows the lockout page."""
        super().user_login_failed(sender, credentials, request, **kwargs)
        if (
            request is not None
            and not getattr(request, "axes_locked_out", False)
            and _address_locked(request)
        ):
            request.axes_locked_out = True  # type: ignore[attr-defined]


def _address_locked(request: HttpRequest) -> bool:
    limit = settings.KMS_SIGNIN_ADDRESS_FAILURE_LIMIT
    return bool(settings.AXES_LOCK_OUT_AT_FAILURE and limit > 0 and address_failures(request) >= limit)
