"""The key's Aliases tab: its aliases; create one, delete one (after a confirmation), or point one at another key.

ListAliases is decided by identity policies alone (kms-spec §9.1), like the alias half of every alias change;
the key half of a change is decided by the key's policy, in the service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django import forms
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from keys.models import Alias
from keys.selectors import resolve_key
from keys.services import aliases, lifecycle
from keys.services.access import KeyQuestions
from kmsconsole.api import reads
from kmsconsole.console.alias_names import ALLOWED_CHARACTERS, refused_alias_name
from kmsconsole.console.dispatch import Outcome, attempt, console_view
from kmsconsole.console.sudo import sudo_required
from kmsconsole.console.views.key_tabs import TabPage, act, failure_status
from kmsconsole.operations import OperationContext

TAB = "aliases"
TEMPLATE = "console/key_aliases.html"
ROUTE = "console:key-aliases"
NAME_RULES = (
    f'An alias name starts with "{aliases.ALIAS_PREFIX}", followed by {ALLOWED_CHARACTERS}, '
    f"at most {aliases.ALIAS_NAME_MAX_LENGTH} characters in all. Names starting with "
    f'"{aliases.RESERVED_PREFIX}" are reserved for AWS managed keys. A key can have up to '
    f"{aliases.ALIASES_PER_KEY} aliases; an alias name is unique in the account."
)


CREATE = ("kms:CreateAlias",)


@dataclass(frozen=True)
class AliasRow:
    """An alias of the key, and which of its changes (kms:UpdateAlias, kms:DeleteAlias) the caller would be
    allowed (`keys.services.lifecycle.aliases_changeable`)."""

    alias: Alias
    allowed: frozenset[str]

    @property
    def may_update(self) -> bool:
        return "kms:UpdateAlias" in self.allowed

    @property
    def may_delete(self) -> bool:
        return "kms:DeleteAlias" in self.allowed

    def offers(self, deleting: bool) -> bool:
        return self.may_delete if deleting else self.may_update


class AliasCreateForm(forms.Form):
    alias_name = forms.CharField(
        label="Alias name",
        strip=False,
        initial=aliases.ALIAS_PREFIX,
        help_text=NAME_RULES,
        error_messages={"required": "Enter a name for the alias."},
    )


class AliasUpdateForm(forms.Form):
    alias_name = forms.CharField(widget=forms.HiddenInput, strip=False)
    target_key_id = forms.CharField(
        label="New target key id",
        help_text="The key id or key ARN of another key of this account, of the same type and key usage.",
        error_messages={"required": "Enter the id of the key the alias should point to."},
    )


def _aliases_page(
    request: HttpRequest,
    key_id: str,
    *,
    create_form: AliasCreateForm | None = None,
    confirm_delete: str | None = None,
    update_form: AliasUpdateForm | None = None,
    action: Outcome[Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    """The tab, with the create form as typed, a delete confirmation or an update form for one alias, and a
    failed `action`'s message."""

    def work(ctx: OperationContext) -> dict[str, Any]:
        rows = list(reads.account_aliases(ctx, key_id=key_id))
        key = resolve_key(key_id, caller_account=ctx.caller.account_id, operation=ctx.operation).key
        # What the tab offers: the changes the caller would be allowed, asked inside ListAliases.
        questions = KeyQuestions(ctx)
        changeable = lifecycle.aliases_changeable(questions, key, [alias.name for alias in rows])
        alias_rows = [AliasRow(alias, changeable[alias.name]) for alias in rows]
        return {
            "key": key,
            "key_described": lifecycle.key_describable(ctx, key),
            "aliases": rows,
            "alias_rows": alias_rows,
            "alias_changes_all": all(row.may_update and row.may_delete for row in alias_rows),
            "alias_changes_any": any(row.allowed for row in alias_rows),
            "can_create": bool(lifecycle.key_actions_allowed(ctx, key, CREATE, questions=questions)),
        }

    page = TabPage(request, key_id, TAB, TEMPLATE, action)
    listed = attempt(request, "ListAliases", work, params={"KeyId": key_id})
    if not listed.ok:
        return page.refuse(listed)
    context = {
        **listed.value,
        "create_form": create_form or AliasCreateForm(),
        "update_form": update_form,
        "confirm_delete": confirm_delete,
    }
    named = update_form["alias_name"].value() if update_form is not None else confirm_delete
    row = next((row for row in context["alias_rows"] if row.alias.name == named), None)
    if named is not None and row is None:
        context.update(
            confirm_delete=None, update_form=None, error=f"{named[:256]} is not an alias of this key."
        )
        status = 404
    elif row is not None and not row.offers(confirm_delete is not None):
        # A confirmation (or update form) reached by its URL for a change the caller would be refused: no form.
        action_name = "kms:DeleteAlias" if confirm_delete is not None else "kms:UpdateAlias"
        context.update(
            confirm_delete=None,
            update_form=None,
            error=f"You may not change alias {row.alias.name}: your access does not allow {action_name}.",
        )
        status = max(status, 403)
    return page.render(context, status=status)


@console_view
def key_aliases(request: HttpRequest, key_id: UUID) -> HttpResponse:
    return _aliases_page(request, str(key_id))


def _field_failure(
    request: HttpRequest, key_id: str, form: forms.Form, field: str, **page: Any
) -> Callable[[Outcome[Any]], HttpResponse]:
    """A failed alias change: its message under the field it is about, the form as typed."""

    def failure(failed: Outcome[Any]) -> HttpResponse:
        # A refused name in the same words as the create-key wizard's (the event keeps the service's answer).
        named = (
            refused_alias_name(failed.code, form.data.get("alias_name", "")) if field == "alias_name" else ""
        )
        form.add_error(field, named or failed.error)
        return _aliases_page(request, key_id, **page, status=failure_status(failed.code))

    return failure


@console_view
@sudo_required(keep=("alias_name",))
@require_POST
def key_alias_create(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """CreateAlias for this key."""
    key_id_text = str(key_id)
    form = AliasCreateForm(request.POST)
    if not form.is_valid():
        return _aliases_page(request, key_id_text, create_form=form, status=400)
    name = form.cleaned_data["alias_name"]
    return act(
        request,
        key_id_text,
        "CreateAlias",
        lambda ctx: aliases.alias_create(ctx=ctx, alias_name=name, target_key_id=key_id_text),
        params={"AliasName": name, "TargetKeyId": key_id_text},
        route=ROUTE,
        success=lambda _: f"Alias {name} now names this key.",
        failure=_field_failure(request, key_id_text, form, "alias_name", create_form=form),
    )


@console_view
@sudo_required(keep=("alias_name",))
def key_alias_delete(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """GET ?alias_name=: confirm deleting the alias; POST: DeleteAlias."""
    key_id_text = str(key_id)
    if request.method != "POST":
        return _aliases_page(request, key_id_text, confirm_delete=request.GET.get("alias_name", ""))
    name = request.POST.get("alias_name", "")
    return act(
        request,
        key_id_text,
        "DeleteAlias",
        lambda ctx: aliases.alias_delete(ctx=ctx, alias_name=name),
        params={"AliasName": name},
        route=ROUTE,
        success=lambda _: f"Alias {name} is deleted. Applications that use it can no longer find the key.",
        failure=lambda failed: _aliases_page(request, key_id_text, confirm_delete=name, action=failed),
    )


@console_view
@sudo_required(keep=("alias_name", "target_key_id"))
def key_alias_update(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """GET ?alias_name=: the form to point the alias at another key; POST: UpdateAlias."""
    key_id_text = str(key_id)
    if request.method != "POST":
        form = AliasUpdateForm(initial={"alias_name": request.GET.get("alias_name", "")})
        return _aliases_page(request, key_id_text, update_form=form)
    form = AliasUpdateForm(request.POST)
    if not form.is_valid():
        return _aliases_page(request, key_id_text, update_form=form, status=400)
    name, target = form.cleaned_data["alias_name"], form.cleaned_data["target_key_id"]
    return act(
        request,
        key_id_text,
        "UpdateAlias",
        lambda ctx: aliases.alias_update(ctx=ctx, alias_name=name, target_key_id=target),
        params={"AliasName": name, "TargetKeyId": target},
        route=ROUTE,
        success=lambda alias: f"Alias {name} now points to key {alias.key.key_id}.",
        failure=_field_failure(request, key_id_text, form, "target_key_id", update_form=form),
    )
