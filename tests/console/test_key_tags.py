"""The Tags tab: list, add or change a value (TagResource), remove (UntagResource), the tag rules inline."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from keys import tag_rules
from keys.models import Key, Tag
from keys.services import tags
from tests.conftest import Persona, as_operator
from tests.console.conftest import audit_events
from tests.console.key_tab_helpers import assert_signin_redirect, make_key, snapshot, url

pytestmark = pytest.mark.django_db


def tag(key: Key, **pairs: str) -> None:
    as_operator(
        "TagResource",
        lambda ctx: tags.key_tag(
            ctx=ctx, key_id=str(key.key_id), tags=[{"TagKey": k, "TagValue": v} for k, v in pairs.items()]
        ),
    )


def key_tags(key: Key) -> dict[str, str]:
    return dict(Tag.objects.filter(key=key).values_list("tag_key", "tag_value"))


def test_anonymous_is_sent_to_sign_in(admin: Persona) -> None:
    key = make_key()
    tag(key, team="ops")
    client = Client()
    assert_signin_redirect(client.get(url("key-tags", key)))
    assert_signin_redirect(client.post(url("key-tag-put", key), {"tag_key": "a", "tag_value": "b"}))
    assert_signin_redirect(client.post(url("key-tag-remove", key), {"tag_key": "team"}))
    assert key_tags(key) == {"team": "ops"}


def test_lists_tags_with_the_rules_and_an_empty_state(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    client = console(admin)
    empty = client.get(url("key-tags", key)).content.decode()
    assert "This key has no tags" in empty
    assert f"up to {tag_rules.TAGS_PER_KEY} tags" in empty and tag_rules.RESERVED_PREFIX in empty
    tag(key, team="ops", cost="42")
    page = client.get(url("key-tags", key)).content.decode()
    assert "<code>team</code>" in page and "<code>ops</code>" in page and "<code>42</code>" in page
    assert "This key has no tags" not in page
    assert audit_events("ListResourceTags")[-1].decision == "allowed"


def test_add_then_replace_a_value_then_remove(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    client = console(admin)
    response = client.post(url("key-tag-put", key), {"tag_key": "team", "tag_value": "ops"})
    assert response.status_code == 302 and response["Location"] == url("key-tags", key)
    assert key_tags(key) == {"team": "ops"}
    [event] = audit_events("TagResource")
    assert event.decision == "allowed" and event.request_parameters["Tags"] == [
        {"TagKey": "team", "TagValue": "ops"}
    ]
    editing = client.get(url("key-tags", key) + "?tag_key=team").content.decode()
    assert 'value="team"' in editing and 'value="ops"' in editing  # the form starts from the tag
    client.post(url("key-tag-put", key), {"tag_key": "team", "tag_value": "security"})
    assert key_tags(key) == {"team": "security"}
    response = client.post(url("key-tag-remove", key), {"tag_key": "team"})
    assert response.status_code == 302
    assert key_tags(key) == {}
    assert audit_events("UntagResource")[-1].decision == "allowed"
    assert "Tag team is removed" in client.get(response["Location"]).content.decode()


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"tag_key": "", "tag_value": "x"}, "Enter a tag key"),
        ({"tag_key": "aws:owner", "tag_value": "x"}, "Tags beginning with aws: are reserved"),
        ({"tag_key": "k" * 129, "tag_value": "x"}, "at most 128 characters"),
        ({"tag_key": "k", "tag_value": "v" * 257}, "at most 256 characters"),
    ],
)
def test_bad_tags_are_refused_inline(
    admin: Persona, console: Callable[..., Client], form: dict[str, str], message: str
) -> None:
    key = make_key()
    before = snapshot()
    response = console(admin).post(url("key-tag-put", key), form)
    page = response.content.decode()
    assert response.status_code == 400
    assert message in page
    assert f'value="{form["tag_value"]}"' in page  # what was typed is kept
    assert snapshot() == before


def test_too_many_tags_is_refused(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    tag(key, **{f"t{index}": "v" for index in range(tag_rules.TAGS_PER_KEY)})
    before = snapshot()
    response = console(admin).post(url("key-tag-put", key), {"tag_key": "one-more", "tag_value": ""})
    assert response.status_code == 400 and "Too many tags" in response.content.decode()
    assert snapshot() == before


def test_removing_without_a_tag_key_is_refused(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    tag(key, team="ops")
    response = console(admin).post(url("key-tag-remove", key), {})
    assert response.status_code == 400 and "Choose a tag to remove" in response.content.decode()
    assert key_tags(key) == {"team": "ops"} and not audit_events("UntagResource")


def test_outsider_is_refused_and_nothing_changes(outsider: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    tag(key, team="ops")
    client = console(outsider)
    before = snapshot()
    listed = client.get(url("key-tags", key))
    assert listed.status_code == 403 and "<code>team</code>" not in listed.content.decode()
    added = client.post(url("key-tag-put", key), {"tag_key": "mine", "tag_value": "x"})
    removed = client.post(url("key-tag-remove", key), {"tag_key": "team"})
    for response in (added, removed):
        assert response.status_code == 403 and "Refused." in response.content.decode()
    assert snapshot() == before
    assert [event.decision for event in audit_events("TagResource")] == ["denied"]
    assert [event.decision for event in audit_events("UntagResource")] == ["denied"]


def test_removing_a_tag_the_key_does_not_have_says_so(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    tag(key, team="ops")
    client = console(admin)
    response = client.post(url("key-tag-remove", key), {"tag_key": "nope"})
    assert response.status_code == 302  # UntagResource ignores a missing tag key, as on AWS
    page = client.get(response["Location"]).content.decode()
    assert "Tag nope was not on this key." in page and "is removed" not in page
    assert key_tags(key) == {"team": "ops"}
    assert audit_events("UntagResource")[-1].decision == "allowed"
