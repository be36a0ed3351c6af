"""Console: the key list (search, filters, sort, keyset pages) and a key's General configuration tab with its
actions (description, enable, disable, schedule and cancel deletion), each as anonymous, outsider and admin."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from keys.default_policies import default_key_policy
from keys.models import Alias, Key, KeyState, Tag
from keys.services import aliases, deletion
from kmsconsole.api.authentication import user_caller
from kmsconsole.api.key_listing import WALK_LIMIT, KeyQuery
from kmsconsole.console.views.keys_list import PAGE_SIZE
from kmsconsole.core import rowmac
from kmsconsole.core.pagination import seal_position
from policies.models import Account
from tests.api.conftest import client_with, iam_user, token_for
from tests.api.conftest import make_key as create_key
from tests.conftest import Persona, as_operator
from tests.console.conftest import PASSWORD, audit_events
from tests.rows import update_sealed

pytestmark = pytest.mark.django_db

KEY_LIST = reverse("console:keys")
ACTIONS = ("key-enable", "key-disable", "key-schedule-deletion", "key-cancel-deletion", "key-description")


def make_key(
    description: str = "", *, alias: str = "", tags: dict[str, str] | None = None, **options: Any
) -> Key:
    """A key of the test account, made as the operator (with an alias and tags when asked)."""
    tag_list = [{"TagKey": name, "TagValue": value} for name, value in (tags or {}).items()]
    key = create_key(description, tags=tag_list, **options)
    if alias:
        as_operator(
            "CreateAlias",
            lambda ctx: aliases.alias_create(ctx=ctx, alias_name=alias, target_key_id=str(key.key_id)),
        )
    return key


def key_snapshot(key: Key) -> dict[str, Any]:
    """Every column a General configuration action can change."""
    return Key.objects.filter(pk=key.pk).values(
        "state", "description", "deletion_date", "pending_window_days", "deletion_scheduled_by"
    )[0]


def detail_url(key: Key) -> str:
    return reverse("console:key", args=[str(key.key_id)])


def action_url(name: str, key: Key) -> str:
    return reverse(f"console:{name}", args=[str(key.key_id)])


def listed_ids(response: Any) -> list[str]:
    return [str(row.key.key_id) for row in response.context["rows"]]


def follow_pages(client: Client, url: str) -> tuple[list[str], int]:
    """Every key id the list shows, page by page through the Next links, and how many pages it took."""
    seen: list[str] = []
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen.extend(listed_ids(response))
        pages += 1
        url = response.context.get("next_url") or ""
    return seen, pages


# The list.


def test_anonymous_is_sent_to_sign_in(client: Client) -> None:
    for url in (KEY_LIST, reverse("console:key-create")):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith("/signin/")


def test_outsider_is_refused_the_list(
    console: Callable[..., Client], admin: Persona, outsider: Persona
) -> None:
    make_key(description="secret project")
    response = console(outsider).get(KEY_LIST)
    assert response.status_code == 403
    body = response.content.decode()
    assert "Refused." in body and "kms:ListKeys" in body
    assert "secret project" not in body
    assert audit_events("ListKeys", decision="denied", caller_arn=outsider.arn)


def test_empty_list_invites_to_create_a_key(console: Callable[..., Client], admin: Persona) -> None:
    response = console(admin).get(KEY_LIST)
    assert response.status_code == 200
    body = response.content.decode()
    assert "No keys yet" in body
    assert reverse("console:key-create") in body
    assert audit_events("ListKeys", decision="allowed", caller_arn=admin.arn)


def test_list_shows_aliases_ids_and_states(console: Callable[..., Client], admin: Persona) -> None:
    key = make_key(description="orders", alias="alias/orders", tags={"team": "payments"})
    other = make_key(key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY")
    response = console(admin).get(KEY_LIST)
    body = response.content.decode()
    assert response.status_code == 200
    assert "alias/orders" in body
    assert f'href="{detail_url(key)}"' in body and f'href="{detail_url(other)}"' in body
    assert "ECC_NIST_P256" in body and "SIGN_VERIFY" in body
    assert 'class="badge Enabled"' in body


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("alias/ord", {"orders"}),
        ("ORDERS", {"orders"}),  # the description, case-insensitively
        # Not tags: their keys and values are for those the key policy allows kms:ListResourceTags, and the
        # list needs only the IAM permission kms:ListKeys (a search would reveal them a character at a time).
        ("payments", set()),
        ("cost-center", set()),
        ("cost-center=42", set()),
        ("nothing like this", set()),
    ],
)
def test_search(console: Callable[..., Client], admin: Persona, query: str, expected: set[str]) -> None:
    make_key(description="orders", alias="alias/orders", tags={"team": "payments"})
    make_key(description="billing", tags={"cost-center": "42"})
    make_key(description="unrelated")
    response = console(admin).get(KEY_LIST, {"q": query})
    assert response.status_code == 200
    assert {row.key.description for row in response.context["rows"]} == expected
    if not expected:
        assert "No keys match" in response.content.decode()


def test_search_by_key_id_whole_or_part(console: Callable[..., Client], admin: Persona) -> None:
    key = make_key(description="wanted")
    make_key(description="other")
    client = console(admin)
    for query in (str(key.key_id), str(key.key_id)[:13], str(key.key_id).upper()):
        assert listed_ids(client.get(KEY_LIST, {"q": query})) == [str(key.key_id)]


def test_filters(console: Callable[..., Client], admin: Persona) -> None:
    symmetric = make_key(description="sym")
    signing = make_key(description="sign", key_spec="RSA_2048", key_usage="SIGN_VERIFY")
    hmac = make_key(description="mac", key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC")
    update_sealed(Key.objects.filter(pk=hmac.pk), state=KeyState.DISABLED)
    client = console(admin)
    assert listed_ids(client.get(KEY_LIST, {"state": "Disabled"})) == [str(hmac.key_id)]
    assert listed_ids(client.get(KEY_LIST, {"spec": "RSA_2048"})) == [str(signing.key_id)]
    assert listed_ids(client.get(KEY_LIST, {"usage": "ENCRYPT_DECRYPT"})) == [str(symmetric.key_id)]
    assert listed_ids(client.get(KEY_LIST, {"usage": "SIGN_VERIFY", "state": "Enabled"})) == [
        str(signing.key_id)
    ]
    empty = client.get(KEY_LIST, {"state": "PendingDeletion"})
    assert "No keys match" in empty.content.decode()
    # The filter form submits itself when a select changes (static/js/console.js).
    assert "data-autosubmit" in empty.content.decode()


def test_unknown_filter_value_is_a_400_with_a_message(console: Callable[..., Client], admin: Persona) -> None:
    response = console(admin).get(KEY_LIST, {"state": "Melted", "sort": "colour"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Select a valid choice" in body
    assert 'role="alert"' in body


@pytest.mark.parametrize("sort", ["description", "-description", "state", "spec", "-spec"])
def test_no_sort_by_what_a_caller_may_not_see(
    console: Callable[..., Client], admin: Persona, sort: str
) -> None:
    """A key's place in an order by description, state or spec tells those values to a caller who may not describe
    it: only the order of creation (ListKeys') is offered."""
    make_key(description="b")
    response = console(admin).get(KEY_LIST, {"sort": sort})
    assert response.status_code == 400
    body = response.content.decode()
    assert (
        f"Sort: &quot;{sort}&quot; is not an order of the key list. The key list is sorted by creation"
        in body
    )
    assert "values the caller may not see" in body


def test_newest_first_by_default_and_created_sorts_both_ways(
    console: Callable[..., Client], admin: Persona
) -> None:
    keys = [make_key(description=f"k{i}") for i in range(3)]
    client = console(admin)
    newest_first = [str(key.key_id) for key in reversed(keys)]
    assert listed_ids(client.get(KEY_LIST)) == newest_first
    assert listed_ids(client.get(KEY_LIST, {"sort": "created"})) == newest_first[::-1]


@pytest.mark.parametrize("sort", ["-created", "created"])
def test_keyset_pages_show_every_key_once(console: Callable[..., Client], admin: Persona, sort: str) -> None:
    created = {str(make_key(description=f"key {i % 7}").key_id) for i in range(PAGE_SIZE + 10)}
    client = console(admin)
    seen, pages = follow_pages(client, f"{KEY_LIST}?sort={sort}")
    assert pages == 2
    assert len(seen) == len(created) and set(seen) == created
    # Previous from the second page gives the first page back, in the same order.
    first = client.get(f"{KEY_LIST}?sort={sort}")
    second = client.get(first.context["next_url"])
    assert not second.context["next_url"]
    back = client.get(second.context["previous_url"])
    assert listed_ids(back) == listed_ids(first)
    assert not back.context["previous_url"]


def test_pages_keep_search_and_filters(console: Callable[..., Client], admin: Persona) -> None:
    wanted = {str(make_key(description=f"match {i}").key_id) for i in range(PAGE_SIZE + 3)}
    make_key(description="other")
    seen, pages = follow_pages(console(admin), f"{KEY_LIST}?q=match&state=Enabled")
    assert pages == 2 and set(seen) == wanted and len(seen) == len(wanted)


def test_a_forged_or_foreign_cursor_is_a_400(console: Callable[..., Client], admin: Persona) -> None:
    for i in range(PAGE_SIZE + 1):
        make_key(description=f"k{i}")
    client = console(admin)
    next_url = client.get(KEY_LIST).context["next_url"]
    cursor = parse_qs(urlsplit(next_url).query)["cursor"][0]
    for query in ({"cursor": cursor + "x"}, {"cursor": cursor, "sort": "created"}, {"cursor": "garbage"}):
        response = client.get(KEY_LIST, query)
        assert response.status_code == 400
        body = response.content.decode()
        assert "That page link is not valid for this list" in body and 'role="alert"' in body
    [refused, *_] = audit_events("ListKeys", error_code="InvalidMarkerException")
    assert refused.decision == "failed"


def test_query_count_does_not_grow_with_the_page(
    console: Callable[..., Client], admin: Persona, django_assert_max_num_queries: Any
) -> None:
    client = console(admin)
    make_key(alias="alias/one", tags={"a": "1"})
    client.get(KEY_LIST)  # sessions and caches warm
    with CaptureQueriesContext(connection) as small:
        client.get(KEY_LIST, {"q": "a"})
    for i in range(PAGE_SIZE + 5):
        make_key(alias=f"alias/k{i}", tags={"a": str(i), "b": "x"})
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = client.get(KEY_LIST, {"q": "a"})
    assert len(response.context["rows"]) == PAGE_SIZE
    # A page link costs one query more than the first page: the position it continues from.
    with django_assert_max_num_queries(len(small.captured_queries) + 1):
        client.get(response.context["next_url"])


def test_htmx_gets_only_the_results(console: Callable[..., Client], admin: Persona) -> None:
    make_key(description="orders")
    response = console(admin).get(KEY_LIST, {"q": "orders"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert "orders" in body and "<html" not in body
    assert "HX-Request" in response["Vary"]


def test_htmx_gets_a_refusal_it_can_show(console: Callable[..., Client], outsider: Persona) -> None:
    response = console(outsider).get(KEY_LIST, {"state": "Enabled"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200  # htmx swaps only successful responses
    body = response.content.decode()
    assert 'role="alert">Refused.' in body and "<html" not in body


# The General configuration tab.


def test_detail_anonymous_and_actions_redirect_to_sign_in(client: Client, admin: Persona) -> None:
    key = make_key()
    before = key_snapshot(key)
    assert client.get(detail_url(key)).url.startswith("/signin/")
    for name in ACTIONS:
        response = client.post(
            action_url(name, key), {"pending_window_days": 7, "confirm_key_id": str(key.key_id)}
        )
        assert response.status_code == 302 and response.url.startswith("/signin/")
    assert key_snapshot(key) == before


def test_detail_shows_the_metadata(console: Callable[..., Client], admin: Persona) -> None:
    key = make_key(description="orders <b>db</b>", alias="alias/orders")
    response = console(admin).get(detail_url(key))
    assert response.status_code == 200
    body = response.content.decode()
    assert key.arn in body
    assert "orders &lt;b&gt;db&lt;/b&gt;" in body
    assert "AWS_KMS" in body and "Customer" in body and "multi-Region: no" in body
    assert 'aria-current="page"' in body and "General configuration" in body
    assert f'data-confirm-match="{key.key_id}"' in body
    assert f'min="{deletion.PENDING_WINDOW_MIN_DAYS}" max="{deletion.PENDING_WINDOW_MAX_DAYS}"' in body
    assert f'value="{deletion.PENDING_WINDOW_DEFAULT_DAYS}"' in body
    assert audit_events("DescribeKey", decision="allowed", key_arn=key.arn)


def test_unknown_key_is_a_404_in_words(console: Callable[..., Client], admin: Persona) -> None:
    client = console(admin)
    for key_id in ("0f0f0f0f-1111-2222-3333-444444444444", "not-a-key-id"):
        response = client.get(reverse("console:key", args=[key_id]))
        assert response.status_code == 404
        assert "Key not found" in response.content.decode()
        response = client.post(reverse("console:key-enable", args=[key_id]))
        assert response.status_code == 404


def test_outsider_sees_a_refusal_and_changes_nothing(
    console: Callable[..., Client], admin: Persona, outsider: Persona
) -> None:
    key = make_key(description="kept")
    before = key_snapshot(key)
    client = console(outsider)
    response = client.get(detail_url(key))
    assert response.status_code == 403
    assert "Refused." in response.content.decode()
    posts = {
        "key-disable": {},
        "key-enable": {},
        "key-description": {"description": "changed"},
        "key-schedule-deletion": {"pending_window_days": 7, "confirm_key_id": str(key.key_id)},
        "key-cancel-deletion": {},
    }
    for name, data in posts.items():
        response = client.post(action_url(name, key), data)
        assert response.status_code == 403, name
        assert "Refused." in response.content.decode()
    assert key_snapshot(key) == before
    assert audit_events("DisableKey", decision="denied", caller_arn=outsider.arn)
    assert audit_events("ScheduleKeyDeletion", decision="denied", caller_arn=outsider.arn)


def test_admin_disables_and_enables(console: Callable[..., Client], admin: Persona) -> None:
    key = make_key()
    client = console(admin)
    response = client.post(action_url("key-disable", key))
    assert response.status_code == 302 and response.url == detail_url(key)
    key.refresh_from_db()
    assert key.state == KeyState.DISABLED
    page = client.get(response.url).content.decode()
    assert "Key disabled" in page
    assert action_url("key-enable", key) in page and action_url("key-disable", key) not in page
    assert client.post(action_url("key-enable", key)).status_code == 302
    key.refresh_from_db()
    assert key.state == KeyState.ENABLED
    assert audit_events("DisableKey", decision="allowed", key_arn=key.arn)
    assert audit_events("EnableKey", decision="allowed", key_arn=key.arn)


def test_admin_edits_the_description(console: Callable[..., Client], admin: Persona) -> None:
    key = make_key(description="old")
    client = console(admin)
    response = client.post(action_url("key-description", key), {"description": "new words"})
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.description == "new words"
    assert audit_events("UpdateKeyDescription", decision="allowed", key_arn=key.arn)
    too_long = "x" * 8193
    response = client.post(action_url("key-description", key), {"description": too_long})
    assert response.status_code == 400
    assert "at most 8192 characters" in response.content.decode()
    key.refresh_from_db()
    assert key.description == "new words"


def test_schedule_and_cancel_deletion(console: Callable[..., Client], admin: Persona) -> None:
    key = make_key()
    client = console(admin)
    response = client.post(
        action_url("key-schedule-deletion", key),
        {"pending_window_days": 7, "confirm_key_id": str(key.key_id)},
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.state == KeyState.PENDING_DELETION and key.pending_window_days == 7
    page = client.get(detail_url(key)).content.decode()
    assert "scheduled for deletion" in page and "Deletion date" in page
    assert action_url("key-cancel-deletion", key) in page
    [event] = audit_events("ScheduleKeyDeletion", decision="allowed", key_arn=key.arn)
    assert event.request_parameters["PendingWindowInDays"] == 7
    assert client.post(action_url("key-cancel-deletion", key)).status_code == 302
    key.refresh_from_db()
    assert key.state == KeyState.DISABLED and key.deletion_date is None
    assert audit_events("CancelKeyDeletion", decision="allowed", key_arn=key.arn)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"pending_window_days": 7, "confirm_key_id": "wrong"}, "exactly to confirm"),
        ({"pending_window_days": 7, "confirm_key_id": ""}, "This field is required"),
        ({"pending_window_days": deletion.PENDING_WINDOW_MIN_DAYS - 1}, "from 7 to 30 days"),
        ({"pending_window_days": deletion.PENDING_WINDOW_MAX_DAYS + 1}, "from 7 to 30 days"),
        ({"pending_window_days": "soon"}, "Enter a whole number"),
    ],
)
def test_schedule_deletion_bad_input(
    console: Callable[..., Client], admin: Persona, data: dict[str, Any], message: str
) -> None:
    key = make_key()
    before = key_snapshot(key)
    data = {"confirm_key_id": str(key.key_id), **data}
    response = console(admin).post(action_url("key-schedule-deletion", key), data)
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body and 'class="field-error"' in body
    # What the person typed is kept.
    assert f'value="{data["pending_window_days"]}"' in body
    assert key_snapshot(key) == before
    assert not audit_events("ScheduleKeyDeletion")


def test_a_refused_action_shows_the_engines_message(console: Callable[..., Client], admin: Persona) -> None:
    key = make_key()
    update_sealed(Key.objects.filter(pk=key.pk), state=KeyState.PENDING_DELETION)
    before = key_snapshot(key)
    response = console(admin).post(action_url("key-enable", key))
    assert response.status_code == 409
    body = response.content.decode()
    assert re.search(r'class="message error" role="alert"[^>]*>[^<]*pending deletion', body)
    assert key_snapshot(key) == before
    assert audit_events("EnableKey", decision="failed", key_arn=key.arn)


def test_actions_are_post_only(console: Callable[..., Client], admin: Persona) -> None:
    key = make_key()
    client = console(admin)
    for name in ACTIONS:
        response = client.get(action_url(name, key))
        assert response.status_code == 302 and response.url == detail_url(key)
    assert key_snapshot(key)["state"] == KeyState.ENABLED


@pytest.mark.parametrize(
    ("name", "data", "state"),
    [
        ("key-disable", {}, KeyState.DISABLED),
        ("key-schedule-deletion", {"pending_window_days": 30}, KeyState.PENDING_DELETION),
    ],
)
def test_destructive_actions_need_a_fresh_password(
    console: Callable[..., Client], admin: Persona, name: str, data: dict[str, Any], state: str
) -> None:
    key = make_key()
    before = key_snapshot(key)
    client = console(admin, sudo=False)
    if name == "key-schedule-deletion":  # its form's confirmation field; the disable form posts nothing
        data = {"confirm_key_id": str(key.key_id), **data}
    referer = f"http://testserver{detail_url(key)}"
    response = client.post(action_url(name, key), data, HTTP_REFERER=referer)
    assert response.status_code == 302
    assert response.url.startswith(reverse("console:sudo"))
    assert key_snapshot(key) == before
    assert not audit_events("DisableKey") and not audit_events("ScheduleKeyDeletion")
    # The right password completes the action that asked for it: nothing to submit again.
    confirmed = client.post(response.url, {"password": PASSWORD})
    assert confirmed.status_code == 302 and confirmed.url == detail_url(key)
    key.refresh_from_db()
    assert key.state == state


def test_enable_and_cancel_need_no_password(console: Callable[..., Client], admin: Persona) -> None:
    key = make_key()
    update_sealed(Key.objects.filter(pk=key.pk), state=KeyState.DISABLED)
    client = console(admin, sudo=False)
    assert client.post(action_url("key-enable", key)).url == detail_url(key)
    key.refresh_from_db()
    assert key.state == KeyState.ENABLED


# Performance at 100,000 keys (run with -m benchmark; DATABASE_URL picks SQLite or PostgreSQL).

BENCH_KEYS = 100_000


def seed_keys(count: int) -> None:
    """`count` keys written straight to the table (no material: the list never reads it), in batches with
    their own creation times, every tenth with an alias and every tenth with a tag, each with the account's default
    key policy and row MACs that hold (the list decides DescribeKey on them as the real request would)."""
    account = Account.objects.get(account_id=settings.KMS_ACCOUNT_ID)
    policy = default_key_policy(account.account_id)
    start = timezone.now() - timedelta(days=365)
    states = [KeyState.ENABLED] * 8 + [KeyState.DISABLED, KeyState.PENDING_DELETION]
    specs = [("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")] * 6 + [
        ("RSA_2048", "SIGN_VERIFY"),
        ("ECC_NIST_P256", "SIGN_VERIFY"),
        ("HMAC_256", "GENERATE_VERIFY_MAC"),
        ("RSA_4096", "ENCRYPT_DECRYPT"),
    ]
    batch = 2_000
    for offset in range(0, count, batch):
        rows = []
        for i in range(offset, min(offset + batch, count)):
            spec, usage = specs[i % len(specs)]
            rows.append(
                Key(
                    account=account,
                    description=f"service {i % 997} data key number {i}",
                    key_spec=spec,
                    key_usage=usage,
                    state=states[(i // 3) % len(states)],
                    policy=policy,
                )
            )
        with mock.patch("django.utils.timezone.now", return_value=start + timedelta(minutes=offset)):
            keys = Key.objects.bulk_create(rows)
        if not keys[0].pk:  # SQLite before RETURNING: read the primary keys back
            keys = list(Key.objects.select_related("account").order_by("-pk")[: len(rows)])[::-1]
        aliases = Alias.objects.bulk_create(
            Alias(account=account, name=f"alias/k-{key.pk}", key=key) for key in keys if key.pk % 10 == 0
        )
        tags = Tag.objects.bulk_create(
            Tag(key=key, tag_key="team", tag_value=f"t{key.pk // 10 % 50}") for key in keys[5::10]
        )
        # A key's MAC covers its aliases and tags: seal the keys that have some.
        children: dict[int, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {}
        for alias in aliases:
            children.setdefault(alias.key.pk, ([], []))[0].append((alias.name, alias.mac))
        for tag in tags:
            children.setdefault(tag.key.pk, ([], []))[1].append((tag.tag_key, tag.mac))
        sealed = []
        for key in keys:
            if key.pk in children:
                named, tagged = children[key.pk]
                key.mac = rowmac.row_mac(Key.MAC_KIND, *rowmac.key_mac_fields(key, named, tagged))
                sealed.append(key)
        Key.objects.bulk_update(sealed, ["mac"])


def seed_benchmark_keys(request: pytest.FixtureRequest) -> None:
    """BENCH_KEYS keys (`seed_keys`) and fresh planner statistics, for a benchmark run with -m benchmark (else the
    test is skipped)."""
    if "benchmark" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("a benchmark: run with -m benchmark")
    seed_keys(BENCH_KEYS)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # what autovacuum does after a bulk load


def query_cost(sql: str) -> tuple[float, str]:
    """The listing query's own time (best of 3) and the scans of its plan."""
    times = []
    with connection.cursor() as cursor:
        for _ in range(3):
            started = time.perf_counter()
            cursor.execute(sql)
            cursor.fetchall()
            times.append((time.perf_counter() - started) * 1000)
        cursor.execute(f"EXPLAIN {'QUERY PLAN ' if connection.vendor == 'sqlite' else ''}{sql}")
        steps = [str(row[-1]).strip() for row in cursor.fetchall()]
    scans = [step.split("  (cost")[0] for step in steps if "keys_key" in step or "Index Cond" in step]
    return min(times), " | ".join(scans)[:400]


@pytest.mark.benchmark
def test_list_stays_fast_at_100000_keys(
    request: pytest.FixtureRequest,
    console: Callable[..., Client],
    admin: Persona,
) -> None:
    seed_benchmark_keys(request)
    client = console(admin)
    api = client_with(token_for(Account.objects.get(account_id=settings.KMS_ACCOUNT_ID), admin.name))
    admin_caller = user_caller(iam_user(admin.name))  # the console's caller: a cursor is sealed to it
    deep_new = Key.objects.order_by("-created_at", "-pk")[BENCH_KEYS - 1_000]
    deep_filtered = Key.objects.order_by("-created_at", "-pk")[BENCH_KEYS - 1_000]
    filtered = KeyQuery(state="Disabled", key_spec="RSA_2048", descending=True)
    cases: dict[str, tuple[str, dict[str, str]]] = {
        "first page (newest first)": (KEY_LIST, {}),
        "deep page, newest first (key 99,000)": (
            KEY_LIST,
            {"cursor": seal_position(KeyQuery(descending=True).scope(admin_caller), "after", deep_new.pk)},
        ),
        "filter: Disabled + RSA_2048": (KEY_LIST, {"state": "Disabled", "spec": "RSA_2048"}),
        "filter, deep (from key 99,000)": (
            KEY_LIST,
            {
                "state": "Disabled",
                "spec": "RSA_2048",
                "cursor": seal_position(filtered.scope(admin_caller), "after", deep_filtered.pk),
            },
        ),
        "search: a description word": (KEY_LIST, {"q": "service 996 "}),
        # An alias the seeding made (named by primary keys, which depend on earlier runs' sequences).
        "search: an alias": (
            KEY_LIST,
            {"q": Alias.objects.order_by("-pk").values_list("name", flat=True)[0]},
        ),
        "search: a key id": (KEY_LIST, {"q": str(deep_new.key_id)}),
        "search: nothing matches": (KEY_LIST, {"q": "no such key anywhere"}),
        "REST: first page": ("/api/v1/keys", {}),
        "REST: search, a description word": ("/api/v1/keys", {"search": "service 996 "}),
        "REST: filter, page_size=1": (
            "/api/v1/keys",
            {"state": "Disabled", "key_spec": "RSA_2048", "page_size": "1"},
        ),
    }
    results = []
    for label, (url, query) in cases.items():
        browser = api if url.startswith("/api/") else client
        times = []
        for _ in range(3):
            started = time.perf_counter()
            response = browser.get(url, query)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content.decode()[:500]
        with CaptureQueriesContext(connection) as queries:
            browser.get(url, query)
        shown = len(response.json()["results"]) if url.startswith("/api/") else len(response.context["rows"])
        listing = next(q["sql"] for q in queries.captured_queries if 'FROM "keys_key"' in q["sql"])
        results.append((label, min(times), shown, len(queries.captured_queries), *query_cost(listing)))
    vendor = connection.vendor
    print(f"\nKey list at {BENCH_KEYS:,} keys on {vendor} (whole request, best of 3; a search or filter looks "
          f"through at most {WALK_LIMIT} keys per request):")  # fmt: skip
    for label, best, rows, count, query_ms, plan in results:
        print(
            f"  {label:42} {best:7.1f} ms request, {count:2} queries, {query_ms:6.1f} ms first listing query "
            f"({rows} rows)\n    {plan}"
        )
    assert all(best < 2_000 for _label, best, *_rest in results)
