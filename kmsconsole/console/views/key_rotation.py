"""The key's Rotation tab: automatic rotation (status, period, next date), rotating now, and the history of the key's
material versions. Only symmetric keys whose material KMS generated rotate; for others the tab says why, to a caller
who may describe the key (to any other, such a key's tab is that of a symmetric key with rotation off)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from uuid import UUID

from django import forms
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.utils.formats import date_format
from django.views.decorators.http import require_POST

from grants.services.key_operations import key_type
from keys.models import Key, KeyMaterial
from keys.services import lifecycle, rotation
from kmsconsole.console.dispatch import Outcome, attempt, console_view
from kmsconsole.console.views.key_tabs import TabPage, act, describe, key_params
from kmsconsole.operations import OperationContext

Value = TypeVar("Value")
TAB = "rotation"
TEMPLATE = "console/key_rotation.html"
ROUTE = "console:key-rotation"
VERSIONS_PER_PAGE = 50
NOT_ROTATABLE = "UnsupportedOperationException"
PERIOD_RANGE = f"from {rotation.ROTATION_PERIOD_MIN_DAYS} to {rotation.ROTATION_PERIOD_MAX_DAYS} days"
PERIOD_ERROR = f"Choose a rotation period {PERIOD_RANGE}."


class RotationPeriodForm(forms.Form):
    rotation_period_days = forms.IntegerField(
        label="Rotation period (days)",
        help_text=f"Days between rotations, {PERIOD_RANGE}. Each rotation makes new key material current; older "
        "material stays, so existing ciphertext still decrypts.",
        min_value=rotation.ROTATION_PERIOD_MIN_DAYS,
        max_value=rotation.ROTATION_PERIOD_MAX_DAYS,
        error_messages={
            "required": PERIOD_ERROR,
            "invalid": PERIOD_ERROR,
            "min_value": PERIOD_ERROR,
            "max_value": PERIOD_ERROR,
        },
    )


def _history(request: HttpRequest, key_id: str) -> Outcome[dict[str, Any]]:
    """ListKeyRotations with the original material too, newest first, and how many on-demand rotations are left."""
    page_number = request.GET.get("page")

    def work(ctx: OperationContext) -> dict[str, Any]:
        _, materials = rotation.key_rotations(
            ctx=ctx, key_id=key_id, include_key_material=rotation.ALL_KEY_MATERIAL
        )
        on_demand = materials.filter(rotation_type=KeyMaterial.RotationType.ON_DEMAND).count()
        page = Paginator(materials.order_by("-created_at", "-id"), VERSIONS_PER_PAGE).get_page(page_number)
        return {
            "page": page,
            "versions": list(page.object_list),
            "on_demand_left": max(0, rotation.ON_DEMAND_ROTATIONS_PER_KEY - on_demand),
        }

    return attempt(
        request,
        "ListKeyRotations",
        work,
        params=key_params(key_id, IncludeKeyMaterial=rotation.ALL_KEY_MATERIAL),
    )


def _rotation_page(
    request: HttpRequest,
    key_id: str,
    *,
    form: RotationPeriodForm | None = None,
    action: Outcome[Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    """The tab; `form` keeps what was typed in the period field, a failed `action` adds its message."""
    page = TabPage(request, key_id, TAB, TEMPLATE, action)

    def work(ctx: OperationContext) -> tuple[rotation.RotationStatus, bool]:
        settings = rotation.key_rotation_status(ctx=ctx, key_id=key_id)
        return settings, lifecycle.key_describable(ctx, settings.key)

    found = attempt(request, "GetKeyRotationStatus", work, params=key_params(key_id))
    # An imported key's status is refused; an asymmetric or HMAC key's is "off", with nothing to set either. Its
    # "off" is the answer a symmetric key with rotation off gives, so the tab explains that the key cannot rotate
    # (which names its type) only to a caller who may describe the key; to any other it shows what the symmetric
    # key's tab shows, and the history beneath gets what ListKeyRotations answers that caller about this key.
    if found.code == NOT_ROTATABLE or (found.ok and not found.value[0].key.rotatable and found.value[1]):
        described = describe(request, key_id)
        if not described.ok:
            return page.refuse(described)
        key = described.value
        context = {"key": key, "key_described": True, "rotatable": False, "kind": key_type(key)}
        return page.render(context, status=status)
    if not found.ok:
        return page.refuse(found)
    settings, key_described = found.value
    context = _rotatable_context(request, key_id, settings, form)
    return page.render({**context, "key_described": key_described}, status=status)


def _rotatable_context(
    request: HttpRequest,
    key_id: str,
    settings: rotation.RotationStatus,
    form: RotationPeriodForm | None,
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "key": settings.key,
        "rotatable": True,
        "settings": settings,
        "form": form
        or RotationPeriodForm(
            initial={"rotation_period_days": settings.period_days or rotation.ROTATION_PERIOD_DEFAULT_DAYS}
        ),
        "on_demand_limit": rotation.ON_DEMAND_ROTATIONS_PER_KEY,
    }
    history = _history(request, key_id)
    if history.ok:
        context.update(history.value)
    else:
        context["history_error"] = history.error
    return context


@console_view
def key_rotation(request: HttpRequest, key_id: UUID) -> HttpResponse:
    return _rotation_page(request, str(key_id))


def _change(
    request: HttpRequest,
    key_id: str,
    operation: str,
    work: Callable[[OperationContext], Value],
    success: Callable[[Value], str],
    *,
    form: RotationPeriodForm | None = None,
    audit_response: Callable[[Value], Mapping[str, Any]] | None = None,
    **params: Any,
) -> HttpResponse:
    """A rotation change; a failure shows the tab again with its message (and the period as typed)."""
    return act(
        request,
        key_id,
        operation,
        work,
        params=key_params(key_id, **params),
        route=ROUTE,
        success=success,
        failure=lambda failed: _rotation_page(request, key_id, form=form, action=failed),
        audit_response=audit_response,
    )


@console_view
@require_POST
def key_rotation_enable(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """EnableKeyRotation with the period given (also how the period of an enabled rotation changes)."""
    key_id_text = str(key_id)
    form = RotationPeriodForm(request.POST)
    if not form.is_valid():
        return _rotation_page(request, key_id_text, form=form, status=400)
    days = form.cleaned_data["rotation_period_days"]

    def enabled(key: Key) -> str:
        when = (
            f" The next rotation is on {date_format(key.next_rotation_at, 'Y-m-d')}."
            if key.next_rotation_at
            else ""
        )
        return f"Automatic rotation is on, every {days} days.{when}"

    return _change(
        request,
        key_id_text,
        "EnableKeyRotation",
        lambda ctx: rotation.key_rotation_enable(ctx=ctx, key_id=key_id_text, rotation_period_days=days),
        enabled,
        form=form,
        RotationPeriodInDays=days,
    )


@console_view
@require_POST
def key_rotation_disable(request: HttpRequest, key_id: UUID) -> HttpResponse:
    key_id_text = str(key_id)
    return _change(
        request,
        key_id_text,
        "DisableKeyRotation",
        lambda ctx: rotation.key_rotation_disable(ctx=ctx, key_id=key_id_text),
        lambda _: "Automatic rotation is off.",
    )


@console_view
@require_POST
def key_rotate_now(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """RotateKeyOnDemand: new key material becomes current; the automatic schedule is unchanged."""
    key_id_text = str(key_id)
    return _change(
        request,
        key_id_text,
        "RotateKeyOnDemand",
        lambda ctx: rotation.key_rotate_on_demand(ctx=ctx, key_id=key_id_text),
        lambda material: (
            f"The key is rotated: key material {material.material_id} is now current. "
            "Older material still decrypts what it encrypted."
        ),
        audit_response=lambda material: {"KeyId": key_id_text, "KeyMaterialId": material.material_id},
    )
