"""A key's General configuration tab (DescribeKey, with the key's last usage where GetKeyLastUsage would be allowed)
and its actions: edit the description, enable, disable,
schedule deletion (a waiting period, and the key id typed to confirm) and cancel it.

Each action is one operation run as the signed-in principal; a refusal re-renders the tab with the engine's
message and changes nothing. Disabling and scheduling deletion need a fresh password (sudo mode), asked only
once the engine would allow them. The tab offers only the actions the caller would be allowed
(`keys.services.lifecycle.key_actions_allowed`) and names the others it leaves out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from keys.metadata import key_metadata
from keys.models import Key, KeyState
from keys.services import deletion, lifecycle, usage
from keys.services.access import KeyQuestions
from kmsconsole.api import reads
from kmsconsole.audit.destroyed import Destroyed, destroyed_key
from kmsconsole.console.dispatch import Outcome, attempt, console_view
from kmsconsole.console.keytabs import key_tab_context
from kmsconsole.console.sudo import sudo_required
from kmsconsole.console.views.keys_catalog import model_max_length, usage_label
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext, operation

# What reading the trail asks (its own decision, identity policies alone): who may learn that a key was destroyed.
TRAIL_ACTION = operation("kmsconsole:ListAuditEvents").action
# How an engine refusal answers over HTTP; anything else the service refuses is a bad request.
ERROR_STATUS = {"AccessDeniedException": 403, "NotFoundException": 404, "KMSInvalidStateException": 409}


def error_status(code: str) -> int:
    return ERROR_STATUS.get(code, 400)


class DescriptionForm(forms.Form):
    description = forms.CharField(
        label="Description",
        required=False,
        strip=False,
        max_length=model_max_length("UpdateKeyDescription", "Description"),
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class ScheduleDeletionForm(forms.Form):
    pending_window_days = forms.IntegerField(
        label="Waiting period (days)", initial=deletion.PENDING_WINDOW_DEFAULT_DAYS
    )
    confirm_key_id = forms.CharField(label="Type the key id to confirm", max_length=128)

    def __init__(self, *args: Any, key_id: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_id = key_id
        window = self.fields["pending_window_days"]
        window.widget.attrs.update(
            min=deletion.PENDING_WINDOW_MIN_DAYS, max=deletion.PENDING_WINDOW_MAX_DAYS, required=True
        )
        window.help_text = (
            f"From {deletion.PENDING_WINDOW_MIN_DAYS} to {deletion.PENDING_WINDOW_MAX_DAYS} days. Until then "
            "you can cancel the deletion; afterwards the key and everything it encrypted are gone for good."
        )

    def clean_pending_window_days(self) -> int:
        days: int = self.cleaned_data["pending_window_days"]
        if not deletion.PENDING_WINDOW_MIN_DAYS <= days <= deletion.PENDING_WINDOW_MAX_DAYS:
            raise forms.ValidationError(
                f"Choose a waiting period from {deletion.PENDING_WINDOW_MIN_DAYS} to "
                f"{deletion.PENDING_WINDOW_MAX_DAYS} days."
            )
        return days

    def clean_confirm_key_id(self) -> str:
        typed: str = self.cleaned_data["confirm_key_id"].strip()
        if typed != self.key_id:
            raise forms.ValidationError(f"Type the key id {self.key_id} exactly to confirm the deletion.")
        return typed


@dataclass(frozen=True)
class _Described:
    """The tab's one read: DescribeKey's key, and beside it the key's last usage where a GetKeyLastUsage request by
    the viewer would be allowed (and whether its event's page would open: kmsconsole:GetAuditEvent), each decided
    as that request would be and recorded only on the DescribeKey event; and the tab's actions the viewer would be
    allowed."""

    key: Key
    last_usage: usage.KeyLastUsage | None
    may_open_events: bool
    # Which of the tab's actions the caller would be allowed (the tab offers only those, and says which it leaves
    # out and why), asked inside DescribeKey too.
    allowed_actions: frozenset[str]


def _described(ctx: OperationContext, key_id: str, gone: list[Destroyed]) -> _Described:
    try:
        key = lifecycle.key_describe(ctx=ctx, key_id=key_id)
    except errors.NotFoundException:
        destroyed = _destroyed(ctx, key_id)
        if destroyed is not None:
            gone.append(destroyed)
            # The failure's event says the page showed the deletion beside it (as LastUsageShown says of a use).
            ctx.audit.failure_response = {"DeletionShown": True}
        raise
    last_usage = usage.key_last_usage_shown(ctx, key)
    used = last_usage.last_use if last_usage is not None else None
    # A link only to a page the viewer can open (GetAuditEvent allowed, and the event in one of its account's
    # scopes: a ReEncrypt into this key by another account from a third's key is the source key owner's, not ours).
    may_open = used is not None and reads.linkable_events(ctx).filter(event_id=used.event_id).exists()
    return _Described(key, last_usage, may_open, lifecycle.key_actions_allowed(ctx, key))


def _destroyed(ctx: OperationContext, key_id: str) -> Destroyed | None:
    """The account's key `key_id`, destroyed, for a caller who may read the trail (a kmsconsole:ListAuditEvents
    request by the caller would be allowed, decided inside the DescribeKey with this request's source IP,
    transport and time), which already records its DeleteKey; None for every other caller, who is told only that
    no such key exists (a key of another account, destroyed or not, is never told apart)."""
    if not KeyQuestions(ctx).allows_on_account(TRAIL_ACTION):
        return None
    return destroyed_key(ctx, key_id)


def _describe(request: HttpRequest, key_id: str) -> tuple[Outcome[_Described], Destroyed | None]:
    """The tab's one read, and the key destroyed where DescribeKey found none and the caller may be told so."""
    gone: list[Destroyed] = []
    # The page's one event says whether it showed the key's last use (another principal's activity) beside the key.
    outcome = attempt(
        request,
        "DescribeKey",
        lambda ctx: _described(ctx, key_id, gone),
        params={"KeyId": key_id},
        audit_response=lambda described: {"LastUsageShown": described.last_usage is not None},
    )
    return outcome, next(iter(gone), None)


def _general_tab(
    request: HttpRequest,
    key_id: str,
    *,
    status: int = 200,
    action_error: str = "",
    description_form: DescriptionForm | None = None,
    deletion_form: ScheduleDeletionForm | None = None,
) -> HttpResponse:
    """The tab, re-rendered after a refused action or bad input with its message and the input kept."""
    outcome, destroyed = _describe(request, key_id)
    if outcome.value is None:
        context = {
            "key_id": key_id,
            "error": action_error or outcome.error,
            "not_found": outcome.code == "NotFoundException",
            "destroyed": destroyed,
        }
        return render(
            request, "console/key_detail.html", context, status=max(status, error_status(outcome.code))
        )
    key = outcome.value.key
    canonical = str(key.key_id)
    context = {
        **key_tab_context(canonical, "general"),
        "key": key,
        "last_usage": outcome.value.last_usage,
        "may_open_events": outcome.value.may_open_events,
        "metadata": key_metadata(key),
        "usage_label": usage_label(key.key_usage),
        "error": action_error,
        "description_form": description_form or DescriptionForm(initial={"description": key.description}),
        "deletion_form": deletion_form or ScheduleDeletionForm(key_id=canonical),
        "deletion_limits": (deletion.PENDING_WINDOW_MIN_DAYS, deletion.PENDING_WINDOW_MAX_DAYS),
        "states": KeyState,
        "allowed_actions": outcome.value.allowed_actions,
    }
    return render(request, "console/key_detail.html", context, status=status)


@console_view
def key_detail(request: HttpRequest, key_id: str) -> HttpResponse:
    return _general_tab(request, key_id)


def _act(
    request: HttpRequest,
    key_id: str,
    operation: str,
    change: Callable[[OperationContext], Key],
    *,
    done: str,
    params: dict[str, Any] | None = None,
) -> HttpResponse:
    """Run one key action; on success back to the tab with `done`, else the tab with the refusal."""
    outcome = attempt(request, operation, change, params={"KeyId": key_id, **(params or {})})
    if outcome.ok:
        messages.success(request, done)
        return redirect("console:key", key_id)
    return _general_tab(request, key_id, status=error_status(outcome.code), action_error=outcome.error)


KeyView = Callable[[HttpRequest, str], HttpResponse]


def _post_only(view: KeyView) -> KeyView:
    """An action is a POST; any other method (a bookmarked action URL, the return from sudo) shows the tab."""

    @wraps(view)
    def wrapped(request: HttpRequest, key_id: str) -> HttpResponse:
        if request.method != "POST":
            return redirect("console:key", key_id)
        return view(request, key_id)

    return wrapped


def _state_change(operation: str, change: Callable[..., Key], done: str) -> KeyView:
    def view(request: HttpRequest, key_id: str) -> HttpResponse:
        return _act(request, key_id, operation, lambda ctx: change(ctx=ctx, key_id=key_id), done=done)

    view.__name__ = view.__qualname__ = f"key_{operation}"
    return _post_only(view)


key_enable = console_view(
    _state_change(
        "EnableKey", lifecycle.key_enable, "Key enabled: it can be used in cryptographic operations."
    )
)
key_disable = console_view(
    sudo_required()(
        _state_change(
            "DisableKey",
            lifecycle.key_disable,
            "Key disabled: every cryptographic operation with it is refused until it is enabled again.",
        )
    )
)
key_cancel_deletion = console_view(
    _state_change(
        "CancelKeyDeletion",
        deletion.key_cancel_deletion,
        "Deletion cancelled. The key is disabled; enable it to use it again.",
    )
)


@console_view
@sudo_required(keep=("pending_window_days", "confirm_key_id"))
@_post_only
def key_schedule_deletion(request: HttpRequest, key_id: str) -> HttpResponse:
    form = ScheduleDeletionForm(request.POST, key_id=key_id)
    if not form.is_valid():
        return _general_tab(request, key_id, status=400, deletion_form=form)
    days = form.cleaned_data["pending_window_days"]
    return _act(
        request,
        key_id,
        "ScheduleKeyDeletion",
        lambda ctx: deletion.key_schedule_deletion(ctx=ctx, key_id=key_id, pending_window_days=days),
        done=f"Key scheduled for deletion in {days} days. Cancel the deletion before then to keep it.",
        params={"PendingWindowInDays": days},
    )


@console_view
@_post_only
def key_update_description(request: HttpRequest, key_id: str) -> HttpResponse:
    form = DescriptionForm(request.POST)
    if not form.is_valid():
        return _general_tab(request, key_id, status=400, description_form=form)
    description = form.cleaned_data["description"]
    return _act(
        request,
        key_id,
        "UpdateKeyDescription",
        lambda ctx: lifecycle.key_update_description(ctx=ctx, key_id=key_id, description=description),
        done="Description saved.",
        params={"Description": description},
    )
