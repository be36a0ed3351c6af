"""The console's key list shows beyond each key's id only what the caller may see (DescribeKey's fields where
DescribeKey would be allowed, grants included; aliases where ListAliases would be), finds nothing by what a row
does not show, costs the same whether or not a hidden key matches, looks through a bounded number of keys per
request, and refuses a changed or foreign page link in words."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from keys.models import Key, KeyState
from kmsconsole.api.key_listing import WALK_LIMIT
from kmsconsole.audit.models import AuditEvent
from kmsconsole.console.views.keys_list import PAGE_SIZE
from kmsconsole.core.pagination import RECORDED_CURSOR
from tests.api.test_key_list import allow, counting, describe_grantee, only_for
from tests.conftest import Persona
from tests.console.test_keys import make_key
from tests.rows import update_sealed

pytestmark = pytest.mark.django_db

KEY_LIST = reverse("console:keys")
DETAILS_NEED = "Details need kms:DescribeKey on this key."


def row_of(body: str, key: Key) -> str:
    """The table row of `key` ("" when the page does not list it)."""
    found = re.search(rf"<tr>((?:(?!</tr>).)*/console/keys/{key.key_id}/(?:(?!</tr>).)*)</tr>", body, re.S)
    return found.group(1) if found else ""


def listed(response: Any) -> list[str]:
    assert response.status_code == 200, response.content.decode()[:500]
    return [str(row.key.key_id) for row in response.context["rows"]]


@dataclass(frozen=True)
class World:
    admin: Persona
    ids_only: Persona
    describer: Persona
    alias_lister: Persona
    shown: Key
    hidden: Key


@pytest.fixture
def world(admin: Persona, make_user: Callable[..., Persona]) -> World:
    shown = make_key("ledger of payments", alias="alias/ledger")
    hidden = make_key("zephyr merger secret", alias="alias/zephyr", policy=only_for(admin.arn))
    return World(
        admin=admin,
        ids_only=make_user("ids-only", allow("kms:ListKeys")),
        describer=make_user("describer", allow("kms:ListKeys", "kms:DescribeKey")),
        alias_lister=make_user("alias-lister", allow("kms:ListKeys", "kms:ListAliases")),
        shown=shown,
        hidden=hidden,
    )


def test_list_keys_alone_shows_key_ids_that_link_to_the_key_page(
    console: Callable[..., Client], world: World
) -> None:
    response = console(world.ids_only).get(KEY_LIST)
    assert set(listed(response)) == {str(world.shown.key_id), str(world.hidden.key_id)}
    body = response.content.decode()
    for key in (world.shown, world.hidden):
        row = row_of(body, key)
        assert f'href="/console/keys/{key.key_id}/"' in row and DETAILS_NEED in row
        assert 'class="badge' not in row
    assert "zephyr" not in body and "ledger" not in body
    rows = row_of(body, world.shown) + row_of(body, world.hidden)
    assert "SYMMETRIC_DEFAULT" not in rows and "ENCRYPT_DECRYPT" not in rows and "<time" not in rows
    assert '<th scope="col">Aliases</th>' not in body and "listing them needs kms:ListAliases" in body


def test_describe_key_and_list_aliases_each_show_their_part(
    console: Callable[..., Client], world: World
) -> None:
    body = console(world.describer).get(KEY_LIST).content.decode()
    shown, hidden = row_of(body, world.shown), row_of(body, world.hidden)
    assert "ledger of payments" in shown and 'class="badge Enabled"' in shown and "SYMMETRIC_DEFAULT" in shown
    assert DETAILS_NEED in hidden and "zephyr" not in body
    body = console(world.alias_lister).get(KEY_LIST).content.decode()
    assert '<th scope="col">Aliases</th>' in body
    assert "alias/zephyr" in row_of(body, world.hidden) and DETAILS_NEED in row_of(body, world.hidden)
    assert "zephyr merger" not in body


def test_a_grant_for_describe_key_shows_its_key(
    console: Callable[..., Client], world: World, make_user: Callable[..., Persona], settings: Any
) -> None:
    settings.KMS_GRANT_PROPAGATION_SECONDS = 0
    client = console(describe_grantee(make_user, world.hidden))
    body = client.get(KEY_LIST).content.decode()
    assert "zephyr merger secret" in row_of(body, world.hidden) and DETAILS_NEED in row_of(body, world.shown)
    assert listed(client.get(KEY_LIST, {"q": "merger"})) == [str(world.hidden.key_id)]


def test_the_admin_sees_everything(console: Callable[..., Client], world: World) -> None:
    body = console(world.admin).get(KEY_LIST).content.decode()
    assert DETAILS_NEED not in body
    assert "zephyr merger secret" in body and "alias/zephyr" in body and "alias/ledger" in body


def test_search_and_filters_never_find_a_hidden_key(console: Callable[..., Client], world: World) -> None:
    client = console(world.describer)
    for query in (
        {"q": "zephyr"},
        {"q": "alias/zeph"},
        {"state": "Enabled"},
        {"spec": "SYMMETRIC_DEFAULT"},
        {"usage": "ENCRYPT_DECRYPT"},
    ):
        assert str(world.hidden.key_id) not in listed(client.get(KEY_LIST, query)), query
    assert listed(client.get(KEY_LIST, {"state": "Enabled"})) == [str(world.shown.key_id)]
    refused_alias = client.get(KEY_LIST, {"q": "alias/zeph"}).content.decode()
    assert "Alias names are searched only for callers allowed kms:ListAliases." in refused_alias
    for query in (str(world.hidden.key_id), world.hidden.arn, str(world.hidden.key_id)[:8]):
        assert listed(client.get(KEY_LIST, {"q": query})) == [str(world.hidden.key_id)], query
    assert listed(console(world.alias_lister).get(KEY_LIST, {"q": "alias/zeph"})) == [
        str(world.hidden.key_id)
    ]


@pytest.mark.parametrize(
    ("query", "hidden_value"),
    [
        ({"q": "needle"}, {"description": "a needle"}),
        ({"state": "Disabled"}, {"state": KeyState.DISABLED}),
        ({"spec": "RSA_2048"}, {"key_spec": "RSA_2048", "key_usage": "SIGN_VERIFY"}),
    ],
)
def test_a_hidden_match_costs_no_query_and_no_decision(
    console: Callable[..., Client], world: World, query: dict[str, str], hidden_value: dict[str, str]
) -> None:
    hidden = [make_key(f"hidden {i}", policy=only_for(world.admin.arn)) for i in range(8)]
    client = console(world.describer)

    def measured() -> tuple[int, int, list[str], str]:
        client.get(KEY_LIST, query)
        with counting() as (decisions, queries):
            response = client.get(KEY_LIST, query)
        searched = re.search(r"Looked through \d+ keys?", response.content.decode())
        return (
            len(queries.captured_queries),
            decisions.count,
            listed(response),
            searched.group(0) if searched else "",
        )

    without = measured()
    rows = Key.objects.filter(pk__in=[key.pk for key in hidden])
    if "description" in hidden_value:
        rows.update(description=hidden_value["description"])
    update_sealed(rows, **{name: value for name, value in hidden_value.items() if name != "description"})
    assert measured() == without
    assert without[3] == "Looked through 10 keys"


def test_a_search_looks_through_a_bounded_number_of_keys_and_offers_to_look_further(
    console: Callable[..., Client], world: World
) -> None:
    from tests.console.test_keys import seed_keys

    seed_keys(WALK_LIMIT + 20)
    client = console(world.describer)
    first = client.get(KEY_LIST, {"q": "ledger"})  # newest first: the shown key is among the first
    assert listed(first) == [str(world.shown.key_id)]
    body = first.content.decode()
    assert f"Looked through {WALK_LIMIT} keys" in body and ">Look further</a>" in body
    rest = client.get(first.context["next_url"])
    assert listed(rest) == []
    assert "Looked through 22 keys" in rest.content.decode()
    assert "No keys match" in rest.content.decode() and not rest.context["next_url"]


def test_a_changed_or_foreign_page_link_is_refused_in_words(
    console: Callable[..., Client], world: World, partner: Callable[..., Persona]
) -> None:
    for index in range(60):
        make_key(f"ledger {index}")
    client = console(world.describer)
    next_url = client.get(KEY_LIST, {"q": "ledger"}).context["next_url"]
    cursor = parse_qs(urlsplit(next_url).query)["cursor"][0]
    assert client.get(next_url).status_code == 200
    theirs_client = console(partner("partner-admin", allow("*")))
    for params in (
        {"q": "ledger", "cursor": cursor[:-3] + "abc"},
        {"q": "ledge", "cursor": cursor},
        {"q": "ledger", "sort": "created", "cursor": cursor},
        {"q": "ledger", "state": "Enabled", "cursor": cursor},
    ):
        response = client.get(KEY_LIST, params)
        assert response.status_code == 400, params
        body = response.content.decode()
        assert re.search(r'role="alert">That page link is not valid for this list', body), params
    # Another account's console, the same query: refused.
    refused = theirs_client.get(KEY_LIST, {"q": "ledger", "cursor": cursor})
    assert refused.status_code == 400 and "not valid for this list" in refused.content.decode()
    # htmx gets the message as a 200 it can swap in.
    swapped = client.get(KEY_LIST, {"q": "ledger", "cursor": "x"}, HTTP_HX_REQUEST="true")
    assert swapped.status_code == 200 and "not valid for this list" in swapped.content.decode()


def test_a_page_link_opens_only_for_the_caller_it_was_made_for(
    console: Callable[..., Client], world: World, make_user: Callable[..., Persona]
) -> None:
    """Another principal of the account, allowed the same, with the admin's "look further" link of a filtered
    walk: refused in words (replaying it, its own walks told which of its hidden keys had matched)."""
    disabled = [make_key(f"hidden {index}", policy=only_for(world.admin.arn)) for index in range(3)]
    update_sealed(Key.objects.filter(pk__in=[key.pk for key in disabled]), state=KeyState.DISABLED)
    for index in range(PAGE_SIZE + 5):
        make_key(f"filler {index}")
    mine = console(world.admin)
    next_url = mine.get(KEY_LIST, {"state": "Enabled"}).context["next_url"]
    assert next_url and listed(mine.get(next_url))
    for other in (world.describer, make_user("second-admin", allow("*"))):
        refused = console(other).get(next_url)
        assert refused.status_code == 400
        body = refused.content.decode()
        assert re.search(r'role="alert">That page link is not valid for this list \(it was changed, or made for '
                         r"another caller", body)  # fmt: skip
        assert refused.context["rows"] == []
    # The ListKeys events say a page link was followed, never which.
    cursor = parse_qs(urlsplit(next_url).query)["cursor"][0]
    events = AuditEvent.objects.filter(operation="ListKeys", request_parameters__Cursor__isnull=False)
    assert {event.request_parameters["Cursor"] for event in events} == {RECORDED_CURSOR}
    assert events.count() == 3
    assert not any(cursor in json.dumps(event.request_parameters) for event in AuditEvent.objects.all())


def test_the_audit_trails_page_links_are_not_recorded(console: Callable[..., Client], world: World) -> None:
    client = console(world.admin)
    for index in range(60):
        client.get(KEY_LIST, {"q": f"search {index}"})  # events to page through
    older = client.get("/console/audit/").context["older_url"]
    assert older and client.get(older).status_code == 200
    newer = client.get(older).context["newer_url"]
    assert newer and client.get(newer).status_code == 200
    pages = AuditEvent.objects.filter(operation="kmsconsole:ListAuditEvents").order_by("seq")
    recorded = [
        {name: event.request_parameters["Query"].get(name) for name in ("Before", "After")} for event in pages
    ]
    assert recorded == [
        {"Before": None, "After": None},
        {"Before": RECORDED_CURSOR, "After": None},
        {"Before": RECORDED_CURSOR, "After": None},
        {"Before": None, "After": RECORDED_CURSOR},
    ]


def test_the_list_is_one_event(console: Callable[..., Client], world: World) -> None:
    before = AuditEvent.objects.count()
    console(world.describer).get(KEY_LIST, {"q": "ledger", "state": "Enabled"})
    assert AuditEvent.objects.count() == before + 1
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None and event.operation == "ListKeys" and event.decision == "allowed"
    assert (
        event.request_parameters["Search"] == "ledger" and event.request_parameters["KeyState"] == "Enabled"
    )


def test_sorting_by_hidden_values_is_gone(console: Callable[..., Client], world: World) -> None:
    body = console(world.admin).get(KEY_LIST).content.decode()
    assert "sort=description" not in body and "sort=state" not in body and "sort=spec" not in body
    assert 'aria-sort="descending"' in body and "sort=created" in body


def test_identity_policies_are_read_once_per_list(console: Callable[..., Client], world: World) -> None:
    client = console(world.describer)
    for params in ({}, {"q": "ledger"}, {"state": "Enabled"}, {"q": str(world.hidden.key_id)}):
        client.get(KEY_LIST, params)  # the session warm
        with counting() as (_, queries):
            assert client.get(KEY_LIST, params).status_code == 200
        reads = [q for q in queries.captured_queries if 'FROM "policies_identitypolicy"' in q["sql"]]
        assert len(reads) == 1, params
