"""Tags: TagResource, UntagResource, ListResourceTags (kms-spec §9.2).

Tags are not secret (they are audited and feed `aws:ResourceTag/<key>` conditions), so a tag change can grant or
take away access at once: the next request on the key is decided with the new tags. The rules (50 per key,
reserved `aws:` prefix, duplicates, lengths) live in `keys.tag_rules`, shared with CreateKey.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from keys.models import Key, Tag
from keys.services.access import key_for
from keys.tag_rules import check_tag_count, check_tag_keys, tags_from_request
from kmsconsole.core.pagination import list_limit, page
from kmsconsole.operations import OperationContext

# ListResourceTags' Limit: AWS accepts 1-50 (the shared model type says 1-1000) and defaults to 50.
LIST_TAGS_DEFAULT_LIMIT = 50
LIST_TAGS_MAX_LIMIT = 50


def key_tag(*, ctx: OperationContext, key_id: str, tags: Sequence[Mapping[str, str]]) -> Key:
    """Add tags to a key or replace the values of tags it has. kms:TagResource (key policy), with the new tags
    as aws:RequestTag/* and aws:TagKeys; the key must not be pending deletion."""
    tag_map = tags_from_request(tags)
    key = key_for(ctx, key_id, lock=True, request_tags=tag_map)
    existing = set(key.tags.values_list("tag_key", flat=True))
    check_tag_count(existing, tag_map)
    for name, value in tag_map.items():
        Tag.objects.update_or_create(key=key, tag_key=name, defaults={"tag_value": value})
    key.seal()  # the key's MAC covers its tags (key_for locked and checked it)
    return key


def key_untag(*, ctx: OperationContext, key_id: str, tag_keys: Sequence[str]) -> tuple[Key, list[str]]:
    """Remove tags from a key by tag key; keys the key does not have are ignored, as on AWS. kms:UntagResource
    (key policy), with the keys as aws:TagKeys; the key must not be pending deletion.

    Returns the key and the tag keys it had (those removed), so an interface can say what actually changed."""
    check_tag_keys(tag_keys)
    key = key_for(ctx, key_id, lock=True, condition_values={"aws:TagKeys": list(tag_keys)})
    removing = Tag.objects.filter(key=key, tag_key__in=list(tag_keys))
    present = set(removing.values_list("tag_key", flat=True))
    removing.delete()
    key.seal()
    return key, [name for name in tag_keys if name in present]


def key_tags_list(
    *, ctx: OperationContext, key_id: str, limit: int | None = None, marker: str | None = None
) -> tuple[Key, Sequence[Tag], str | None]:
    """One page of a key's tags, in any key state. kms:ListResourceTags (key policy)."""
    limit = list_limit(limit, default=LIST_TAGS_DEFAULT_LIMIT, maximum=LIST_TAGS_MAX_LIMIT)
    key = key_for(ctx, key_id)
    tags, next_marker = page(
        Tag.objects.filter(key=key), scope=f"ListResourceTags:{key.pk}", limit=limit, marker=marker
    )
    return key, tags, next_marker
