"""The Aliases tab: list, create (the name rules shown and enforced), delete with a confirmation, point elsewhere."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from keys.models import Alias, Key, alias_arn
from keys.services import aliases
from kmsconsole.core import errors
from tests.conftest import Persona, as_operator
from tests.console.conftest import audit_events
from tests.console.key_tab_helpers import assert_signin_redirect, make_key, snapshot, url

pytestmark = pytest.mark.django_db


def make_alias(key: Key, name: str) -> Alias:
    return as_operator(
        "CreateAlias",
        lambda ctx: aliases.alias_create(ctx=ctx, alias_name=name, target_key_id=str(key.key_id)),
    )


def test_anonymous_is_sent_to_sign_in(admin: Persona) -> None:
    key = make_key()
    make_alias(key, "alias/app")
    client = Client()
    assert_signin_redirect(client.get(url("key-aliases", key)))
    assert_signin_redirect(client.get(url("key-alias-delete", key) + "?alias_name=alias/app"))
    assert_signin_redirect(client.post(url("key-alias-create", key), {"alias_name": "alias/new"}))
    assert_signin_redirect(client.post(url("key-alias-delete", key), {"alias_name": "alias/app"}))
    assert_signin_redirect(
        client.post(url("key-alias-update", key), {"alias_name": "alias/app", "target_key_id": "x"})
    )
    assert list(Alias.objects.values_list("name", flat=True)) == ["alias/app"]


def test_lists_the_keys_aliases_with_the_rules_and_an_empty_state(
    admin: Persona, console: Callable[..., Client]
) -> None:
    key, other = make_key(), make_key()
    client = console(admin)
    empty = client.get(url("key-aliases", key)).content.decode()
    assert "This key has no aliases" in empty
    assert f"at most {aliases.ALIAS_NAME_MAX_LENGTH} characters" in empty and aliases.RESERVED_PREFIX in empty
    make_alias(key, "alias/orders")
    make_alias(other, "alias/elsewhere")
    page = client.get(url("key-aliases", key)).content.decode()
    assert "alias/orders" in page and "alias/elsewhere" not in page
    assert "This key has no aliases" not in page
    assert audit_events("ListAliases")[-1].decision == "allowed"


def test_create_alias(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    client = console(admin)
    response = client.post(url("key-alias-create", key), {"alias_name": "alias/orders"})
    assert response.status_code == 302 and response["Location"] == url("key-aliases", key)
    assert Alias.objects.get(name="alias/orders").key_id == key.pk
    [event] = audit_events("CreateAlias")
    assert event.decision == "allowed" and event.request_parameters["AliasName"] == "alias/orders"
    assert "alias/orders now names this key" in client.get(response["Location"]).content.decode()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "alias/bad name!",
            "An alias name may contain only letters, digits, /, _ and -, not spaces, &quot;!&quot;.",
        ),
        ("alias/a:b", "An alias name may contain only letters, digits, /, _ and -, not &quot;:&quot;."),
        ("orders", "An alias name starts with &quot;alias/&quot;."),
        ("alias/aws/mine", "Names starting with &quot;alias/aws/&quot; are reserved for AWS managed keys."),
        ("alias/", "Write a name after &quot;alias/&quot;."),
        ("", "Enter a name for the alias"),
        ("alias/taken", "already exists"),
    ],
)
def test_bad_alias_names_are_refused_inline(
    admin: Persona, console: Callable[..., Client], name: str, message: str
) -> None:
    key = make_key()
    make_alias(make_key(), "alias/taken")
    before = snapshot()
    response = console(admin).post(url("key-alias-create", key), {"alias_name": name})
    page = response.content.decode()
    assert response.status_code == 400
    assert message in page and 'class="field-error"' in page
    assert f'value="{name}"' in page or not name
    assert snapshot() == before
    # The service refused it, and its event keeps the service's own answer (the words are the console's).
    events = audit_events("CreateAlias")
    if name:
        assert [(event.decision, event.error_message) for event in events] == [
            ("failed", service_answer(name))
        ]
    else:
        assert events == []


def service_answer(name: str) -> str:
    """What the service answers for `name`: the refusal of a name already taken, or of the name itself."""
    if Alias.objects.filter(name=name).exists():
        return f"An alias with the name {alias_arn(settings.KMS_ACCOUNT_ID, name)} already exists"
    with pytest.raises(errors.KmsError) as refused:
        aliases.check_alias_name(name)
    return refused.value.message


@pytest.mark.parametrize("name", ["alias/has space", "alias/a:b", "alias/aws/mine", "alias/" + "n" * 251])
def test_the_aliases_tab_and_the_create_key_wizard_word_a_bad_name_alike(
    admin: Persona, console: Callable[..., Client], name: str
) -> None:
    client = console(admin)
    tab = client.post(url("key-alias-create", make_key()), {"alias_name": name}).content.decode()
    create = reverse("console:key-create")
    first = client.get(create)
    second = client.post(create, {"wizard": first.context["wizard"], "step": 1, "key_type": "symmetric"})
    wizard = client.post(
        create, {"wizard": second.context["wizard"], "step": 2, "alias": name}
    ).content.decode()
    field_error = r'class="field-error"[^>]*>(.*?)</p>'
    assert (
        re.findall(field_error, tab) == re.findall(field_error, wizard[wizard.index('id="id_alias"') :])[:1]
    )


def test_delete_asks_to_confirm_then_deletes(admin: Persona, console: Callable[..., Client]) -> None:
    key = make_key()
    make_alias(key, "alias/old")
    client = console(admin)
    confirm = client.get(url("key-alias-delete", key) + "?alias_name=alias/old")
    page = confirm.content.decode()
    assert confirm.status_code == 200 and "Delete alias alias/old?" in page
    assert Alias.objects.filter(name="alias/old").exists()
    response = client.post(url("key-alias-delete", key), {"alias_name": "alias/old"})
    assert response.status_code == 302
    assert not Alias.objects.filter(name="alias/old").exists()
    assert audit_events("DeleteAlias")[-1].decision == "allowed"


def test_confirming_an_alias_of_another_key_is_not_found(
    admin: Persona, console: Callable[..., Client]
) -> None:
    key = make_key()
    make_alias(make_key(), "alias/theirs")
    response = console(admin).get(url("key-alias-delete", key) + "?alias_name=alias/theirs")
    assert response.status_code == 404
    assert "is not an alias of this key" in response.content.decode()
    assert "Delete alias alias/theirs?" not in response.content.decode()


def test_point_an_alias_at_another_key(admin: Persona, console: Callable[..., Client]) -> None:
    key, other = make_key(), make_key()
    make_alias(key, "alias/current")
    client = console(admin)
    form = client.get(url("key-alias-update", key) + "?alias_name=alias/current").content.decode()
    assert "Point alias/current at another key" in form and 'name="target_key_id"' in form
    response = client.post(
        url("key-alias-update", key), {"alias_name": "alias/current", "target_key_id": str(other.key_id)}
    )
    assert response.status_code == 302
    assert Alias.objects.get(name="alias/current").key_id == other.pk
    assert audit_events("UpdateAlias")[-1].decision == "allowed"
    assert f"now points to key {other.key_id}" in client.get(response["Location"]).content.decode()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("", "Enter the id of the key"),
        ("00000000-0000-4000-8000-000000000000", "does not exist"),
        ("hmac", "must be of the same type and key usage"),
    ],
)
def test_pointing_an_alias_at_a_bad_key_is_refused_inline(
    admin: Persona, console: Callable[..., Client], target: str, message: str
) -> None:
    key = make_key()
    hmac_key = make_key(key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC")
    make_alias(key, "alias/current")
    before = snapshot()
    target_id = str(hmac_key.key_id) if target == "hmac" else target
    response = console(admin).post(
        url("key-alias-update", key), {"alias_name": "alias/current", "target_key_id": target_id}
    )
    assert response.status_code in (400, 404)
    assert message in response.content.decode()
    assert snapshot() == before


def test_outsider_is_refused_and_nothing_changes(
    admin: Persona, outsider: Persona, console: Callable[..., Client]
) -> None:
    key, other = make_key(), make_key()
    make_alias(key, "alias/app")
    client = console(outsider)
    before = snapshot()
    listed = client.get(url("key-aliases", key))
    assert listed.status_code == 403 and "alias/app" not in listed.content.decode()
    requests = [
        ("key-alias-create", {"alias_name": "alias/mine"}),
        ("key-alias-delete", {"alias_name": "alias/app"}),
        ("key-alias-update", {"alias_name": "alias/app", "target_key_id": str(other.key_id)}),
    ]
    for name, form in requests:
        response = client.post(url(name, key), form)
        assert response.status_code == 403 and "Refused." in response.content.decode()
    assert snapshot() == before
    for operation in ("ListAliases", "CreateAlias", "DeleteAlias", "UpdateAlias"):
        assert {event.decision for event in audit_events(operation)} == {"denied"}
