"""A re-seal running beside requests (kmsconsole.core.rootkey_movers): a family moved to the current root key
between a reader's statement for the parent and its statement for the children is read again, not refused
(kmsconsole.core.rowmac.read_consistently), and a row changed outside still fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.db.models import prefetch_related_objects

from keys import selectors
from keys.models import Key, KeyMaterial, Tag
from keys.services import lifecycle, tags
from kmsconsole.core import errors
from kmsconsole.core.rootkey import root_keys
from kmsconsole.core.rootkey_dependents import dependents
from kmsconsole.core.rowmac import is_under_current_root_key
from kmsconsole.generations.cache import clear_all, request_snapshot
from policies import selectors as principal_selectors
from policies import services
from policies.models import IdentityPolicy
from policies.selectors import credentials_for, identity_policies_for
from tests.conftest import ALLOW_ALL, Persona, RootKeyFile, as_operator

pytestmark = pytest.mark.django_db


def reseal_family(prefix: str) -> Callable[[], None]:
    """Move the families of one dependent to the current root key, as `rootkey reseal` would, once."""
    done: list[bool] = []

    def move() -> None:
        if not done:
            done.append(True)
            dependent = next(one for one in dependents() if one.name.startswith(prefix))
            assert dependent.reseal(root_keys(), 100).moved > 0

    return move


@pytest.fixture
def tagged_key(admin: Persona) -> Key:
    key = as_operator("CreateKey", lambda ctx: lifecycle.key_create(ctx=ctx, description="read"))
    as_operator(
        "TagResource",
        lambda ctx: tags.key_tag(ctx=ctx, key_id=str(key.key_id), tags=[{"TagKey": "a", "TagValue": "b"}]),
    )
    return key  # type: ignore[no-any-return]


def torn_between_key_and_aliases(monkeypatch: pytest.MonkeyPatch, between: Callable[[], None]) -> list[int]:
    """The key's family moves after the reader has read the key row and before it reads its aliases."""
    real = selectors._alias_rows
    calls: list[int] = []

    def alias_rows(key: Key) -> Any:
        calls.append(1)
        between()
        return real(key)

    monkeypatch.setattr(selectors, "_alias_rows", alias_rows)
    return calls


def test_a_key_resealed_between_the_readers_statements_is_read_again(
    root_key_file: RootKeyFile, tagged_key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    root_key_file.rotate()
    calls = torn_between_key_and_aliases(monkeypatch, reseal_family("row MACs: keys"))
    key = Key.objects.select_related("account").get(pk=tagged_key.pk)
    assert selectors.checked_aliases_and_tags(key) == ((), {"a": "b"})
    assert len(calls) == 2


def test_a_key_resealed_while_the_cache_loads_it_is_read_again(
    root_key_file: RootKeyFile, tagged_key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    root_key_file.rotate()
    clear_all()
    calls = torn_between_key_and_aliases(monkeypatch, reseal_family("row MACs: keys"))
    with request_snapshot() as snapshot:
        assert snapshot is not None
        found = selectors.key_by_id(tagged_key.key_id)
    assert found is not None and found.pk == tagged_key.pk and len(calls) == 2


def test_identity_policies_resealed_between_the_readers_statements_are_read_again(
    root_key_file: RootKeyFile, admin: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    root_key_file.rotate()
    move = reseal_family("row MACs: IAM users")

    class TornPolicies:
        """IdentityPolicy, whose rows are read after the user's family has moved."""

        @property
        def objects(self) -> Any:
            move()
            return IdentityPolicy.objects

    credentials = credentials_for(admin.access_key_id)
    assert credentials is not None
    monkeypatch.setattr(principal_selectors, "IdentityPolicy", TornPolicies())
    assert [policy.name for policy in identity_policies_for(credentials.caller)] == ["policy-0"]


def test_a_row_changed_outside_fails_the_second_read_too(
    root_key_file: RootKeyFile, tagged_key: Key, caplog: pytest.LogCaptureFixture
) -> None:
    Tag.objects.filter(key=tagged_key).update(tag_value="changed")
    key = Key.objects.select_related("account").get(pk=tagged_key.pk)
    with pytest.raises(errors.KMSInternalException):
        selectors.checked_aliases_and_tags(key)
    # Logged once: by the second read, not by the first.
    assert len([record for record in caplog.records if "Row integrity check failed" in record.message]) == 1


def no_alarm(caplog: pytest.LogCaptureFixture) -> bool:
    return not [record for record in caplog.records if "changed outside the service" in record.getMessage()]


def test_a_role_resealed_between_its_row_and_its_policies_is_read_again(
    root_key_file: RootKeyFile,
    account: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """role_get (AssumeRole) reads the role, then its inline policies in `check_row`'s own statement."""
    role = as_operator(
        "iam:CreateRole", lambda ctx: services.role_create(ctx=ctx, account=account, role_name="r")
    )
    as_operator(
        "iam:PutRolePolicy",
        lambda ctx: services.identity_policy_put(ctx=ctx, owner=role, policy_name="p", document=ALLOW_ALL),
    )
    root_key_file.rotate()
    real, move = principal_selectors.entity_get, reseal_family("row MACs: IAM roles")

    def torn(*args: Any, **kwargs: Any) -> Any:
        row = real(*args, **kwargs)
        move()  # the family commits between the role's statement and its policies' statement
        return row

    monkeypatch.setattr(principal_selectors, "entity_get", torn)
    found = principal_selectors.role_get(account, "r")
    assert found.pk == role.pk and is_under_current_root_key(found.mac, found.MAC_KIND, *found.mac_fields())
    assert no_alarm(caplog)


def test_a_key_read_alone_and_checked_after_a_reseal_is_read_again(
    root_key_file: RootKeyFile, tagged_key: Key, caplog: pytest.LogCaptureFixture
) -> None:
    """keys.selectors.checked (key_by_id with no snapshot, and every `checked()` reader)."""
    root_key_file.rotate()
    key = Key.objects.select_related("account").get(pk=tagged_key.pk)
    reseal_family(
        "row MACs: keys"
    )()  # between the key's statement and `check_row`'s statement for its children
    assert selectors.checked(key) is key and no_alarm(caplog)


def test_a_listed_key_resealed_before_its_prefetch_is_read_again(
    root_key_file: RootKeyFile, tagged_key: Key, caplog: pytest.LogCaptureFixture
) -> None:
    """A list prefetches keys, then their aliases and tags, in separate statements (kmsconsole.api.reads)."""
    root_key_file.rotate()
    listed = Key.objects.select_related("account").get(pk=tagged_key.pk)  # the list's first statement
    reseal_family("row MACs: keys")()
    prefetch_related_objects([listed], "aliases", "tags")  # the list's prefetch statements
    assert selectors.checked_aliases_and_tags(listed) == ((), {"a": "b"})
    assert no_alarm(caplog)


def test_a_listed_key_changed_outside_still_fails_and_is_logged_once(
    tagged_key: Key, caplog: pytest.LogCaptureFixture
) -> None:
    Tag.objects.filter(key=tagged_key).update(tag_value="changed")
    listed = Key.objects.select_related("account").prefetch_related("aliases", "tags").get(pk=tagged_key.pk)
    with pytest.raises(errors.KMSInternalException):
        selectors.checked_aliases_and_tags(listed)
    assert len([record for record in caplog.records if "Row integrity check failed" in record.message]) == 1


def test_a_scheduled_rotation_claims_a_key_resealed_while_it_checks_it(
    root_key_file: RootKeyFile,
    tagged_key: Key,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from keys.services import rotation

    as_operator(
        "EnableKeyRotation",
        lambda ctx: rotation.key_rotation_enable(ctx=ctx, key_id=str(tagged_key.key_id)),
    )
    key = Key.objects.select_related("account").get(pk=tagged_key.pk)
    key.next_rotation_at = due = timezone.now() - timedelta(minutes=1)
    key.save(update_fields=["next_rotation_at"])
    root_key_file.rotate()
    real, move = Key.mac_fields, reseal_family("row MACs: keys")

    def torn(self: Key) -> tuple[object, ...]:
        move()  # the family commits after the claim read the key, before its children are read
        return real(self)

    monkeypatch.setattr(Key, "mac_fields", torn)
    assert rotation._rotate_if_claimed(
        key.pk, due=due, period_days=key.rotation_period_days, now=timezone.now()
    )
    assert no_alarm(caplog)
    assert KeyMaterial.objects.filter(key=key).count() == 2


def test_status_beside_a_tag_request_does_not_call_a_legitimate_key_tampered(
    root_key_file: RootKeyFile, tagged_key: Key
) -> None:
    """`remaining` scans a page of keys, then their children in another statement, unlocked: a TagResource
    committing between them must not make status (or retire's refusal) report the key as failing."""
    root_key_file.rotate()
    dependent = next(one for one in dependents() if one.name.startswith("row MACs: keys"))
    dependent.reseal(root_keys(), 100)
    state = {"done": False}

    def between(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        children = '"keys_tag"' in sql and "keys_alias" not in sql and sql.lstrip().startswith("SELECT")
        if children and not state["done"]:
            state["done"] = True  # the page of keys was read; a request tags one before its tags are read
            as_operator(
                "TagResource",
                lambda ctx: tags.key_tag(
                    ctx=ctx, key_id=str(tagged_key.key_id), tags=[{"TagKey": "t", "TagValue": "v"}]
                ),
            )
        return execute(sql, params, many, context)

    with connection.execute_wrapper(between):
        left = dependent.remaining(root_keys())
    assert state["done"] and left.count == 0, left.how_they_move
