"""AWS's length limits on tags (TagKey 1-128, TagValue 0-256) and descriptions (0-8192) through the REST API,
which has no service model in front of the services: a value over the limit is ValidationException with AWS's
message, never a database error, and a refused CreateKey leaves no key behind."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from keys.models import Key, Tag
from keys.services.lifecycle import DESCRIPTION_MAX_LENGTH
from keys.tag_rules import TAG_KEY_MAX_LENGTH, TAG_VALUE_MAX_LENGTH
from kmsconsole.audit.models import AuditEvent
from policies.models import Account
from tests.api.conftest import client_with, make_key, token_for
from tests.conftest import Persona

pytestmark = pytest.mark.django_db

KEYS = reverse("api-keys")


@pytest.fixture
def admin_api(account: Account, admin: Persona) -> APIClient:
    return client_with(token_for(account, admin.name))


def length_message(member: str, shown: str, constraint: str) -> str:
    return (
        f"1 validation error detected: Value '{shown}' at '{member}' failed to satisfy constraint: "
        f"Member must have length {constraint}"
    )


def error_of(response: Any) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]


def tag_input(name: str, value: str = "v") -> dict[str, str]:
    return {"tag_key": name, "tag_value": value}


@pytest.mark.parametrize(
    ("tags", "member", "shown", "constraint"),
    [
        ([tag_input("a" * 1000)], "tags.1.member.tagKey", "a" * 256 + "...", "less than or equal to 128"),
        ([tag_input("ok"), tag_input("")], "tags.2.member.tagKey", "", "greater than or equal to 1"),
        (
            [tag_input("k", "v" * 257)],
            "tags.1.member.tagValue",
            "v" * 256 + "...",
            "less than or equal to 256",
        ),
    ],
)
def test_create_key_with_a_tag_out_of_bounds_creates_nothing(
    admin_api: APIClient, tags: list[dict[str, str]], member: str, shown: str, constraint: str
) -> None:
    response = admin_api.post(KEYS, {"description": "tagged", "tags": tags}, format="json")
    assert error_of(response) == (400, "ValidationException", length_message(member, shown, constraint))
    assert not Key.objects.exists() and not Tag.objects.exists()
    assert AuditEvent.objects.get(operation="CreateKey").error_code == "ValidationException"


def test_tags_at_the_limits_are_stored(admin_api: APIClient) -> None:
    longest = {"tag_key": "k" * TAG_KEY_MAX_LENGTH, "tag_value": "v" * TAG_VALUE_MAX_LENGTH}
    response = admin_api.post(KEYS, {"tags": [longest, tag_input("blank", "")]}, format="json")
    assert response.status_code == 201, response.content
    stored = dict(Tag.objects.values_list("tag_key", "tag_value"))
    assert stored == {longest["tag_key"]: longest["tag_value"], "blank": ""}


@pytest.mark.parametrize(
    ("tag", "member", "shown", "constraint"),
    [
        (
            tag_input("k", "v" * 1000),
            "tags.1.member.tagValue",
            "v" * 256 + "...",
            "less than or equal to 256",
        ),
        (tag_input("k" * 129), "tags.1.member.tagKey", "k" * 129, "less than or equal to 128"),
        (tag_input(""), "tags.1.member.tagKey", "", "greater than or equal to 1"),
    ],
)
def test_tag_resource_out_of_bounds_is_refused(
    admin_api: APIClient, tag: dict[str, str], member: str, shown: str, constraint: str
) -> None:
    key = make_key("to tag")
    response = admin_api.put(reverse("api-key-tags", args=[str(key.key_id)]), {"tags": [tag]}, format="json")
    assert error_of(response) == (400, "ValidationException", length_message(member, shown, constraint))
    assert not Tag.objects.exists()


def test_description_over_the_limit_is_refused_on_create(admin_api: APIClient) -> None:
    too_long = "d" * (DESCRIPTION_MAX_LENGTH + 1)
    response = admin_api.post(KEYS, {"description": too_long}, format="json")
    shown = "d" * 256 + "..."
    assert error_of(response) == (
        400,
        "ValidationException",
        length_message("description", shown, f"less than or equal to {DESCRIPTION_MAX_LENGTH}"),
    )
    assert not Key.objects.exists()
    longest = "d" * DESCRIPTION_MAX_LENGTH
    assert admin_api.post(KEYS, {"description": longest}, format="json").status_code == 201
    assert Key.objects.get().description == longest


def test_description_over_the_limit_is_refused_on_update(admin_api: APIClient) -> None:
    key = make_key("kept")
    too_long = "d" * (DESCRIPTION_MAX_LENGTH + 1)
    response = admin_api.patch(
        reverse("api-key", args=[str(key.key_id)]), {"description": too_long}, format="json"
    )
    assert error_of(response)[:2] == (400, "ValidationException")
    assert "at 'description' failed to satisfy constraint" in error_of(response)[2]
    key.refresh_from_db()
    assert key.description == "kept"


def test_untag_resource_with_a_tag_key_over_the_limit_is_refused(admin_api: APIClient) -> None:
    key = make_key("to untag")
    tags_url = reverse("api-key-tags", args=[str(key.key_id)])
    response = admin_api.delete(f"{tags_url}?tag_key=ok&tag_key={'k' * 129}")
    assert error_of(response) == (
        400,
        "ValidationException",
        length_message("tagKeys.2.member", "k" * 129, "less than or equal to 128"),
    )


def test_a_tag_stored_with_an_empty_key_before_the_limits_can_be_removed(admin_api: APIClient) -> None:
    """The REST API stored empty tag keys before TagResource checked lengths: UntagResource still removes them."""
    from tests.rows import update_sealed

    key = make_key("legacy", tags=[{"TagKey": "renamed-to-empty", "TagValue": "v"}])
    update_sealed(Tag.objects.filter(key=key), tag_key="")
    tags_url = reverse("api-key-tags", args=[str(key.key_id)])
    response = admin_api.delete(f"{tags_url}?tag_key=")
    assert response.status_code in (200, 204), response.content
    assert not Tag.objects.filter(key=key).exists()
