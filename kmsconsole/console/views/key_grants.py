"""The key's Grants tab: the grants with their constraints and whether they are in effect yet, revoking one (after
a confirmation, in sudo mode), and creating one, whose grant token is shown once."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from django import forms
from django.conf import settings
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from grants import services as grant_services
from grants.models import Grant
from grants.selectors import EQUALS, SUBSET
from keys.models import Key
from keys.services import lifecycle
from kmsconsole.api import reads
from kmsconsole.console.dispatch import Outcome, attempt, console_view
from kmsconsole.console.sudo import sudo_required
from kmsconsole.console.views.key_tabs import TabPage, act, key_params
from kmsconsole.operations import OperationContext
from policies import arns

TAB = "grants"
LIST_TEMPLATE = "console/key_grants.html"
CREATE_TEMPLATE = "console/grant_create.html"
GRANTS_PER_PAGE = 50
CREATE = ("kms:CreateGrant",)
# Where the new grant's token waits for the one page that shows it (popped there, so a reload shows nothing).
NEW_GRANT_SESSION_KEY = "kms_console_new_grant"
NO_REVOKE = "You may not revoke this key's grants: your access does not allow kms:RevokeGrant on it."
NO_CREATE = (
    "You may not create grants for this key: your access does not allow kms:CreateGrant on it, for any grant."
)
CONSTRAINT_LABELS = {
    EQUALS: "Encryption context equals",
    SUBSET: "Encryption context includes",
}


def _max_length(field: str) -> int | None:
    return Grant._meta.get_field(field).max_length  # type: ignore[union-attr]


@dataclass(frozen=True)
class GrantRow:
    """A grant as the pages show it: its constraint in words and whether it is in effect yet."""

    grant: Grant
    constraint: str
    context_pairs: tuple[tuple[str, str], ...]
    effective: bool
    status: str

    @classmethod
    def of(cls, grant: Grant, now: datetime) -> GrantRow:
        constraint, pairs = "", ()
        if grant.constraints:
            [(kind, values)] = grant.constraints.items()
            constraint, pairs = CONSTRAINT_LABELS.get(kind, kind), tuple(sorted(values.items()))
        if grant.effective_at is not None:
            status = "effective"
        else:
            # Not yet propagated: due at propagate_after; a worker marks it then (the sweeper within a minute).
            seconds = max(0, math.ceil((grant.propagate_after - now).total_seconds()))
            status = f"propagating (effective in ~{seconds} s)"
        return cls(grant, constraint, pairs, grant.effective_at is not None, status)


def _grants_page(
    request: HttpRequest,
    key_id: str,
    *,
    confirm_grant_id: str = "",
    action: Outcome[Any] | None = None,
) -> HttpResponse:
    """The grants tab; with `confirm_grant_id`, the confirmation to revoke that grant; with a failed `action`,
    its message."""
    page_number = request.GET.get("page")

    def work(ctx: OperationContext) -> dict[str, Any]:
        key, grants = reads.key_grants(ctx, key_id=key_id)
        page = Paginator(grants, GRANTS_PER_PAGE).get_page(page_number)
        confirm = grants.filter(grant_id=confirm_grant_id).first() if confirm_grant_id else None
        # What the tab offers: the changes the caller would be allowed, asked inside ListGrants.
        allowed = lifecycle.key_actions_allowed(ctx, key, lifecycle.GRANT_ACTIONS)
        return {
            "key": key,
            "key_described": lifecycle.key_describable(ctx, key),
            "page": page,
            "rows": list(page.object_list),
            "confirm": confirm,
            "can_create": "kms:CreateGrant" in allowed,
            "can_revoke": "kms:RevokeGrant" in allowed,
        }

    page = TabPage(request, key_id, TAB, LIST_TEMPLATE, action)
    listed = attempt(request, "ListGrants", work, params=key_params(key_id))
    if not listed.ok:
        return page.refuse(listed)
    now = timezone.now()
    context = dict(listed.value)
    context["rows"] = [GrantRow.of(grant, now) for grant in context["rows"]]
    context["confirm"] = GrantRow.of(context["confirm"], now) if context["confirm"] else None
    status = 200
    if confirm_grant_id and context["confirm"] is None:
        context["error"] = f"Grant {confirm_grant_id[:64]} is not a grant of this key (or no longer exists)."
        status = 404
    elif context["confirm"] is not None and not context["can_revoke"]:
        # The confirmation reached by its URL, for a revocation the caller would be refused: no form.
        context.update(confirm=None, error=NO_REVOKE)
        status = 403
    return page.render(context, status=status)


@console_view
def key_grants(request: HttpRequest, key_id: UUID) -> HttpResponse:
    return _grants_page(request, str(key_id))


@console_view
@sudo_required()
def key_grant_revoke(request: HttpRequest, key_id: UUID, grant_id: str) -> HttpResponse:
    """GET: confirm revoking the grant; POST: revoke it (RevokeGrant)."""
    key_id_text = str(key_id)
    if request.method != "POST":
        return _grants_page(request, key_id_text, confirm_grant_id=grant_id)
    return act(
        request,
        key_id_text,
        "RevokeGrant",
        lambda ctx: grant_services.grant_revoke(ctx=ctx, key_id=key_id_text, grant_id=grant_id),
        params=key_params(key_id_text, GrantId=grant_id),
        route="console:key-grants",
        success=lambda _: f"Grant {grant_id} is revoked: its grantee can no longer use it.",
        failure=lambda revoked: _grants_page(request, key_id_text, confirm_grant_id=grant_id, action=revoked),
    )


class GrantForm(forms.Form):
    """CreateGrant's parameters. The operations offered are those the service allows for the key's type;
    encryption-context constraints only appear for symmetric keys, the only ones they apply to."""

    grantee_principal = forms.CharField(
        label="Grantee principal",
        max_length=_max_length("grantee_principal"),
        help_text="The ARN of a user or role (or an account id) that may use the key through this grant. "
        "Groups cannot be grantees: grant each member, or a role they assume.",
    )
    operations = forms.MultipleChoiceField(
        label="Operations",
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one operation the grant allows."},
    )
    retiring_principal = forms.CharField(
        label="Retiring principal (optional)",
        required=False,
        max_length=_max_length("retiring_principal"),
        help_text="A user or role ARN that may retire the grant when it is no longer needed.",
    )
    name = forms.CharField(
        label="Grant name (optional)",
        required=False,
        max_length=_max_length("name"),
        help_text="Retrying a request with the same name and parameters returns the same grant.",
    )
    constraint = forms.ChoiceField(
        label="Encryption context constraint",
        required=False,
        widget=forms.RadioSelect,
        choices=[("", "None"), *CONSTRAINT_LABELS.items()],
    )

    def __init__(
        self, *args: Any, key_kind: str, operations: Iterable[str], account_id: str, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["grantee_principal"].widget.attrs["placeholder"] = arns.role_arn(account_id, "/", "app")
        self.fields["operations"].choices = [(name, name) for name in sorted(operations)]
        self.allows_constraints = key_kind == "SYMMETRIC"
        if not self.allows_constraints:
            del self.fields["constraint"]
            return
        for index in range(grant_services.CONSTRAINT_MAX_PAIRS):
            # Labelled by the table's column headers and these names (one row per pair).
            self.fields[f"context_key_{index}"] = forms.CharField(
                label=f"Context key {index + 1}",
                required=False,
                strip=False,
                widget=forms.TextInput(attrs={"aria-label": f"Context key {index + 1}"}),
            )
            self.fields[f"context_value_{index}"] = forms.CharField(
                label=f"Context value {index + 1}",
                required=False,
                strip=False,
                max_length=grant_services.CONSTRAINT_VALUE_MAX_CHARS,
                widget=forms.TextInput(attrs={"aria-label": f"Context value {index + 1}"}),
            )

    def context_rows(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        if not self.allows_constraints:
            return []
        return [
            (self[f"context_key_{index}"], self[f"context_value_{index}"])
            for index in range(grant_services.CONSTRAINT_MAX_PAIRS)
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        pairs: dict[str, str] = {}
        for index in range(grant_services.CONSTRAINT_MAX_PAIRS if self.allows_constraints else 0):
            name, value = data.get(f"context_key_{index}", ""), data.get(f"context_value_{index}", "")
            if not name and value:
                self.add_error(f"context_key_{index}", "Enter the key this value belongs to.")
            elif name in pairs:
                self.add_error(f"context_key_{index}", f"The key {name} is already in the constraint.")
            elif name:
                pairs[name] = value
        kind = data.get("constraint", "")
        if pairs and not kind:
            self.add_error(
                "constraint", "Choose whether the encryption context must equal or include these pairs."
            )
        elif kind and not pairs:
            self.add_error("constraint", "Add at least one encryption context pair, or choose None.")
        data["constraints"] = {kind: pairs} if kind and pairs else None
        return data


def _grant_request(data: Mapping[str, Any]) -> dict[str, Any]:
    """The CreateGrant parameters for the audit trail, named as in the KMS API."""
    request: dict[str, Any] = {
        "GranteePrincipal": data["grantee_principal"],
        "Operations": data["operations"],
    }
    if data["retiring_principal"]:
        request["RetiringPrincipal"] = data["retiring_principal"]
    if data["name"]:
        request["Name"] = data["name"]
    if data.get("constraints"):
        request["Constraints"] = data["constraints"]
    return request


def _create_grant(request: HttpRequest, key_id: str, data: Mapping[str, Any]) -> Outcome[Any]:
    def work(ctx: OperationContext) -> grant_services.CreatedGrant:
        return grant_services.grant_create(
            ctx=ctx,
            key_id=key_id,
            grantee_principal=data["grantee_principal"],
            operations=data["operations"],
            retiring_principal=data["retiring_principal"] or None,
            constraints=data.get("constraints"),
            name=data["name"] or None,
        )

    return attempt(
        request,
        "CreateGrant",
        work,
        params=key_params(key_id, **_grant_request(data)),
        audit_response=lambda created: {"GrantId": created.grant.grant_id},  # never the token
    )


# What a grant form waiting for the password keeps (GrantForm's fields; the context pairs are numbered).
GRANT_FIELDS = (
    "grantee_principal",
    "operations",
    "retiring_principal",
    "name",
    "constraint",
    "context_key_*",
    "context_value_*",
)


@console_view
@sudo_required(keep=GRANT_FIELDS)
def key_grant_create(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """The create-grant form (GET), and CreateGrant (POST); the token then waits in the session for the one page
    that shows it."""
    key_id_text = str(key_id)
    page = TabPage(request, key_id_text, TAB, CREATE_TEMPLATE)

    posted = request.method == "POST"

    def work(ctx: OperationContext) -> tuple[Key, bool]:
        key = lifecycle.key_describe(ctx=ctx, key_id=key_id_text)
        # Whether the form is offered: some grant it could ask for would be allowed, asked inside DescribeKey. A
        # form sent is decided as typed, by its CreateGrant.
        return key, posted or bool(lifecycle.key_actions_allowed(ctx, key, CREATE))

    described = attempt(request, "DescribeKey", work, params=key_params(key_id_text))
    if not described.ok:
        return page.refuse(described, form=None)
    key, offered = described.value
    if not offered:
        return page.render({"key": key, "key_described": True, "form": None, "error": NO_CREATE}, status=403)
    kind = grant_services.key_type(key)
    form = GrantForm(
        request.POST if posted else None,
        key_kind=kind,
        operations=grant_services.grant_operations_for(key),
        account_id=key.account.account_id,
    )
    context: dict[str, Any] = {"key": key, "key_described": True, "form": form}  # read by DescribeKey
    if not posted:
        return page.render(context)
    if not form.is_valid():
        return page.render(context, status=400)
    created = _create_grant(request, key_id_text, form.cleaned_data)
    if not created.ok:
        return replace(page, action=created).render(context)
    request.session[NEW_GRANT_SESSION_KEY] = {
        "key_id": key_id_text,
        "grant_id": created.value.grant.grant_id,
        "token": created.value.token,
    }
    return HttpResponseRedirect(reverse("console:key-grant-created", args=[key_id_text]))


@never_cache
@console_view
def key_grant_created(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """The new grant and its token, once: the token leaves the session as this page is rendered."""
    key_id_text = str(key_id)
    new = request.session.get(NEW_GRANT_SESSION_KEY)
    if not new or new.get("key_id") != key_id_text:
        return HttpResponseRedirect(reverse("console:key-grants", args=[key_id_text]))
    del request.session[NEW_GRANT_SESSION_KEY]

    def work(ctx: OperationContext) -> tuple[Any, Grant | None, bool]:
        key, grants = reads.key_grants(ctx, key_id=key_id_text)
        return key, grants.filter(grant_id=new["grant_id"]).first(), lifecycle.key_describable(ctx, key)

    listed = attempt(request, "ListGrants", work, params=key_params(key_id_text, GrantId=new["grant_id"]))
    context: dict[str, Any] = {"form": None, "grant_id": new["grant_id"], "grant_token": new["token"]}
    if listed.ok:
        key, grant, described = listed.value
        context.update(
            key=key, key_described=described, created=GrantRow.of(grant, timezone.now()) if grant else None
        )
    else:
        context.update(key=None, list_error=listed.error)
    context["propagation_seconds"] = settings.KMS_GRANT_PROPAGATION_SECONDS
    return TabPage(request, key_id_text, TAB, CREATE_TEMPLATE).render(context)
