"""Wire handlers for tags: TagResource, UntagResource, ListResourceTags."""

from __future__ import annotations

from typing import Any

from keys.services import tags
from kmsconsole.awskms.handlers import handles
from kmsconsole.operations import OperationContext


@handles("TagResource")
def tag_resource(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    tags.key_tag(ctx=ctx, key_id=params["KeyId"], tags=params["Tags"])
    return {}


@handles("UntagResource")
def untag_resource(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    tags.key_untag(ctx=ctx, key_id=params["KeyId"], tag_keys=params["TagKeys"])
    return {}


@handles("ListResourceTags")
def list_resource_tags(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    _, rows, marker = tags.key_tags_list(
        ctx=ctx, key_id=params["KeyId"], limit=params.get("Limit"), marker=params.get("Marker")
    )
    result: dict[str, Any] = {
        "Tags": [{"TagKey": tag.tag_key, "TagValue": tag.tag_value} for tag in rows],
        "Truncated": marker is not None,
    }
    if marker is not None:
        result["NextMarker"] = marker
    return result
