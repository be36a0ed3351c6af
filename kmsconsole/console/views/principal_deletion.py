"""Deleting a user, role or group from its page, behind sudo, and a user's console logins.

GET shows a confirmation page (iam:Get<Kind>) with what blocks the deletion, as IAM's DeleteConflict would name
it. Each list is shown only under the read that shows it on the entity's own page: access key ids under
iam:ListAccessKeys, inline policy names under iam:List<Kind>Policies, a user's groups and a group's members under
iam:Get<Kind> (as the entity page lists them); without that read only AWS's conflict sentence is shown. Console
sign-in names are never listed: the page says that a console login exists. Each item comes with a link or a
button to the page or action that removes it, which is its own operation (its own authorization, sudo and audit
event), as the rest of the console does it; nothing is removed on the person's behalf. POST is iam:DeleteUser /
iam:DeleteRole / iam:DeleteGroup (a user's API tokens are revoked with it); a conflict left (or one that appeared
meanwhile) comes back on the same page with AWS's words, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from kmsconsole.console.dispatch import attempt, console_view
from kmsconsole.console.sudo import safe_next, sudo_required
from kmsconsole.console.views.principals import (
    PLURALS,
    attempt_on_entity,
    describe_entity,
    entity_params,
    error_page,
    noun,
    status_of,
)
from kmsconsole.operations import OperationContext
from policies import services
from policies.deletion import Blocker, deletion_blockers
from policies.models import Account
from policies.selectors import Entity

DELETE: dict[str, Callable[[OperationContext, Account, str], services.DeletedEntity]] = {
    "user": lambda ctx, account, name: services.user_delete(ctx=ctx, account=account, user_name=name),
    "role": lambda ctx, account, name: services.role_delete(ctx=ctx, account=account, role_name=name),
    "group": lambda ctx, account, name: services.group_delete(ctx=ctx, account=account, group_name=name),
}


def _removal(kind: str, account_id: str, name: str, what: str, item: str) -> dict[str, Any]:
    """How the page offers to remove one blocking item: a link to its own confirmation page, or a button posting
    its own operation."""
    if what == "access-keys":
        href = reverse("console:access-key-delete", args=[account_id, name, item])
        return {"item": item, "href": href, "label": f"Delete access key {item}"}
    if what == "policies":
        href = reverse("console:identity-policy-delete", args=[account_id, kind, name, item])
        return {"item": item, "href": href, "label": f"Delete policy {item}"}
    if what == "groups":
        action = reverse("console:group-member-remove", args=[account_id, item, name])
        return {"item": item, "action": action, "label": f"Remove {name} from group {item}"}
    action = reverse("console:group-member-remove", args=[account_id, name, item])
    return {"item": item, "action": action, "label": f"Remove {item} from this group"}


def _listed_items(
    request: HttpRequest, kind: str, account_id: str, entity: Entity, blocker: Blocker
) -> list[str] | None:
    """The blocking items the viewer may see, under the read the entity's own page lists them with; None when
    that read is refused (or the items are never listed: console sign-in names)."""
    name = entity.name
    params = entity_params(kind, account_id, name)
    if blocker.what in ("groups", "members"):
        return list(blocker.items)  # iam:Get<Kind> shows them, as on the entity's page
    if blocker.what == "access-keys":
        keys = attempt(
            request,
            "iam:ListAccessKeys",
            lambda ctx: [
                key.access_key_id
                for key in services.access_key_list(ctx=ctx, account=entity.account, user_name=name)
            ],
            params=params,
        )
        return keys.value if keys.ok else None
    if blocker.what == "policies":
        policies = attempt(
            request,
            f"iam:List{noun(kind)}Policies",
            lambda ctx: [
                policy.name
                for policy in services.identity_policy_list(
                    ctx=ctx, account=entity.account, kind=kind, owner_name=name
                )
            ],
            params=params,
        )
        return policies.value if policies.ok else None
    return None


def _shown(
    request: HttpRequest, kind: str, account_id: str, entity: Entity, blocker: Blocker
) -> dict[str, Any]:
    shown: dict[str, Any] = {"message": blocker.message, "removals": []}
    if blocker.what == "console-logins":
        count = len(blocker.items)
        shown["note"] = (
            "This user has a console login." if count == 1 else f"This user has {count} console logins."
        )
        action = reverse("console:console-login-delete", args=[account_id, entity.name])
        label = "Delete its console login" if count == 1 else "Delete its console logins"
        shown["removals"] = [{"item": "", "action": action, "label": label}]
        return shown
    items = _listed_items(request, kind, account_id, entity, blocker)
    if items is None:
        shown["note"] = (
            "You may not list them here; the action that lists them on the page of the " + kind + " may."
        )
    else:
        shown["removals"] = [_removal(kind, account_id, entity.name, blocker.what, item) for item in items]
    return shown


def delete_page(
    request: HttpRequest, account_id: str, kind: str, name: str, *, error: str = "", status: int = 200
) -> HttpResponse:
    """The confirmation page, with what blocks the deletion now; `error` is the refusal of the last attempt."""

    def work(ctx: OperationContext) -> tuple[Entity, list[Blocker]]:
        entity, _ = describe_entity(ctx, account_id, kind, name)
        return entity, deletion_blockers(entity)

    described = attempt(request, f"iam:Get{noun(kind)}", work, params=entity_params(kind, account_id, name))
    if not described.ok or described.value is None:
        return error_page(request, described, heading=f"Delete {kind} {name}", action_error=error)
    entity, blockers = described.value
    context = {
        "kind": kind,
        "label": PLURALS[kind],
        "account_id": account_id,
        "entity": entity,
        "blockers": [_shown(request, kind, account_id, entity, blocker) for blocker in blockers],
        "error": error,
    }
    return render(request, "console/principal_delete.html", context, status=status)


@console_view
@sudo_required(keep=("next",))
@require_http_methods(["GET", "POST"])
def entity_delete(request: HttpRequest, account_id: str, kind: str, name: str) -> HttpResponse:
    """GET: confirm, listing what blocks the deletion. POST: iam:Delete<Kind>, then the account's list."""
    if request.method != "POST":
        return delete_page(request, account_id, kind, name)
    outcome = attempt_on_entity(
        request,
        f"iam:Delete{noun(kind)}",
        (kind, account_id, name),
        lambda ctx, account: DELETE[kind](ctx, account, name),
        audit_response=lambda deleted: deleted.audit_elements(),
    )
    if outcome.ok and outcome.value is not None:
        ended = outcome.value.sessions_ended
        sessions = f" {ended} role session(s) ended with it." if ended else ""
        messages.success(request, f"Deleted {kind} {name}.{sessions}")
        return redirect(f"{reverse('console:principals')}?account={account_id}&tab={kind}")
    if outcome.code == "DeleteConflict":
        return delete_page(request, account_id, kind, name, error=outcome.error, status=409)
    return error_page(request, outcome, heading=f"Delete {kind} {name}")


@console_view
@sudo_required(keep=("login", "next"))
@require_POST
def console_login_delete(request: HttpRequest, account_id: str, name: str) -> HttpResponse:
    """kmsconsole:DeleteConsoleLogin: the console sign-in posted as `login`, of user `name`, and its sessions; with
    no `login` posted (the deletion page, which shows no sign-in names), every console sign-in of the user."""
    login = request.POST.get("login", "").strip() or None
    outcome = attempt_on_entity(
        request,
        "kmsconsole:DeleteConsoleLogin",
        ("user", account_id, name),
        lambda ctx, account: services.console_login_delete(
            ctx=ctx, account=account, user_name=name, login=login
        ),
        **({"Login": login} if login is not None else {"AllLogins": True}),
    )
    if outcome.ok:
        what = f"console login {login}: it" if login is not None else f"the console login of {name}: it"
        messages.success(request, f"Deleted {what} can no longer sign in, and its sessions end.")
        back = reverse("console:entity-delete", args=[account_id, "user", name])
        return redirect(safe_next(request, request.POST.get("next"), back))
    return delete_page(
        request, account_id, "user", name, error=outcome.error, status=status_of(outcome, missing=400)
    )
