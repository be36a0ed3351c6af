"""The create-key wizard, as in the AWS console: key type, usage and spec; alias, description, tags; key
administrators; key users; then the generated key policy to review before CreateKey (and CreateAlias).

The choices travel between steps in one signed hidden field, so the wizard needs no JavaScript and no session
state, Previous keeps every choice, and a tampered form is refused. Each step is checked on the server with
inline errors; the review step shows what CreateKey refuses (the lockout safety check among them) and lets the
person go back and fix it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.core import signing
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render

from keys.default_policies import console_key_policy
from keys.models import Key
from keys.services import aliases, lifecycle
from keys.services.key_policy import MissingPrincipals, missing_principal_messages, missing_principals
from keys.tag_rules import tags_from_request
from kmsconsole.api import reads
from kmsconsole.console.alias_names import TOO_LONG, alias_name_problem
from kmsconsole.console.dispatch import attempt, console_caller, console_view
from kmsconsole.console.views.keys import error_status
from kmsconsole.console.views.keys_catalog import (
    ALL_SPECS,
    ALL_USAGES,
    KEY_TYPE_BY_VALUE,
    KEY_TYPES,
    model_max_length,
    spec_usages,
    tag_limits,
    usage_label,
)
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies import engine
from policies.selectors import account_get
from policies.services.lookups import entity_list

WIZARD_SALT = "kmsconsole.console.key-create"
WIZARD_MAX_AGE = 24 * 60 * 60
REVIEW = 5
PRINCIPAL_KINDS = (engine.PrincipalKind.USER, engine.PrincipalKind.ROLE, engine.PrincipalKind.ACCOUNT)


class KeyTypeForm(forms.Form):
    key_type = forms.ChoiceField(
        choices=[(t.value, t.label) for t in KEY_TYPES], error_messages={"required": "Choose a key type."}
    )
    key_usage = forms.ChoiceField(required=False, choices=[(u, u) for u in ALL_USAGES])
    key_spec = forms.ChoiceField(required=False, choices=[(s, s) for s in ALL_SPECS])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        key_type = KEY_TYPE_BY_VALUE.get(data.get("key_type", ""))
        if key_type is None:
            return data
        # A type with one spec (symmetric) or a spec with one usage needs no choice.
        spec = key_type.specs[0] if len(key_type.specs) == 1 else data.get("key_spec")
        usage = data.get("key_usage")
        if usage and usage not in key_type.usages:
            self.add_error(
                "key_usage", f"{key_type.label} keys cannot be used for {usage_label(usage).lower()}."
            )
            return data
        if not spec:
            self.add_error("key_spec", f"Choose a key spec for the {key_type.in_sentence} key.")
            return data
        if spec not in key_type.specs:
            self.add_error("key_spec", f"{spec} is not {key_type.with_article} key spec.")
            return data
        usages = spec_usages(spec)
        usage = usage or (usages[0] if len(usages) == 1 else "")
        if not usage:
            self.add_error("key_usage", "Choose what the key will be used for.")
        elif usage not in usages:
            allowed = " or ".join(usage_label(u).lower() for u in usages)
            self.add_error("key_spec", f"{spec} keys can only be used for {allowed}.")
        data.update(key_spec=spec, key_usage=usage)
        return data

    def state(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in ("key_type", "key_usage", "key_spec")}


class LabelsForm(forms.Form):
    alias = forms.CharField(
        label="Alias",
        required=False,
        max_length=aliases.ALIAS_NAME_MAX_LENGTH,
        error_messages={"max_length": TOO_LONG},
    )
    description = forms.CharField(
        label="Description",
        required=False,
        max_length=model_max_length("CreateKey", "Description"),
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, data: QueryDict | None = None, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        if data is not None:
            self.tag_rows = list(zip(data.getlist("tag_key"), data.getlist("tag_value"), strict=False))
        else:
            self.tag_rows = [tuple(row) for row in self.initial.get("tags", [])]

    def shown_tag_rows(self, *, add_tag: bool) -> list[tuple[str, str]]:
        """The tag table to show: the rows as typed and one empty row to type the next tag in. "Add another tag"
        keeps the empty rows it was sent and adds one; any other answer (a validation error) leaves out the
        empty rows, since the form sent back carries the empty row it was shown and each answer would add
        another."""
        rows = [(str(name), str(value)) for name, value in self.tag_rows]
        if not add_tag:
            rows = [(name, value) for name, value in rows if name.strip() or value.strip()]
        return [*rows, ("", "")]

    def clean_alias(self) -> str:
        name: str = self.cleaned_data["alias"].strip()
        if not name:
            return ""
        if not name.startswith(aliases.ALIAS_PREFIX):
            name = aliases.ALIAS_PREFIX + name
        problem = alias_name_problem(name)
        if problem:
            raise forms.ValidationError(problem)
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        rows = [
            (name.strip(), value.strip()) for name, value in self.tag_rows if name.strip() or value.strip()
        ]
        key_max, value_max = tag_limits()
        try:
            if any(not name for name, _ in rows):
                raise forms.ValidationError("Every tag needs a key (its value may be empty).")
            if any("\x00" in name + value for name, value in rows):
                raise forms.ValidationError("Tags cannot contain null characters.")
            if any(len(name) > key_max or len(value) > value_max for name, value in rows):
                raise forms.ValidationError(
                    f"Tag keys have at most {key_max} characters and tag values at most {value_max}."
                )
            tags_from_request([{"TagKey": name, "TagValue": value} for name, value in rows])
        except errors.KmsError as exc:
            self.add_error(None, f"Tags: {exc.message}.")
        except forms.ValidationError as exc:
            self.add_error(None, exc)
        data["tags"] = rows
        return data

    def state(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in ("alias", "description", "tags")}


class PrincipalsForm(forms.Form):
    """Key administrators (step 3) or key users (step 4): ticked from the account's list, or typed as ARNs."""

    principal = forms.Field(required=False, widget=forms.CheckboxSelectMultiple)
    other_arns = forms.CharField(
        label="Other principals (ARNs, one per line)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    allow_delete = forms.BooleanField(label="Allow key administrators to delete this key", required=False)

    def __init__(self, *args: Any, field: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.field = field
        if field != "admins":
            del self.fields["allow_delete"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        chosen = [*(data.get("principal") or []), *re.split(r"[\s,]+", data.get("other_arns", ""))]
        arns: list[str] = []
        wrong: list[str] = []
        for text in (item.strip() for item in chosen):
            parsed = engine.parse_principal_arn(text) if text else None
            if text and (parsed is None or parsed.kind not in PRINCIPAL_KINDS):
                wrong.append(text[:200])
            elif parsed is not None and parsed.arn not in arns:
                arns.append(parsed.arn)
        if wrong:
            self.add_error(
                "other_arns",
                "Not the ARN of a user, a role or an account: " + ", ".join(wrong[:5]) + ". "
                "Write them as arn:aws:iam::111122223333:user/name or …:role/name.",
            )
        data["arns"] = arns
        return data

    def state(self) -> dict[str, Any]:
        saved: dict[str, Any] = {self.field: self.cleaned_data["arns"]}
        if self.field == "admins":
            saved["allow_delete"] = self.cleaned_data["allow_delete"]
        return saved


@dataclass(frozen=True)
class Step:
    title: str
    template: str


STEP_PAGES = {
    1: Step("Key type", "console/key_create_type.html"),
    2: Step("Labels", "console/key_create_labels.html"),
    3: Step("Key administrators", "console/key_create_principals.html"),
    4: Step("Key users", "console/key_create_principals.html"),
    5: Step("Review", "console/key_create_review.html"),
}
STEPS = tuple((number, page.title) for number, page in STEP_PAGES.items())
USAGE_OPTIONS = tuple(
    (usage, usage_label(usage), " ".join(t.value for t in KEY_TYPES if usage in t.usages))
    for usage in ALL_USAGES
)
DEFAULTS: dict[str, Any] = {"tags": [], "admins": [], "users": [], "allow_delete": True}


def _step_form(step: int, data: QueryDict | None, state: dict[str, Any]) -> forms.Form:
    initial = {**DEFAULTS, **state}
    if step == 1:
        return KeyTypeForm(data, initial=initial)
    if step == 2:
        return LabelsForm(data, initial=initial)
    field = "admins" if step == 3 else "users"
    return PrincipalsForm(data, field=field, initial={"principal": initial[field], **initial})


def _principals(request: HttpRequest) -> tuple[list[dict[str, str]], list[str]]:
    """The account's users and roles with their ARNs, each list read as its IAM operation, and any refusal."""
    rows: list[dict[str, str]] = []
    refusals: list[str] = []
    for operation, kind in (("iam:ListUsers", "user"), ("iam:ListRoles", "role")):
        outcome = attempt(
            request,
            operation,
            lambda ctx, kind=kind: [
                {"kind": kind, "name": entity.name, "arn": entity.arn}
                for entity in entity_list(ctx=ctx, account=account_get(ctx.caller.account_id), kind=kind)
            ],
        )
        rows.extend(outcome.value or [])
        if not outcome.ok:
            refusals.append(outcome.error)
    return rows, refusals


def _principal_choices(request: HttpRequest, form: forms.Form, state: dict[str, Any]) -> dict[str, Any]:
    """Steps 3 and 4: the listed principals, which are ticked, and the ARNs typed beside them."""
    principals, refusals = _principals(request)
    if form.is_bound:
        chosen = form.data.getlist("principal")
        other, allow_delete = form.data.get("other_arns", ""), bool(form.data.get("allow_delete"))
    else:
        listed = {row["arn"] for row in principals}
        chosen = state.get(form.field, [])  # type: ignore[attr-defined]
        other = "\n".join(arn for arn in chosen if arn not in listed)
        allow_delete = state.get("allow_delete", True)
    return {
        "principals": principals,
        "listing_refusals": refusals,
        "chosen": chosen,
        "other_arns": other,
        "allow_delete": allow_delete,
        "caller_arn": console_caller(request).arn,  # type: ignore[union-attr]
    }


def _policy(request: HttpRequest, state: dict[str, Any]) -> str:
    caller = console_caller(request)
    assert caller is not None  # noqa: S101 - console_view let the request in
    return console_key_policy(
        account_id=caller.account_id,
        key_spec=state["key_spec"],
        key_usage=state["key_usage"],
        administrators=state.get("admins", []),
        users=state.get("users", []),
        allow_administrators_to_delete=state.get("allow_delete", True),
    )


def _render(
    request: HttpRequest,
    step: int,
    state: dict[str, Any],
    *,
    form: forms.Form | None = None,
    status: int = 200,
    **extra: Any,
) -> HttpResponse:
    step = max(1, min(step, state.get("done", 0) + 1))
    if form is None and step < REVIEW:
        form = _step_form(step, None, state)
    context: dict[str, Any] = {
        "steps": STEPS,
        "step": step,
        "page": STEP_PAGES[step],
        "form": form,
        "wizard": signing.dumps(state, salt=WIZARD_SALT, compress=True),
        "state": {**DEFAULTS, **state},
        "key_types": KEY_TYPES,
        **extra,
    }
    if form is not None:
        context["values"] = form.data if form.is_bound else form.initial
    if step == 1:
        context["usage_options"] = USAGE_OPTIONS
    if step == 2 and form is not None:
        context["tag_rows"] = form.shown_tag_rows(add_tag=bool(extra.get("add_tag")))  # type: ignore[attr-defined]
        context["tag_key_max"], context["tag_value_max"] = tag_limits()
    if step in (3, 4) and form is not None:
        context.update(_principal_choices(request, form, state))
    if step == REVIEW:
        context["policy"] = _policy(request, state)
        context["key_type"] = KEY_TYPE_BY_VALUE[state["key_type"]]
        context["usage_label"] = usage_label(state["key_usage"])
        context["caller_arn"] = console_caller(request).arn  # type: ignore[union-attr]
    return render(request, "console/key_create.html", context, status=status)


def _alias_taken(request: HttpRequest, name: str) -> bool:
    """Whether an alias of that name exists, if the caller may list aliases (CreateKey checks again anyway)."""
    outcome = attempt(
        request,
        "ListAliases",
        lambda ctx: reads.account_aliases(ctx).filter(name=name).exists(),
        params={"AliasName": name},
    )
    return bool(outcome.value)


def _target(action: str, step: int) -> int:
    if action == "back":
        return step - 1
    if action.startswith("goto-") and action[5:].isascii() and action[5:].isdigit():
        return min(int(action[5:]), step)
    return step + 1


@console_view
def key_create(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _render(request, 1, {})
    try:
        state = signing.loads(request.POST.get("wizard", ""), salt=WIZARD_SALT, max_age=WIZARD_MAX_AGE)
        step = int(request.POST.get("step", ""))
        if not isinstance(state, dict) or not 1 <= step <= REVIEW:
            raise ValueError("not a wizard state")
    except (signing.BadSignature, ValueError):
        problem = "Your earlier choices could not be read (the form expired or was changed). Start again."
        return _render(request, 1, {}, status=400, wizard_error=problem)
    action = request.POST.get("action", "next")
    if step == REVIEW:
        if action == "create":
            return _create(request, state)
        return _render(request, _target(action, step), state)
    form = _step_form(step, request.POST, state)
    if action == "add-tag" and step == 2:
        return _render(request, step, state, form=form, add_tag=True)
    valid = form.is_valid()
    if action != "next":
        if valid:
            state.update(form.state())  # type: ignore[attr-defined]
        return _render(request, _target(action, step), state)
    if (
        valid
        and step == 2
        and form.cleaned_data["alias"]
        and _alias_taken(request, form.cleaned_data["alias"])
    ):
        form.add_error("alias", f"The alias {form.cleaned_data['alias']} is already in use in your account.")
        valid = False
    if not valid:
        return _render(request, step, state, form=form, status=400)
    state.update(form.state())  # type: ignore[attr-defined]
    state["done"] = max(state.get("done", 0), step)
    return _render(request, step + 1, state)


def _missing_principals_of(
    ctx: OperationContext, state: dict[str, Any], refused: errors.MalformedPolicyDocumentException
) -> MissingPrincipals | None:
    """AWS's refusal of a policy naming a principal that does not exist names none; the key policy editor names
    those of the caller's own account (`missing_principals`: another account's stay unnamed). Asked only once
    CreateKey has authorized the caller and refused the policy, so it tells no more than the editor would."""
    if engine.INVALID_PRINCIPALS_MESSAGE not in refused.message:
        return None
    return missing_principals(ctx, [*state.get("admins", []), *state.get("users", [])])


def _create(request: HttpRequest, state: dict[str, Any]) -> HttpResponse:
    """CreateKey with the generated policy and the tags, then CreateAlias. Inside CreateKey, before it commits,
    the alias is checked as CreateAlias would check it (a taken name, kms:CreateAlias refused), so the key is not
    created without the alias the person asked for. Should CreateAlias still fail afterwards (a change made in
    between), the page says the key was created without it, and names the key by its id."""
    if state.get("done", 0) < REVIEW - 1:
        return _render(request, state.get("done", 0) + 1, state, status=400)
    policy = _policy(request, state)
    tags = [{"TagKey": name, "TagValue": value} for name, value in state.get("tags", [])]
    alias = state.get("alias", "")

    # What CreateKey's refused policy is missing, asked inside CreateKey (authorized); worded after it, so the
    # audit event keeps what the service answered.
    missing: list[MissingPrincipals] = []

    def work(ctx: OperationContext) -> Key:
        try:
            key = lifecycle.key_create(
                ctx=ctx,
                description=state.get("description", ""),
                key_spec=state["key_spec"],
                key_usage=state["key_usage"],
                policy=policy,
                tags=tags,
            )
        except errors.MalformedPolicyDocumentException as exc:
            found = _missing_principals_of(ctx, state, exc)
            missing.extend([found] if found is not None else [])
            raise
        if alias:
            aliases.check_alias_for_new_key(ctx=ctx, key=key, alias_name=alias)
        return key

    params = {
        "KeySpec": state["key_spec"],
        "KeyUsage": state["key_usage"],
        "Description": state.get("description", ""),
        "Policy": policy,
        "Tags": tags,
    }
    outcome = attempt(request, "CreateKey", work, params=params)
    if outcome.value is None:
        lockout = (
            outcome.code == "MalformedPolicyDocumentException" and engine.LOCKOUT_MESSAGE in outcome.error
        )
        named = [message for found in missing for message in missing_principal_messages(found)]
        return _render(
            request,
            REVIEW,
            state,
            status=error_status(outcome.code),
            create_error=" ".join(named) or outcome.error,
            lockout=lockout,
            alias_taken=outcome.code == "AlreadyExistsException",
        )
    key = outcome.value
    key_id = str(key.key_id)
    named_as = key_id
    if alias:
        named = attempt(
            request,
            "CreateAlias",
            lambda ctx: aliases.alias_create(ctx=ctx, alias_name=alias, target_key_id=key_id),
            params={"AliasName": alias, "TargetKeyId": key_id},
        )
        if named.ok:
            named_as = alias
        else:
            messages.warning(request, f"The key was created, but not its alias {alias}: {named.error}")
    messages.success(request, f"Key {named_as} created.")
    return redirect("console:key", key_id)
