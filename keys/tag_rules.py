"""The rules tags follow, shared by CreateKey and TagResource (kms-spec §9.2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kmsconsole.core import errors

TAGS_PER_KEY = 50
RESERVED_PREFIX = "aws:"
# TagResource's model: TagKey 1-128 characters, TagValue 0-256 (the Tag table's columns are as wide).
TAG_KEY_MAX_LENGTH = 128
TAG_VALUE_MAX_LENGTH = 256


def tags_from_request(tags: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The request's `[{TagKey, TagValue}]` as a dict, refusing lengths out of bounds, duplicates and reserved
    keys with AWS's messages."""
    # Lengths first, as AWS's model check comes before the service's own rules.
    for position, tag in enumerate(tags, start=1):
        errors.check_length(
            f"tags.{position}.member.tagKey", tag["TagKey"], minimum=1, maximum=TAG_KEY_MAX_LENGTH
        )
        errors.check_length(f"tags.{position}.member.tagValue", tag["TagValue"], maximum=TAG_VALUE_MAX_LENGTH)
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


def check_tag_keys(tag_keys: Sequence[str]) -> None:
    """UntagResource's TagKeys: each at most 128 characters, and none reserved. An empty key is let through (the
    KMS model refuses it on the AWS endpoint): the REST API stored empty tag keys before TagResource checked
    lengths, and they must stay removable."""
    for position, name in enumerate(tag_keys, start=1):
        errors.check_length(f"tagKeys.{position}.member", name, maximum=TAG_KEY_MAX_LENGTH)
    if any(name.lower().startswith(RESERVED_PREFIX) for name in tag_keys):
        raise errors.TagException("Tags beginning with aws: are reserved")


def check_tag_count(existing: set[str], new: Mapping[str, str]) -> None:
    if len(existing | set(new)) > TAGS_PER_KEY:
        raise errors.TagException("Too many tags")
