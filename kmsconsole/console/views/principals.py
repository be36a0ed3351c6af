"""The Principals pages: an account's users, roles and groups, each entity's page, and group membership.
Deleting an entity and its console logins: kmsconsole/console/views/principal_deletion.py.

Every read and change is one operation run as the signed-in principal (dispatch.attempt), with the IAM operation
names the REST API uses, so the engine decides and the audit trail records it. The account comes from the URL:
the engine refuses acting on another account's principals, and an entity page of another account answers exactly
as one of a name that does not exist (404, the same words), so the pages tell no one which principals exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kmsconsole.console.dispatch import Outcome, Value, attempt, console_caller, console_view
from kmsconsole.console.sudo import safe_next, sudo_required
from kmsconsole.operations import OperationContext
from policies import arns, services
from policies.models import Account, IamUser
from policies.selectors import Entity

KINDS = ("user", "role", "group")
PLURALS = {"user": "Users", "role": "Roles", "group": "Groups"}
NAME_MAX = {"user": arns.USER_NAME_MAX, "role": arns.ROLE_NAME_MAX, "group": arns.GROUP_NAME_MAX}
PAGE_SIZE = 50
# Page loads: a refusal is 403 and an unknown entity 404 (and another account's entity, existing or not, is unknown:
# policies.services.lookups.refuse_as_unknown_elsewhere). Form input the service rejects is 400 (see status_of).
STATUS_FOR_CODE = {"AccessDeniedException": 403, "NoSuchEntity": 404, "DeleteConflict": 409}

CREATE: dict[str, Callable[[OperationContext, Account, str, str], Entity]] = {
    "user": lambda ctx, account, name, path: services.user_create(
        ctx=ctx, account=account, user_name=name, path=path
    ),
    "role": lambda ctx, account, name, path: services.role_create(
        ctx=ctx, account=account, role_name=name, path=path
    ),
    "group": lambda ctx, account, name, path: services.group_create(
        ctx=ctx, account=account, group_name=name, path=path
    ),
}


def noun(kind: str) -> str:
    """ "User", "Role", "Group": the word in the IAM operation names (iam:GetUser, iam:ListRolePolicies, ...)."""
    return kind.capitalize()


def entity_params(kind: str, account_id: str, name: str, **more: Any) -> dict[str, Any]:
    """The audited request parameters of an operation on one entity, in IAM's shapes."""
    return {"AccountId": account_id, f"{noun(kind)}Name": name, **more}


def attempt_on_entity(
    request: HttpRequest,
    operation: str,
    target: tuple[str, str, str],
    work: Callable[[OperationContext, Account], Value],
    *,
    audit_response: Callable[[Value], dict[str, Any]] | None = None,
    **params: Any,
) -> Outcome[Value]:
    """`attempt()` an operation on the entity a URL names, `target` = (kind, account id, name): `work` gets the
    account (another account's entity is answered as an unknown one) and `params` join the entity's own."""
    kind, account_id, name = target
    return attempt(
        request,
        operation,
        lambda ctx: work(ctx, services.entity_account(ctx=ctx, account_id=account_id, kind=kind, name=name)),
        params=entity_params(kind, account_id, name, **params),
        audit_response=audit_response,
    )


def status_of(outcome: Outcome[Any], *, missing: int = 404) -> int:
    """The HTTP status for a failed outcome. `missing=400` where the unknown name was typed into a form."""
    if outcome.code == "NoSuchEntity":
        return missing
    return STATUS_FOR_CODE.get(outcome.code, 400)


def error_page(
    request: HttpRequest, outcome: Outcome[Any], *, heading: str, action_error: str = ""
) -> HttpResponse:
    """A page that could not be shown: the refusal or the missing entity, in words."""
    context = {"heading": heading, "error": outcome.error, "action_error": action_error}
    return render(request, "console/principal_refused.html", context, status=status_of(outcome))


# The list page.


def _section(request: HttpRequest, kind: str, account_id: str, page_number: str | None) -> dict[str, Any]:
    """One kind's count (and, for the shown tab, its page of rows): iam:ListUsers, iam:ListRoles, iam:ListGroups."""

    def work(ctx: OperationContext) -> tuple[int, Any]:
        account = services.principals_account(ctx, account_id=account_id, kind=kind)
        rows = services.entity_list(ctx=ctx, account=account, kind=kind)
        if page_number is None:
            return rows.count(), None
        page = Paginator(rows, PAGE_SIZE).get_page(page_number)
        page.object_list = list(page.object_list)  # read inside the operation, not later in the template
        return page.paginator.count, page

    params = (
        {"AccountId": account_id} if page_number is None else {"AccountId": account_id, "Page": page_number}
    )
    outcome = attempt(request, f"iam:List{noun(kind)}s", work, params=params)
    count, page = outcome.value if outcome.ok and outcome.value else (None, None)
    return {"kind": kind, "label": PLURALS[kind], "count": count, "page": page, "outcome": outcome}


@console_view
@require_GET
def principal_list(request: HttpRequest) -> HttpResponse:
    """The accounts the caller may see, and the selected account's users, roles and groups (one tab shown)."""
    caller = console_caller(request)
    assert caller is not None  # noqa: S101 - console_view lets only linked logins in
    accounts = attempt(request, "kmsconsole:ListAccounts", lambda ctx: list(services.account_list(ctx=ctx)))
    account_id = request.GET.get("account", "").strip() or caller.account_id
    tab = request.GET.get("tab", "")
    tab = tab if tab in KINDS else "user"
    sections = [
        _section(request, kind, account_id, request.GET.get("page", "1") if kind == tab else None)
        for kind in KINDS
    ]
    failures = [section["outcome"] for section in sections if not section["outcome"].ok]
    context = {
        "accounts": accounts,
        "account_id": account_id,
        "own_account": account_id == caller.account_id,
        "sections": sections,
        "shown": next(section for section in sections if section["kind"] == tab),
        **_create_form_context(tab, account_id),
    }
    status = status_of(failures[0]) if len(failures) == len(sections) else 200
    return render(request, "console/principal_list.html", context, status=status)


# Creating a user, role or group.


def _create_form_context(
    kind: str,
    account_id: str,
    values: dict[str, str] | None = None,
    field_errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "create_kind": kind,
        "create_url": reverse(f"console:{kind}-create", args=[account_id]),
        "name_max": NAME_MAX[kind],
        "values": values or {"name": "", "path": "/"},
        "field_errors": field_errors or {},
    }


def create_field_errors(outcome: Outcome[Any]) -> dict[str, str]:
    """Which field a refused create is about. The service's ValidationException names the value it rejected
    ("The specified value for path is invalid ..."); an existing name is the name's fault."""
    if outcome.code == "ValidationException":
        return {"path" if "for path" in outcome.error else "name": outcome.error}
    if outcome.code == "EntityAlreadyExists":
        return {"name": outcome.error}
    return {}


@console_view
@require_http_methods(["GET", "POST"])
def entity_create(request: HttpRequest, account_id: str, kind: str) -> HttpResponse:
    """GET: the create form. POST: iam:CreateUser / iam:CreateRole / iam:CreateGroup, then the new entity's
    page; a name or path the service rejects comes back beside its field (400), as typed."""
    context: dict[str, Any] = {"account_id": account_id, "kind": kind, "label": PLURALS[kind], "error": ""}
    if request.method != "POST":
        return render(
            request, "console/principal_create.html", {**context, **_create_form_context(kind, account_id)}
        )
    values = {
        "name": request.POST.get("name", "").strip(),
        "path": request.POST.get("path", "").strip() or "/",
    }
    outcome = attempt(
        request,
        f"iam:Create{noun(kind)}",
        lambda ctx: CREATE[kind](
            ctx,
            services.principals_account(ctx, account_id=account_id, kind=kind),
            values["name"],
            values["path"],
        ),
        params=entity_params(kind, account_id, values["name"], Path=values["path"]),
        audit_response=lambda entity: {"Arn": entity.arn, f"{noun(kind)}Id": entity.unique_id},
    )
    if outcome.ok:
        messages.success(request, f"Created {kind} {values['name']}.")
        return redirect(f"console:{kind}", account_id, values["name"])
    field_errors = create_field_errors(outcome)
    context.update(_create_form_context(kind, account_id, values, field_errors))
    context["error"] = "" if field_errors else outcome.error
    return render(request, "console/principal_create.html", context, status=status_of(outcome))


# An entity's page.


def describe_entity(ctx: OperationContext, account_id: str, kind: str, name: str) -> tuple[Entity, list[Any]]:
    """iam:GetUser / GetRole / GetGroup: the entity, with a user's groups or a group's members. Another account's
    principal is answered as an unknown one, whether it or its account exists or not."""
    account = services.entity_account(ctx=ctx, account_id=account_id, kind=kind, name=name)
    if kind == "group":
        return services.group_members(ctx=ctx, account=account, group_name=name)
    entity = services.entity_describe(ctx=ctx, account=account, kind=kind, name=name)
    related = list(entity.groups.order_by("name", "pk")) if isinstance(entity, IamUser) else []
    return entity, related


def entity_page(
    request: HttpRequest, account_id: str, kind: str, name: str, *, status: int = 200, **extra: Any
) -> HttpResponse:
    """The page of a user, role or group; actions that fail re-render it with their error in `extra` (which
    the templates show beside the form that failed)."""
    described = attempt(
        request,
        f"iam:Get{noun(kind)}",
        lambda ctx: describe_entity(ctx, account_id, kind, name),
        params=entity_params(kind, account_id, name),
    )
    if not described.ok or described.value is None:
        action_error = next((str(v) for k, v in extra.items() if k.endswith("_error") and v), "")
        return error_page(request, described, heading=f"{noun(kind)} {name}", action_error=action_error)
    entity, related = described.value
    policies = attempt(
        request,
        f"iam:List{noun(kind)}Policies",
        lambda ctx: list(
            services.identity_policy_list(ctx=ctx, account=entity.account, kind=kind, owner_name=name)
        ),
        params=entity_params(kind, account_id, name),
    )
    context: dict[str, Any] = {
        "kind": kind,
        "label": PLURALS[kind],
        "account_id": account_id,
        "entity": entity,
        "related": related,
        "policies": policies,
    }
    if isinstance(entity, IamUser):
        context["access_keys"] = attempt(
            request,
            "iam:ListAccessKeys",
            lambda ctx: list(services.access_key_list(ctx=ctx, account=entity.account, user_name=name)),
            params=entity_params(kind, account_id, name),
        )
        context["access_keys_max"] = services.ACCESS_KEYS_PER_OWNER
    return render(request, f"console/{kind}_detail.html", {**context, **extra}, status=status)


@console_view
@require_GET
def entity_detail(request: HttpRequest, account_id: str, kind: str, name: str) -> HttpResponse:
    return entity_page(request, account_id, kind, name)


# Group membership.


def _change_membership(
    request: HttpRequest, account_id: str, name: str, user_name: str, *, add: bool
) -> Outcome[None]:
    """iam:AddUserToGroup or iam:RemoveUserFromGroup."""
    operation, change = (
        ("iam:AddUserToGroup", services.group_add_user)
        if add
        else ("iam:RemoveUserFromGroup", services.group_remove_user)
    )
    return attempt(
        request,
        operation,
        lambda ctx: change(
            ctx=ctx,
            account=services.entity_account(ctx=ctx, account_id=account_id, kind="group", name=name),
            group_name=name,
            user_name=user_name,
        ),
        params=entity_params("group", account_id, name, UserName=user_name),
    )


@console_view
@sudo_required(keep=("user_name",))
@require_POST
def group_member_add(request: HttpRequest, account_id: str, name: str) -> HttpResponse:
    """iam:AddUserToGroup with the user name typed on the group's page."""
    user_name = request.POST.get("user_name", "").strip()
    outcome = (
        _change_membership(request, account_id, name, user_name, add=True)
        if user_name
        else Outcome[None](error="Enter the name of a user to add.", code="ValidationException")
    )
    if outcome.ok:
        messages.success(request, f"Added {user_name} to group {name}.")
        return redirect("console:group", account_id, name)
    return entity_page(
        request,
        account_id,
        "group",
        name,
        status=status_of(outcome, missing=400),
        member_error=outcome.error,
        member_value=user_name,
    )


@console_view
@sudo_required(keep=("next",))
@require_POST
def group_member_remove(request: HttpRequest, account_id: str, name: str, user_name: str) -> HttpResponse:
    """iam:RemoveUserFromGroup, from the group's page or the user's (`next` says which to return to)."""
    outcome = _change_membership(request, account_id, name, user_name, add=False)
    if outcome.ok:
        messages.success(request, f"Removed {user_name} from group {name}.")
        back = reverse("console:group", args=[account_id, name])
        return redirect(safe_next(request, request.POST.get("next"), back))
    return entity_page(
        request, account_id, "group", name, status=status_of(outcome, missing=400), member_error=outcome.error
    )
