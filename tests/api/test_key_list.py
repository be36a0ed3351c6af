"""The REST key list (ListKeys) shows beyond each key's id and ARN only what the caller may see: DescribeKey's
fields where DescribeKey would be allowed (grants included), aliases where ListAliases would be. Its search and
filters find nothing by what a row does not show, and cost the same (queries, decisions) whether or not a key the
caller may not describe matches; its cursors are sealed to the account and the query."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from grants.services.creation import grant_create
from keys.models import Key, KeyState
from keys.services import aliases, rotation
from kmsconsole.api.authentication import user_caller
from kmsconsole.api.key_listing import WALK_CHUNK, WALK_LIMIT, KeyQuery
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core.context import Caller
from kmsconsole.core.pagination import RECORDED_CURSOR, open_position, seal_position
from policies import engine
from policies.models import Account
from tests.api.conftest import client_with, iam_user, make_key, token_for
from tests.conftest import ALLOW_ALL, PARTNER_ACCOUNT, Persona, as_operator
from tests.rows import update_sealed

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/keys"
HIDDEN_FIELDS = ("description", "state", "key_spec", "key_usage", "origin", "created_at", "deletion_date")


def allow(*actions: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
        }
    )


def only_for(principal_arn: str) -> str:
    """A key policy for one principal: nobody else may describe the key, whatever IAM says."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": principal_arn}, "Action": "kms:*", "Resource": "*"}
            ],
        }
    )


def alias(key: Key, name: str) -> None:
    as_operator(
        "CreateAlias",
        lambda ctx: aliases.alias_create(ctx=ctx, alias_name=name, target_key_id=str(key.key_id)),
    )


def rows_of(response: Any) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.content
    return {row["key_id"]: row for row in response.json()["results"]}


def cursor_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["cursor"][0]


@dataclass
class Decisions:
    count: int = 0


@contextlib.contextmanager
def counting() -> Iterator[tuple[Decisions, CaptureQueriesContext]]:
    """Every decision the engine makes (recorded or asked), and every query."""
    decisions = Decisions()
    evaluate, would_allow = engine.evaluate, engine.would_allow

    def counted(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            decisions.count += 1
            return real(*args, **kwargs)

        return call

    with (
        mock.patch.object(engine, "evaluate", counted(evaluate)),
        mock.patch.object(engine, "would_allow", counted(would_allow)),
        CaptureQueriesContext(connection) as queries,
    ):
        yield decisions, queries


@dataclass(frozen=True)
class World:
    admin: Persona
    ids_only: APIClient  # kms:ListKeys
    describer: APIClient  # kms:ListKeys and kms:DescribeKey (the key policy still decides)
    alias_lister: APIClient  # kms:ListKeys and kms:ListAliases
    shown: Key  # described to the describer
    hidden: Key  # a key policy naming the admin only


@pytest.fixture
def world(admin: Persona, make_user: Callable[..., Persona], api_as: Callable[[Persona], APIClient]) -> World:
    shown = make_key("ledger of payments")
    alias(shown, "alias/ledger")
    hidden = make_key("zephyr merger secret", policy=only_for(admin.arn))
    alias(hidden, "alias/zephyr")
    return World(
        admin=admin,
        ids_only=api_as(make_user("ids-only", allow("kms:ListKeys"))),
        describer=api_as(make_user("describer", allow("kms:ListKeys", "kms:DescribeKey"))),
        alias_lister=api_as(make_user("alias-lister", allow("kms:ListKeys", "kms:ListAliases"))),
        shown=shown,
        hidden=hidden,
    )


def describe_grantee(make_user: Callable[..., Persona], key: Key) -> Persona:
    """A principal allowed kms:ListKeys by IAM, and DescribeKey on `key` by a grant (in effect at once when the
    test's KMS_GRANT_PROPAGATION_SECONDS is 0)."""
    grantee = make_user("grantee", allow("kms:ListKeys"))
    as_operator(
        "CreateGrant",
        lambda ctx: grant_create(
            ctx=ctx, key_id=str(key.key_id), grantee_principal=grantee.arn, operations=["DescribeKey"]
        ),
    )
    return grantee


# What a row shows.


def test_list_keys_alone_gives_key_ids_and_arns_only(world: World) -> None:
    rows = rows_of(world.ids_only.get(KEYS))
    assert set(rows) == {str(world.shown.key_id), str(world.hidden.key_id)}
    for key in (world.shown, world.hidden):
        row = rows[str(key.key_id)]
        assert row["arn"] == key.arn and row["described"] is False
        assert all(row[field] is None for field in HIDDEN_FIELDS)
        assert row["aliases"] is None and row["tags"] is None and row["rotation_enabled"] is None
    body = world.ids_only.get(KEYS).content.decode()
    for secret in ("zephyr", "ledger", "Enabled", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"):
        assert secret not in body
    assert world.ids_only.get(KEYS).json()["count"] == 2  # ListKeys gives every key id: the count too


def test_describe_key_shows_a_keys_fields_where_the_key_policy_lets_it(world: World) -> None:
    rows = rows_of(world.describer.get(KEYS))
    shown, hidden = rows[str(world.shown.key_id)], rows[str(world.hidden.key_id)]
    assert shown["described"] is True
    assert (shown["description"], shown["state"], shown["key_spec"], shown["key_usage"], shown["origin"]) == (
        "ledger of payments",
        "Enabled",
        "SYMMETRIC_DEFAULT",
        "ENCRYPT_DECRYPT",
        "AWS_KMS",
    )
    assert shown["created_at"] and shown["deletion_date"] is None
    assert hidden["described"] is False and all(hidden[field] is None for field in HIDDEN_FIELDS)
    assert shown["aliases"] is None  # no kms:ListAliases


def test_list_aliases_shows_every_keys_aliases_and_nothing_else(world: World) -> None:
    rows = rows_of(world.alias_lister.get(KEYS))
    assert rows[str(world.hidden.key_id)]["aliases"] == ["alias/zephyr"]
    assert rows[str(world.shown.key_id)]["aliases"] == ["alias/ledger"]
    assert all(row["described"] is False and row["description"] is None for row in rows.values())


def test_a_grant_for_describe_key_makes_its_key_described(
    world: World, make_user: Callable[..., Persona], api_as: Callable[[Persona], APIClient], settings: Any
) -> None:
    settings.KMS_GRANT_PROPAGATION_SECONDS = 0
    grantee = describe_grantee(make_user, world.hidden)
    rows = rows_of(api_as(grantee).get(KEYS))
    assert rows[str(world.hidden.key_id)]["described"] is True
    assert rows[str(world.hidden.key_id)]["description"] == "zephyr merger secret"
    assert rows[str(world.shown.key_id)]["described"] is False
    # Found by what the row now shows.
    assert set(rows_of(api_as(grantee).get(KEYS, {"search": "merger"}))) == {str(world.hidden.key_id)}


def test_the_admin_sees_every_field(world: World, api_as: Callable[[Persona], APIClient]) -> None:
    rows = rows_of(api_as(world.admin).get(KEYS))
    for key in (world.shown, world.hidden):
        row = rows[str(key.key_id)]
        assert row["described"] is True and row["description"] == key.description
        assert row["aliases"] and row["tags"] == {} and row["rotation_enabled"] is False


def test_the_rotation_shown_is_what_get_key_rotation_status_answers(
    admin: Persona, api_as: Callable[[Persona], APIClient]
) -> None:
    """A row's rotation_enabled is GetKeyRotationStatus's answer, not the stored setting: off while the key is
    pending deletion (the setting is kept) and for an asymmetric key whatever its row holds."""
    on = make_key("on")
    pending = make_key("pending")
    ecc = make_key("ecc", key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY")
    for key in (on, pending):
        as_operator(
            "EnableKeyRotation",
            lambda ctx, key=key: rotation.key_rotation_enable(ctx=ctx, key_id=str(key.key_id)),
        )
    update_sealed(Key.objects.filter(pk=pending.pk), state=KeyState.PENDING_DELETION)
    update_sealed(Key.objects.filter(pk=ecc.pk), rotation_enabled=True)
    client = api_as(admin)
    rows = rows_of(client.get(KEYS))
    for key, shown in ((on, True), (pending, False), (ecc, False)):
        status = client.get(f"{KEYS}/{key.key_id}/rotation").json()
        assert rows[str(key.key_id)]["rotation_enabled"] is status["rotation_enabled"] is shown


def test_the_list_is_one_event_and_its_questions_are_recorded_nowhere(world: World) -> None:
    before = AuditEvent.objects.count()
    world.describer.get(KEYS, {"search": "ledger"})
    [event] = AuditEvent.objects.filter(seq__gt=0).order_by("-seq")[:1]
    assert AuditEvent.objects.count() == before + 1
    assert event.operation == "ListKeys" and event.decision == "allowed"
    assert event.request_parameters["Query"] == {"search": "ledger"}
    assert not AuditEvent.objects.filter(
        operation__in=("DescribeKey", "ListAliases", "ListResourceTags", "GetKeyRotationStatus")
    ).exists()


# Search and filters.


def test_search_and_filters_never_find_a_key_by_what_its_row_does_not_show(world: World) -> None:
    client, hidden = world.describer, str(world.hidden.key_id)
    for query in (
        {"search": "zephyr"},  # its description (and its alias: the describer may not list aliases)
        {"search": "merger"},
        {"search": "alias/zeph"},
        {"state": "Enabled"},
        {"key_spec": "SYMMETRIC_DEFAULT"},
        {"key_usage": "ENCRYPT_DECRYPT"},
        {"search": "ledger", "state": "Enabled"},
    ):
        response = client.get(KEYS, query)
        assert hidden not in rows_of(response), query
        assert response.json()["count"] is None, query
    assert set(rows_of(client.get(KEYS, {"state": "Enabled"}))) == {str(world.shown.key_id)}
    assert set(rows_of(client.get(KEYS, {"search": "LEDGER of"}))) == {str(world.shown.key_id)}


def test_a_key_id_or_arn_finds_any_key(world: World) -> None:
    hidden = world.hidden
    prefix, _, key_id = hidden.arn.rpartition("/")
    for search in (
        str(hidden.key_id),
        str(hidden.key_id).upper(),
        hidden.arn,
        f"{prefix}/{key_id.upper()}",  # the key id as the console or a script may print it
        hidden.arn.upper(),
        str(hidden.key_id)[:13],
    ):
        rows = rows_of(world.ids_only.get(KEYS, {"search": search}))
        assert list(rows) == [str(hidden.key_id)], search
        assert rows[str(hidden.key_id)]["described"] is False
    other_account = hidden.arn.replace(":111122223333:", ":444455556666:")
    assert rows_of(world.ids_only.get(KEYS, {"search": other_account})) == {}


def test_alias_names_are_searched_only_for_those_who_may_list_aliases(world: World) -> None:
    assert list(rows_of(world.alias_lister.get(KEYS, {"search": "alias/zeph"}))) == [str(world.hidden.key_id)]
    assert list(rows_of(world.alias_lister.get(KEYS, {"search": "zephyr"}))) == [str(world.hidden.key_id)]
    assert rows_of(world.ids_only.get(KEYS, {"search": "alias/zeph"})) == {}
    assert rows_of(world.ids_only.get(KEYS, {"search": "zephyr"})) == {}


@pytest.mark.parametrize(
    ("query", "make_it_match"),
    [
        ({"search": "needle"}, {"description": "a needle in the haystack"}),
        ({"state": "Disabled"}, {"state": KeyState.DISABLED}),
        ({"key_spec": "HMAC_256"}, {"key_spec": "HMAC_256", "key_usage": "GENERATE_VERIFY_MAC"}),
        ({"key_usage": "SIGN_VERIFY"}, {"key_spec": "RSA_2048", "key_usage": "SIGN_VERIFY"}),
        ({"search": "needle", "ordering": "-created_at"}, {"description": "needle"}),
    ],
)
@pytest.mark.parametrize("page_size", [1, 50])
def test_a_hidden_match_costs_no_query_and_no_decision(
    world: World, query: dict[str, str], make_it_match: dict[str, str], page_size: int
) -> None:
    """The previous list narrowed in SQL by description, state or spec and then decided the candidates: each hidden
    match cost a decision (and, a page at a time, queries), enough to read a description out by timing substring
    searches. Now every walked key is decided whatever it holds: the same queries and decisions either way."""
    hidden = [make_key(f"hidden {i}", policy=only_for(world.admin.arn)) for i in range(12)]
    visible = make_key(
        "a visible needle"
    )  # the page's one match, walked after the hidden keys (oldest first)
    update_sealed(
        Key.objects.filter(pk=visible.pk),
        **{field: value for field, value in make_it_match.items() if field != "description"},
    )
    client = world.describer
    params = {**query, "page_size": str(page_size)}

    def measured() -> tuple[int, int, Any]:
        client.get(KEYS, params)  # the same warm caches for both
        with counting() as (decisions, queries):
            response = client.get(KEYS, params)
        body = response.json()
        return (
            len(queries.captured_queries),
            decisions.count,
            (body["count"], body["searched"], body["results"]),
        )

    without = measured()
    rows = Key.objects.filter(pk__in=[key.pk for key in hidden])
    if "description" in make_it_match:
        rows.update(description=make_it_match["description"])  # not covered by the row MAC
    update_sealed(rows, **{field: value for field, value in make_it_match.items() if field != "description"})
    with_hidden_matches = measured()
    assert with_hidden_matches == without
    assert [row["key_id"] for row in without[2][2]] == [str(visible.key_id)]


def test_a_page_of_one_costs_no_more_queries_than_a_full_page(world: World) -> None:
    for index in range(30):
        make_key(f"needle hidden {index}", policy=only_for(world.admin.arn))
    for index in range(3):
        make_key(f"needle visible {index}")
    client = world.describer
    client.get(KEYS, {"search": "needle"})
    with counting() as (_, small):
        one = client.get(KEYS, {"search": "needle", "page_size": "1"}).json()
    with counting() as (_, full):
        every = client.get(KEYS, {"search": "needle", "page_size": "50"}).json()
    assert len(one["results"]) == 1 and len(every["results"]) == 3
    assert len(small.captured_queries) <= len(full.captured_queries)
    # The pages of one walk the same keys once each: three pages, then none.
    seen, link, pages = [], KEYS + "?search=needle&page_size=1", 0
    while link:
        with counting() as (_, queries):
            body = client.get(link).json()
        assert len(queries.captured_queries) <= len(full.captured_queries) + 1  # + the cursor's position
        seen += [row["key_id"] for row in body["results"]]
        link, pages = body["next"], pages + 1
    assert len(seen) == 3 == len(set(seen)) and pages <= 4


def test_a_narrowed_list_decides_a_bounded_number_of_keys_per_request(world: World) -> None:
    from tests.console.test_keys import seed_keys

    seed_keys(WALK_LIMIT + 40)  # the account's default key policy: the describer may describe them
    client = world.describer
    client.get(KEYS, {"search": "nothing like it"})
    with counting() as (decisions, queries):
        first = client.get(KEYS, {"search": "nothing like it", "page_size": "500"}).json()
    assert first["results"] == [] and first["count"] is None and first["searched"] == WALK_LIMIT
    assert first["next"] and "page=" not in first["next"]
    # The ListKeys decision, the ListAliases question, and one DescribeKey decision per walked key.
    assert decisions.count == 2 + WALK_LIMIT
    assert len(queries.captured_queries) < 40
    rest = client.get(first["next"]).json()
    assert rest["results"] == [] and rest["searched"] == WALK_LIMIT + 42 - WALK_LIMIT and rest["next"] is None
    # A match early in the walk (newest first: the hidden key, then the shown one) ends it with its chunk.
    with counting() as (decisions, _):
        found = client.get(KEYS, {"search": "ledger", "page_size": "1", "ordering": "-created_at"}).json()
    assert [row["key_id"] for row in found["results"]] == [str(world.shown.key_id)]
    assert found["searched"] == 2 and found["next"]
    assert decisions.count == 2 + WALK_CHUNK + 2  # + the shown key's tags and rotation questions


# Order, pages and cursors.


def test_only_creation_order(world: World) -> None:
    newest_first = [
        row["key_id"] for row in world.ids_only.get(KEYS, {"ordering": "-created_at"}).json()["results"]
    ]
    assert newest_first == [str(world.hidden.key_id), str(world.shown.key_id)]
    for ordering in ("description", "-description", "state", "-key_spec", "key_usage"):
        response = world.ids_only.get(KEYS, {"ordering": ordering})
        assert response.status_code == 400, ordering
        error = response.json()["error"]
        assert error["code"] == "ValidationException"
        # Why, in words: not merely "not a valid choice".
        [why] = error["detail"]["ordering"]
        assert why.startswith(
            f'"{ordering}" is not an order of the key list. The key list is sorted by creation '
        )
        assert "only (`created_at`, oldest first, or `-created_at`, newest first)" in why
        assert "values the caller may not see" in why


def test_cursors_are_sealed_to_the_caller_the_account_and_the_query(
    world: World, partner: Callable[..., Persona]
) -> None:
    for index in range(4):
        make_key(f"ledger {index}")
    client = world.describer
    first = client.get(KEYS, {"search": "ledger", "page_size": "2"}).json()
    cursor = cursor_of(first["next"])
    # All it holds is the position the next page continues from, sealed: opened for this list and caller, it is
    # the last key of the page; a second link to the same position differs and has the same length.
    scope = KeyQuery(search="ledger").scope(user_caller(iam_user("describer")))
    last = Key.objects.get(key_id=first["results"][-1]["key_id"])
    assert open_position(scope, cursor) == ("after", last.pk)
    again = cursor_of(client.get(KEYS, {"search": "ledger", "page_size": "2"}).json()["next"])
    assert again != cursor and len(again) == len(cursor)
    assert open_position(scope, again) == ("after", last.pk)
    assert client.get(KEYS, {"search": "ledger", "page_size": "2", "cursor": cursor}).status_code == 200
    tampered = cursor[:-4] + ("AAAA" if not cursor.endswith("AAAA") else "BBBB")
    for params in (
        {"search": "ledger", "cursor": tampered},
        {"search": "ledger", "cursor": "not a cursor at all"},
        {"search": "ledge", "cursor": cursor},  # another search
        {"search": "ledger", "state": "Enabled", "cursor": cursor},  # another filter
        {"search": "ledger", "ordering": "-created_at", "cursor": cursor},  # another order
        {"cursor": cursor},  # the whole list
    ):
        response = client.get(KEYS, params)
        assert response.status_code == 400, params
        error = response.json()["error"]
        assert error["code"] == "InvalidMarkerException", params
        assert "not valid for this list" in error["message"]
        assert error["detail"] == {"cursor": [error["message"]]}, params
    # Another account's cursor for the same query.
    partner("partner-admin", allow("kms:ListKeys", "kms:DescribeKey", "kms:CreateKey"))
    foreign = client_with(token_for(Account.objects.get(account_id=PARTNER_ACCOUNT), "partner-admin"))
    for index in range(3):
        assert foreign.post(KEYS, {"description": f"ledger {index}"}, format="json").status_code == 201
    theirs = cursor_of(foreign.get(KEYS, {"search": "ledger", "page_size": "1"}).json()["next"])
    refused = client.get(KEYS, {"search": "ledger", "page_size": "1", "cursor": theirs})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "InvalidMarkerException"
    assert AuditEvent.objects.filter(operation="ListKeys", error_code="InvalidMarkerException").exists()


def test_a_cursor_opens_only_for_the_caller_it_was_made_for(
    world: World, make_user: Callable[..., Persona], api_as: Callable[[Persona], APIClient]
) -> None:
    """The review's replay: another principal of the account allowed kms:ListKeys took the admin's cursors of a
    filtered walk (`state=Disabled&page_size=1`) and, from its own walks' `searched`, recovered which keys it may
    not describe had matched. A cursor is now sealed to its caller too."""
    disabled = [make_key(f"hidden {index}", policy=only_for(world.admin.arn)) for index in range(3)]
    update_sealed(Key.objects.filter(pk__in=[key.pk for key in disabled]), state=KeyState.DISABLED)
    for index in range(3):
        make_key(f"filler {index}")
    walk = {"state": "Disabled", "page_size": "1"}
    admin = api_as(world.admin)
    cursor = cursor_of(admin.get(KEYS, walk).json()["next"])
    assert rows_of(admin.get(KEYS, {**walk, "cursor": cursor}))  # its own: the next match
    # The same principal through another API token is the same caller.
    assert rows_of(api_as(world.admin).get(KEYS, {**walk, "cursor": cursor}))
    # Another principal, with the same query: refused in words, as a changed cursor is, and audited.
    for other in (world.describer, api_as(make_user("second-admin", ALLOW_ALL))):
        refused = other.get(KEYS, {**walk, "cursor": cursor})
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["code"] == "InvalidMarkerException" and "not valid for this list" in error["message"]
        assert "another caller" in error["message"]
    assert AuditEvent.objects.filter(operation="ListKeys", error_code="InvalidMarkerException").count() == 2


def test_the_callers_identity_in_a_cursors_scope() -> None:
    """The ARN and the unique id (aws:userid): a user or role recreated under the same name is another caller; one
    role's sessions are one caller per session name (as aws:userid and the session ARN say), whatever session."""
    query = KeyQuery(state="Disabled")
    role = "arn:aws:sts::111122223333:assumed-role/app"

    def session(name: str, role_id: str = "AROAEXAMPLE") -> Caller:
        return Caller(
            arn=f"{role}/{name}", account_id="111122223333", principal_type="AssumedRole",
            userid=f"{role_id}:{name}", role_arn="arn:aws:iam::111122223333:role/app", session_pk=7,
        )  # fmt: skip

    alice = Caller(arn="arn:aws:iam::111122223333:user/alice", account_id="111122223333",
                   principal_type="IAMUser", userid="AIDAFIRST", user_pk=1)  # fmt: skip
    scopes = {
        query.scope(alice),
        query.scope(replace(alice, userid="AIDASECOND", user_pk=2)),  # recreated
        query.scope(session("ci")),
        query.scope(session("laptop")),
        query.scope(session("ci", role_id="AROARECREATED")),
    }
    assert len(scopes) == 5
    # Another access key or API token, or another session of the role under the same session name: the same.
    assert query.scope(replace(alice, access_key_id="AKIAOTHER")) == query.scope(alice)
    assert query.scope(replace(session("ci"), session_pk=8)) == query.scope(session("ci"))


def test_no_cursor_is_recorded_on_an_audit_event(
    world: World, api_as: Callable[[Persona], APIClient]
) -> None:
    """The trail's readers (kmsconsole:ListAuditEvents) are other principals: a ListKeys event, and the audit list's
    own, say that the request continued a list, never where."""
    for index in range(3):
        make_key(f"ledger {index}")
    admin = api_as(world.admin)
    link = admin.get(KEYS, {"search": "ledger", "page_size": "1"}).json()["next"]
    cursor = cursor_of(link)
    assert admin.get(link).status_code == 200
    [event] = AuditEvent.objects.filter(operation="ListKeys").order_by("-seq")[:1]
    assert event.request_parameters["Query"] == {
        "search": "ledger",
        "page_size": "1",
        "cursor": RECORDED_CURSOR,
    }
    events = admin.get("/api/v1/audit-events", {"page_size": "2"}).json()
    assert admin.get(events["next"]).status_code == 200
    [listed] = AuditEvent.objects.filter(operation="kmsconsole:ListAuditEvents").order_by("-seq")[:1]
    assert listed.request_parameters["Query"] == {
        "page_size": "2",
        "cursor": RECORDED_CURSOR,
        "scope": "caller",
    }
    trail = json.dumps(list(AuditEvent.objects.values_list("request_parameters", flat=True)))
    assert cursor not in trail and cursor_of(events["next"]) not in trail


def test_a_narrowed_list_has_no_page_numbers(world: World) -> None:
    response = world.describer.get(KEYS, {"search": "ledger", "page": "2"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "A searched or filtered list has no page numbers" in error["detail"]["page"][0]
    assert "follow its `next` link" in error["detail"]["page"][0]
    assert error["code"] == "ValidationException" and list(error["detail"]) == ["page"]
    assert world.describer.get(KEYS, {"search": "ledger", "page": "1"}).status_code == 200


def test_a_page_number_with_a_cursor_on_the_whole_list_says_so(world: World) -> None:
    """The whole list is paged by number; a cursor (a console link's, say) pages it too, but not both at once:
    the message is about that, not about searches and filters, which this list has none of."""
    for index in range(3):
        make_key(f"ledger {index}")
    cursor = cursor_of(world.describer.get(KEYS, {"search": "ledger", "page_size": "1"}).json()["next"])
    whole = KeyQuery().scope(user_caller(iam_user("describer")))
    plain = seal_position(whole, "after", world.shown.pk)
    assert world.describer.get(KEYS, {"cursor": plain}).status_code == 200
    response = world.describer.get(KEYS, {"cursor": plain, "page": "2"})
    assert response.status_code == 400
    [message] = response.json()["error"]["detail"]["page"]
    assert message.startswith("A page number and a cursor cannot be used together")
    assert "searched or filtered" not in message
    narrowed = world.describer.get(KEYS, {"search": "ledger", "cursor": cursor, "page": "2"})
    assert "A searched or filtered list has no page numbers" in narrowed.json()["error"]["detail"]["page"][0]


def test_a_cursor_whose_key_was_deleted_is_refused_in_words(world: World) -> None:
    for index in range(3):
        make_key(f"ledger {index}")
    first = world.describer.get(KEYS, {"search": "ledger", "page_size": "1"}).json()
    Key.objects.filter(key_id=first["results"][0]["key_id"]).delete()
    response = world.describer.get(first["next"])
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "InvalidMarkerException" and "no longer exists" in error["detail"]["cursor"][0]


def test_the_schema_documents_what_the_list_withholds(client: Any) -> None:
    document = client.get("/api/schema/", {"format": "json"}).json()
    summary = document["components"]["schemas"]["KeySummaryOutput"]["properties"]
    assert "DescribeKey" in summary["described"]["description"]
    assert all(
        summary[field]["nullable"] for field in (*HIDDEN_FIELDS, "aliases", "tags", "rotation_enabled")
    )
    operation = document["paths"]["/api/v1/keys"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert set(parameters) >= {
        "search",
        "state",
        "key_spec",
        "key_usage",
        "ordering",
        "cursor",
        "page",
        "page_size",
    }
    assert parameters["ordering"]["schema"]["enum"] == ["created_at", "-created_at"]
    assert "at most 500 keys per request" in operation["description"]
    paged = document["components"]["schemas"]["PaginatedKeySummaryOutputList"]["properties"]
    assert paged["count"]["nullable"] and paged["searched"]["nullable"]


def test_identity_policies_are_read_once_per_list(world: World) -> None:
    """The list's own decision reads the caller's identity policies; every question (DescribeKey on each key,
    ListAliases, ListResourceTags, GetKeyRotationStatus) reuses that read."""
    client = world.describer
    for params in ({}, {"search": "ledger"}, {"state": "Enabled", "page_size": "1"}):
        with counting() as (_, queries):
            assert client.get(KEYS, params).status_code == 200
        reads = [q for q in queries.captured_queries if 'FROM "policies_identitypolicy"' in q["sql"]]
        assert len(reads) == 1, params
