"""Who is calling the REST API: an API token (`Authorization: Bearer kmsc_…`) or a console session whose login is
linked to an IAM user (ConsoleIdentity). Either way the request acts as that IAM user, as a `Caller`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from kmsconsole.api.tokens import TOKEN_SCHEME, token_check
from kmsconsole.audit.authevents import RELINKED, record_refused
from kmsconsole.console.sudo import sudo_fresh
from kmsconsole.core import errors, ratelimit
from kmsconsole.core.context import Caller, RequestMeta
from kmsconsole.core.middleware import client_ip, http_request_meta
from policies.models import ConsoleIdentity, IamUser

BEARER = "Bearer"
# The public part of a presented token (kmsc_<12 hex digits>_<secret>): what a refused token is audited as.
_TOKEN_ID = re.compile(rf"^{TOKEN_SCHEME}_([0-9a-f]{{12}})_")


def request_meta(request: Request) -> RequestMeta:
    return http_request_meta(request._request, "api")


def presented_token_id(request: Request) -> str:
    """`kmsc_<prefix>` of the bearer token presented, or "" for anything else (never the secret)."""
    header = authentication.get_authorization_header(request).decode("latin-1")
    scheme, _, value = header.partition(" ")
    found = _TOKEN_ID.match(value.strip()) if scheme == BEARER else None
    return f"{TOKEN_SCHEME}_{found.group(1)}" if found else ""


class AddressThrottled(exceptions.Throttled):
    """The address failed authentication too often recently: refused before its credentials are looked at."""

    def __init__(self, refusal: ratelimit.Throttled) -> None:
        super().__init__(wait=refusal.retry_after, detail=refusal.message)
        self.refusal = refusal


def user_caller(user: IamUser, *, access_key_id: str = "") -> Caller:
    """The caller an IAM user is, the same shape policies.selectors.credentials_for builds for its access keys."""
    return Caller(
        arn=user.arn,
        account_id=user.account.account_id,
        principal_type="IAMUser",
        access_key_id=access_key_id,
        user_pk=user.pk,
        username=user.name,
        userid=user.unique_id,
    )


@dataclass(frozen=True)
class ApiPrincipal:
    """`request.user` on the API: the IAM user the request acts as."""

    caller: Caller
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def pk(self) -> str:
        return self.caller.arn


class TokenRefused(exceptions.AuthenticationFailed):
    """A bearer token refused (401 as any). `presented`: the user of the real token it names (a wrong secret, an
    expired or revoked token), whose account's trail gets the refusal's event; None for a token nobody has."""

    def __init__(self, presented: Caller | None) -> None:
        super().__init__("The API token is invalid, expired or revoked.")
        self.presented = presented


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer kmsc_<prefix>_<secret>`; unknown, expired and revoked tokens are 401."""

    def authenticate(self, request: Request) -> tuple[ApiPrincipal, Any] | None:
        # The first authenticator DRF runs, so the address check comes before any credential is looked at.
        try:
            ratelimit.check_address(client_ip(request._request))
        except ratelimit.Throttled as refusal:
            raise AddressThrottled(refusal) from None
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, value = header.partition(" ")
        if scheme != BEARER:
            return None
        checked = token_check(value.strip())
        if checked.live is None:
            raise TokenRefused(user_caller(checked.named) if checked.named is not None else None)
        token, user = checked.live
        return ApiPrincipal(user_caller(user, access_key_id=str(token))), token

    def authenticate_header(self, request: Request) -> str:
        return f'{BEARER} realm="kmsconsole"'


SUDO_NEEDED = (
    "A console session changes nothing through the REST API until its password is confirmed again (sudo mode): "
    "confirm it in the console, or use an API token."
)


class ConsoleSessionAuthentication(authentication.SessionAuthentication):
    """The console's session (CSRF enforced on unsafe methods). A login not linked to an IAM user is 403.

    Unsafe methods also need sudo mode, as the console's own destructive actions do: otherwise a stolen session
    cookie could disable keys or rewrite policies through the API without the password the console asks for."""

    def authenticate(self, request: Request) -> tuple[ApiPrincipal, Any] | None:
        login = getattr(request._request, "user", None)
        if login is None or not login.is_active or not login.is_authenticated:
            return None
        self.enforce_csrf(request)
        if request.method not in permissions.SAFE_METHODS and not sudo_fresh(request._request):
            raise exceptions.PermissionDenied(SUDO_NEEDED)
        identity = (
            ConsoleIdentity.objects.select_related("iam_user__account").filter(login_id=login.pk).first()
        )
        if identity is None:
            raise exceptions.PermissionDenied("This console login is not linked to an IAM principal.")
        try:
            identity.check_row()  # a login relinked to another IAM user in the database fails closed
        except errors.KmsError as error:
            record_refused(
                request_meta(request),
                error,
                params={"ConsoleLogin": login.get_username()},
                reason=RELINKED,
            )
            raise
        return ApiPrincipal(user_caller(identity.iam_user)), None
