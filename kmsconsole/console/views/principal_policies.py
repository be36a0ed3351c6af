"""Inline identity policies of users, roles and groups: view, create, replace, delete, and the editor's live check.

The document is edited in the shared policy editor markup (a plain textarea without JavaScript); the service
validates it on save through the engine, whatever the browser did.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from kmsconsole.console.dispatch import Outcome, attempt, console_view
from kmsconsole.console.policy_check import identity_policy_check, posted_policy
from kmsconsole.console.sudo import sudo_required
from kmsconsole.console.views.principals import PLURALS, entity_params, error_page, noun, status_of
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies import arns, services
from policies.authorization import authorize
from policies.models import IdentityPolicy

# What a new inline policy starts from: valid, and allowing nothing until the person writes a statement.
STARTER_DOCUMENT = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [], "Resource": "*"}]}, indent=2
)


def _policy_params(kind: str, account_id: str, name: str, policy_name: str, **more: Any) -> dict[str, Any]:
    return entity_params(kind, account_id, name, PolicyName=policy_name, **more)


def _field_errors(outcome: Outcome[Any]) -> dict[str, str]:
    """A rejected policy name is the name field's fault; anything the engine found is the document's."""
    if outcome.code == "ValidationException" and "policyName" in outcome.error:
        return {"policy_name": outcome.error}
    if outcome.code == "EntityAlreadyExists":
        return {"policy_name": outcome.error}
    if outcome.code == "MalformedPolicyDocumentException":
        return {"policy": outcome.error}
    return {}


def _editor(
    request: HttpRequest,
    *,
    kind: str,
    account_id: str,
    name: str,
    policy_name: str,
    document: str,
    creating: bool,
    outcome: Outcome[Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    field_errors = _field_errors(outcome) if outcome is not None else {}
    # Where in the text the engine's complaint is, for the page without the editor's script.
    located = identity_policy_check(document)["errors"] if "policy" in field_errors else []
    context = {
        "kind": kind,
        "label": PLURALS[kind],
        "account_id": account_id,
        "name": name,
        "policy_name": policy_name,
        "document": document,
        "creating": creating,
        "policy_name_max": arns.POLICY_NAME_MAX,
        "field_errors": field_errors,
        "located": located,
        "error": outcome.error if outcome is not None and not field_errors else "",
    }
    return render(request, "console/identity_policy_edit.html", context, status=status)


def _put(
    request: HttpRequest, *, kind: str, account_id: str, name: str, policy_name: str, document: str, new: bool
) -> Outcome[IdentityPolicy]:
    """iam:Put<Kind>Policy. A new policy must not silently replace one of the same name."""

    def work(ctx: OperationContext) -> IdentityPolicy:
        owner = services.entity_describe(
            ctx=ctx,
            account=services.entity_account(ctx=ctx, account_id=account_id, kind=kind, name=name),
            kind=kind,
            name=name,
        )
        if new and owner.policies.filter(name=policy_name).exists():
            raise errors.EntityAlreadyExistsException(
                f"This {kind} already has a policy named {policy_name}. Open it to change it, or choose "
                "another name."
            )
        return services.identity_policy_put(ctx=ctx, owner=owner, policy_name=policy_name, document=document)

    params = _policy_params(kind, account_id, name, policy_name, PolicyDocument=document)
    return attempt(request, f"iam:Put{noun(kind)}Policy", work, params=params)


def _submit(
    request: HttpRequest, *, kind: str, account_id: str, name: str, policy_name: str, new: bool
) -> HttpResponse:
    """Save the posted document (iam:Put<Kind>Policy), then show the saved policy; what the service refuses
    comes back in the editor as typed, with the service's words."""
    document = posted_policy(request)
    outcome = _put(
        request,
        kind=kind,
        account_id=account_id,
        name=name,
        policy_name=policy_name,
        document=document,
        new=new,
    )
    if outcome.ok:
        messages.success(request, f"Saved policy {policy_name} on {kind} {name}.")
        return redirect("console:identity-policy", account_id, kind, name, policy_name)
    return _editor(
        request,
        kind=kind,
        account_id=account_id,
        name=name,
        policy_name=policy_name,
        document=document,
        creating=new,
        outcome=outcome,
        status=status_of(outcome),
    )


@console_view
@sudo_required(keep=("policy_name", "policy"))
@require_http_methods(["GET", "POST"])
def identity_policy_create(request: HttpRequest, account_id: str, kind: str, name: str) -> HttpResponse:
    """GET: an editor for a new inline policy. POST: iam:Put<Kind>Policy, refusing a name already in use."""
    if request.method == "POST":
        policy_name = request.POST.get("policy_name", "").strip()
        return _submit(
            request, kind=kind, account_id=account_id, name=name, policy_name=policy_name, new=True
        )
    return _editor(
        request,
        kind=kind,
        account_id=account_id,
        name=name,
        policy_name="",
        document=STARTER_DOCUMENT,
        creating=True,
    )


def _describe(request: HttpRequest, kind: str, account_id: str, name: str, policy_name: str) -> Outcome[Any]:
    """iam:Get<Kind>Policy."""
    return attempt(
        request,
        f"iam:Get{noun(kind)}Policy",
        lambda ctx: services.identity_policy_describe(
            ctx=ctx,
            account=services.entity_account(ctx=ctx, account_id=account_id, kind=kind, name=name),
            kind=kind,
            owner_name=name,
            policy_name=policy_name,
        ),
        params=_policy_params(kind, account_id, name, policy_name),
    )


@console_view
@sudo_required(keep=("policy",))
@require_http_methods(["GET", "POST"])
def identity_policy_edit(
    request: HttpRequest, account_id: str, kind: str, name: str, policy_name: str
) -> HttpResponse:
    """GET: the policy in the editor (iam:Get<Kind>Policy). POST: replace it (iam:Put<Kind>Policy)."""
    if request.method == "POST":
        return _submit(
            request, kind=kind, account_id=account_id, name=name, policy_name=policy_name, new=False
        )
    found = _describe(request, kind, account_id, name, policy_name)
    if not found.ok or found.value is None:
        return error_page(request, found, heading=f"Policy {policy_name}")
    return _editor(
        request,
        kind=kind,
        account_id=account_id,
        name=name,
        policy_name=policy_name,
        document=found.value.document,
        creating=False,
    )


@console_view
@sudo_required()
@require_http_methods(["GET", "POST"])
def identity_policy_delete(
    request: HttpRequest, account_id: str, kind: str, name: str, policy_name: str
) -> HttpResponse:
    """GET: confirm (the policy must exist and be readable). POST: iam:Delete<Kind>Policy."""
    context = {"kind": kind, "label": PLURALS[kind], "account_id": account_id, "name": name}
    if request.method != "POST":
        found = _describe(request, kind, account_id, name, policy_name)
        if not found.ok:
            return error_page(request, found, heading=f"Policy {policy_name}")
        return render(request, "console/identity_policy_delete.html", {**context, "policy": found.value})
    outcome = attempt(
        request,
        f"iam:Delete{noun(kind)}Policy",
        lambda ctx: services.identity_policy_delete(
            ctx=ctx,
            account=services.entity_account(ctx=ctx, account_id=account_id, kind=kind, name=name),
            kind=kind,
            owner_name=name,
            policy_name=policy_name,
        ),
        params=_policy_params(kind, account_id, name, policy_name),
    )
    if outcome.ok:
        messages.success(request, f"Deleted policy {policy_name} from {kind} {name}.")
        return redirect(f"console:{kind}", account_id, name)
    return error_page(request, outcome, heading=f"Policy {policy_name}")


def _draft(request: HttpRequest) -> str | None:
    """The draft the editor sends: form field `policy`, or a JSON body {"policy": ...}; None for a JSON body of
    another shape (answered as such, not as an empty policy)."""
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return None
        value = body.get("policy", "") if isinstance(body, dict) else None
        return value if isinstance(value, str) else None
    return posted_policy(request)


@console_view
@require_POST
def identity_policy_validate(request: HttpRequest) -> HttpResponse:
    """The editor's live check of a draft (kmsconsole:ValidateIdentityPolicy): the engine's errors at their
    lines, the lockout warning and the findings, as JSON. Nothing is saved."""
    document = _draft(request)

    def work(ctx: OperationContext) -> dict[str, Any]:
        if document is None:
            raise errors.SerializationException('The body must be a JSON object with a text member "policy".')
        authorize(ctx, resource="*")  # account-level: a draft is nobody's resource yet
        return identity_policy_check(document)

    params = {"PolicyDocument": document} if document is not None else {}
    outcome = attempt(request, "kmsconsole:ValidateIdentityPolicy", work, params=params)
    if not outcome.ok:
        refused = {"valid": False, "errors": [], "lockout": False, "findings": [], "error": outcome.error}
        return JsonResponse(refused, status=status_of(outcome))
    return JsonResponse(outcome.value)
