"""A re-seal running beside requests (kmsconsole.core.rootkey_movers): a family moved to the current root key
between a reader's statement for the parent and its statement for the children is read again, not refused
(kmsconsole.core.rowmac.read_consistently), and a row changed outside still fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keys import selectors
from keys.models import Key, Tag
from keys.services import lifecycle, tags
from kmsconsole.core import errors
from kmsconsole.core.rootkey import root_keys
from kmsconsole.core.rootkey_dependents import dependents
from kmsconsole.generations.cache import clear_all, request_snapshot
from policies import selectors as principal_selectors
from policies.models import IdentityPolicy
from policies.selectors import credentials_for, identity_policies_for
from tests.conftest import Persona, RootKeyFile, as_operator

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
