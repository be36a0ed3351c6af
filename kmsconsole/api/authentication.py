"""Who is calling the REST API: an API token (`Authorization: Bearer kmsc_…`) or a console session whose login is
linked to an IAM user (ConsoleIdentity). Either way the request acts as that IAM user, as a `Caller`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from kmsconsole.api.tokens import token_principal
from kmsconsole.core.context import Caller
from policies.models import ConsoleIdentity, IamUser

BEARER = "Bearer"


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


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer kmsc_<prefix>_<secret>`; unknown, expired and revoked tokens are 401."""

    def authenticate(self, request: Request) -> tuple[ApiPrincipal, Any] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, value = header.partition(" ")
        if scheme != BEARER:
            return None
        found = token_principal(value.strip())
        if found is None:
            raise exceptions.AuthenticationFailed("The API token is invalid, expired or revoked.")
        token, user = found
        return ApiPrincipal(user_caller(user, access_key_id=str(token))), token

    def authenticate_header(self, request: Request) -> str:
        return f'{BEARER} realm="kmsconsole"'


class ConsoleSessionAuthentication(authentication.SessionAuthentication):
    """The console's session (CSRF enforced on unsafe methods). A login not linked to an IAM user is 403."""

    def authenticate(self, request: Request) -> tuple[ApiPrincipal, Any] | None:
        login = getattr(request._request, "user", None)
        if login is None or not login.is_active or not login.is_authenticated:
            return None
        self.enforce_csrf(request)
        identity = (
            ConsoleIdentity.objects.select_related("iam_user__account").filter(login_id=login.pk).first()
        )
        if identity is None:
            raise exceptions.PermissionDenied("This console login is not linked to an IAM principal.")
        return ApiPrincipal(user_caller(identity.iam_user)), None
