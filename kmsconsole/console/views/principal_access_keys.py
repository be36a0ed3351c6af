"""A user's access keys: create (the secret is shown once, on the response itself), activate or deactivate,
delete.

The secret access key exists in clear only in the service's return value and in the one response that shows
it: never in a redirect, a flash message, the session or the audit trail, and the response is not cached.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from kmsconsole.console.dispatch import Outcome, attempt, console_view
from kmsconsole.console.sudo import sudo_required
from kmsconsole.console.views.principals import (
    attempt_on_entity,
    entity_page,
    entity_params,
    error_page,
    status_of,
)
from policies import services
from policies.models import AccessKey


@console_view
@sudo_required()
@require_POST
@never_cache
def access_key_create(request: HttpRequest, account_id: str, name: str) -> HttpResponse:
    """iam:CreateAccessKey. The response page is the only place the secret ever appears."""
    outcome = attempt(
        request,
        "iam:CreateAccessKey",
        lambda ctx: services.access_key_create(
            ctx=ctx,
            account=services.entity_account(ctx=ctx, account_id=account_id, kind="user", name=name),
            user_name=name,
        ),
        params=entity_params("user", account_id, name),
        # The id and status only: the secret is never recorded (the operation marks it secret as well).
        audit_response=lambda key: {"AccessKeyId": key.access_key_id, "UserName": name, "Status": key.status},
    )
    if not outcome.ok:
        return entity_page(
            request, account_id, "user", name, status=status_of(outcome), access_key_error=outcome.error
        )
    context = {"account_id": account_id, "name": name, "created": outcome.value}
    return render(request, "console/access_key_created.html", context)


@console_view
@sudo_required(keep=("status",))
@require_POST
def access_key_status(request: HttpRequest, account_id: str, name: str, access_key_id: str) -> HttpResponse:
    """iam:UpdateAccessKey: Active or Inactive (an inactive key fails every signed request at once)."""
    status = request.POST.get("status", "")
    outcome = attempt_on_entity(
        request,
        "iam:UpdateAccessKey",
        ("user", account_id, name),
        lambda ctx, account: services.access_key_set_status(
            ctx=ctx, account=account, access_key_id=access_key_id, status=status, user_name=name
        ),
        AccessKeyId=access_key_id,
        Status=status,
    )
    if outcome.ok:
        state = "active" if status == AccessKey.Status.ACTIVE else "inactive"
        messages.success(request, f"Access key {access_key_id} is now {state}.")
        return redirect("console:user", account_id, name)
    return entity_page(
        request,
        account_id,
        "user",
        name,
        status=status_of(outcome, missing=400),
        access_key_error=outcome.error,
    )


@console_view
@sudo_required()
@require_http_methods(["GET", "POST"])
def access_key_delete(request: HttpRequest, account_id: str, name: str, access_key_id: str) -> HttpResponse:
    """GET: confirm, naming the key (it must be one of the user's, iam:ListAccessKeys). POST:
    iam:DeleteAccessKey."""
    if request.method != "POST":
        listed = attempt(
            request,
            "iam:ListAccessKeys",
            lambda ctx: (
                services.access_key_list(
                    ctx=ctx,
                    account=services.entity_account(ctx=ctx, account_id=account_id, kind="user", name=name),
                    user_name=name,
                )
                .filter(access_key_id=access_key_id)
                .first()
            ),
            params=entity_params("user", account_id, name),
        )
        if listed.ok and listed.value is None:
            listed = Outcome(error=f"User {name} has no access key {access_key_id}.", code="NoSuchEntity")
        if not listed.ok:
            return error_page(request, listed, heading=f"Access key {access_key_id}")
        return render(
            request,
            "console/access_key_delete.html",
            {"account_id": account_id, "name": name, "key": listed.value},
        )
    outcome = attempt_on_entity(
        request,
        "iam:DeleteAccessKey",
        ("user", account_id, name),
        lambda ctx, account: services.access_key_delete(
            ctx=ctx, account=account, access_key_id=access_key_id, user_name=name
        ),
        AccessKeyId=access_key_id,
    )
    if outcome.ok:
        messages.success(request, f"Deleted access key {access_key_id}. Requests signed with it now fail.")
        return redirect("console:user", account_id, name)
    return error_page(request, outcome, heading=f"Access key {access_key_id}")
