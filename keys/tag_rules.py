"""The rules tags follow, shared by CreateKey and TagResource (kms-spec §9.2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kmsconsole.core import errors

TAGS_PER_KEY = 50
RESERVED_PREFIX = "aws:"


def tags_from_request(tags: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The request's `[{TagKey, TagValue}]` as a dict, refusing duplicates and reserved keys with AWS's messages."""
    result: dict[str, str] = {}
    for tag in tags:
        name, value = tag["TagKey"], tag["TagValue"]
        if name in result:
            raise errors.TagException("Duplicate tag keys")
        if name.lower().startswith(RESERVED_PREFIX):
            raise errors.TagException("Tags beginning with aws: are reserved")
        result[name] = value
    if len(result) > TAGS_PER_KEY:
        raise errors.TagException("Too many tags")
    return result


def check_tag_count(existing: set[str], new: Mapping[str, str]) -> None:
    if len(existing | set(new)) > TAGS_PER_KEY:
        raise errors.TagException("Too many tags")
