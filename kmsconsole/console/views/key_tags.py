"""The key's Tags tab: its tags; add one or change its value (TagResource), remove one (UntagResource). Tags are
not secret and can decide access (aws:ResourceTag conditions), so a change takes effect on the next request."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django import forms
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from keys import tag_rules
from keys.models import Tag
from keys.services import lifecycle, tags
from keys.services.access import KeyQuestions
from kmsconsole.console.dispatch import Outcome, attempt, console_view
from kmsconsole.console.sudo import sudo_required
from kmsconsole.console.views.key_tabs import TabPage, act, key_params
from kmsconsole.operations import OperationContext

TAB = "tags"
TEMPLATE = "console/key_tags.html"
ROUTE = "console:key-tags"
TAG_RULES = (
    f"A key can have up to {tag_rules.TAGS_PER_KEY} tags. Tag keys starting with "
    f'"{tag_rules.RESERVED_PREFIX}" are reserved. Tagging an existing key replaces its value. Tags are not '
    "secret: they appear in the audit trail and policies can allow or deny by them."
)


def _max_length(field: str) -> int | None:
    return Tag._meta.get_field(field).max_length  # type: ignore[union-attr]


class TagForm(forms.Form):
    tag_key = forms.CharField(
        label="Tag key",
        strip=False,
        max_length=_max_length("tag_key"),
        error_messages={"required": "Enter a tag key."},
    )
    tag_value = forms.CharField(
        label="Tag value", strip=False, required=False, max_length=_max_length("tag_value")
    )


def _tags_page(
    request: HttpRequest,
    key_id: str,
    *,
    form: TagForm | None = None,
    action: Outcome[Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    """The tab; `form` keeps what was typed (or, with ?tag_key=, starts from that tag to change its value)."""
    page = TabPage(request, key_id, TAB, TEMPLATE, action)

    def work(ctx: OperationContext) -> dict[str, Any]:
        # One page holds every tag: a key has at most TAGS_PER_KEY, and LIST_TAGS_MAX_LIMIT is no fewer.
        key, rows, _ = tags.key_tags_list(ctx=ctx, key_id=key_id, limit=tags.LIST_TAGS_MAX_LIMIT)
        # What the tab offers: the changes the caller would be allowed, asked inside ListResourceTags.
        questions = KeyQuestions(ctx)
        allowed = lifecycle.key_actions_allowed(ctx, key, lifecycle.TAG_ACTIONS, questions=questions)
        names = [tag.tag_key for tag in rows] if "kms:UntagResource" in allowed else []
        return {
            "key": key,
            "key_described": lifecycle.key_describable(ctx, key),
            "tags": list(rows),
            "can_tag": "kms:TagResource" in allowed,
            "can_untag": "kms:UntagResource" in allowed,
            "removable": lifecycle.tags_removable(questions, key, names),
        }

    listed = attempt(request, "ListResourceTags", work, params=key_params(key_id))
    if not listed.ok:
        return page.refuse(listed)
    rows: list[Tag] = listed.value["tags"]
    if form is None:
        editing = next((tag for tag in rows if tag.tag_key == request.GET.get("tag_key")), None)
        initial = {"tag_key": editing.tag_key, "tag_value": editing.tag_value} if editing else {}
        form = TagForm(initial=initial)
    context = {**listed.value, "form": form, "rules": TAG_RULES}
    return page.render(context, status=status)


@console_view
def key_tags(request: HttpRequest, key_id: UUID) -> HttpResponse:
    return _tags_page(request, str(key_id))


@console_view
@sudo_required(keep=("tag_key", "tag_value"))
@require_POST
def key_tag_put(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """TagResource with one tag: add it, or replace the value of the tag with that key."""
    key_id_text = str(key_id)
    form = TagForm(request.POST)
    if not form.is_valid():
        return _tags_page(request, key_id_text, form=form, status=400)
    pair = {"TagKey": form.cleaned_data["tag_key"], "TagValue": form.cleaned_data["tag_value"]}
    return act(
        request,
        key_id_text,
        "TagResource",
        lambda ctx: tags.key_tag(ctx=ctx, key_id=key_id_text, tags=[pair]),
        params=key_params(key_id_text, Tags=[pair]),
        route=ROUTE,
        success=lambda _: f"Tag {pair['TagKey']} is set.",
        failure=lambda failed: _tags_page(request, key_id_text, form=form, action=failed),
    )


@console_view
@sudo_required(keep=("tag_key",))
@require_POST
def key_tag_remove(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """UntagResource with one tag key. A tag the key does not have is no error (as on AWS), but the page says
    that nothing was removed."""
    key_id_text = str(key_id)
    tag_key = request.POST.get("tag_key")
    if tag_key is None:  # "" is a key: one stored before tag keys had a minimum length can still be removed
        return _tags_page(request, key_id_text, action=Outcome(error="Choose a tag to remove."), status=400)
    return act(
        request,
        key_id_text,
        "UntagResource",
        lambda ctx: tags.key_untag(ctx=ctx, key_id=key_id_text, tag_keys=[tag_key]),
        params=key_params(key_id_text, TagKeys=[tag_key]),
        route=ROUTE,
        success=lambda untagged: (
            f"Tag {tag_key} is removed." if tag_key in untagged[1] else f"Tag {tag_key} was not on this key."
        ),
        failure=lambda failed: _tags_page(request, key_id_text, action=failed),
    )
