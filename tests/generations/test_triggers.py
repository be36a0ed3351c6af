"""Every write to what the request path caches bumps its generation scope, whatever wrote it (service, ORM save,
QuerySet.update, bulk_create, cascade, raw SQL), in the writer's own transaction; the triggers are installed after
migrate, are left alone when current, and without them the caches stay off."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from grants.models import Grant
from keys.models import Alias, Key, KeyMaterial, Tag
from kmsconsole.generations import cache, triggers
from kmsconsole.generations.models import Generation
from kmsconsole.generations.scopes import alias_scope, bump, iam_scope, key_scope
from policies.models import AccessKey, Account, IamGroup, IamRole, IamUser, IdentityPolicy, RoleSession
from tests.conftest import as_operator

pytestmark = pytest.mark.django_db

ACCOUNT = settings.KMS_ACCOUNT_ID
POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


def generation(scope: str) -> int:
    row = Generation.objects.filter(scope=scope).first()
    return row.value if row else 0


def bumps(scope: str, write: Callable[[], Any]) -> bool:
    before = generation(scope)
    write()
    return generation(scope) not in (before, 0)


@pytest.fixture
def key(account: Account) -> Key:
    return Key.objects.create(
        account=account, key_spec="SYMMETRIC_DEFAULT", key_usage="ENCRYPT_DECRYPT", policy="{}"
    )


def test_triggers_are_installed_by_migrate_and_left_alone_when_current() -> None:
    assert triggers.triggers_installed("default")
    names = triggers.expected_triggers()
    assert all(name.startswith(triggers.PREFIX) for name in names) and len(names) == 34
    assert triggers.install_triggers("default")  # a no-op that still reports success
    assert triggers.triggers_installed("default")


def test_the_watched_tables_are_the_models_tables() -> None:
    assert {watch.table() for watch in triggers.WATCHES} == {
        Key._meta.db_table,
        Tag._meta.db_table,
        KeyMaterial._meta.db_table,
        Grant._meta.db_table,
        Alias._meta.db_table,
        IamUser._meta.db_table,
        IamRole._meta.db_table,
        IamGroup._meta.db_table,
        AccessKey._meta.db_table,
        RoleSession._meta.db_table,
        IdentityPolicy._meta.db_table,
        IamGroup.members.through._meta.db_table,
    }
    # The trigger SQL names these tables itself.
    assert Account._meta.db_table == "policies_account" and Key._meta.db_table == "keys_key"


def test_key_writes_bump_the_key_scope(key: Key) -> None:
    scope = key_scope(key.key_id)
    assert generation(scope) != 0  # the INSERT
    assert bumps(scope, lambda: Key.objects.filter(pk=key.pk).update(state="Disabled"))
    assert bumps(scope, lambda: Tag.objects.create(key=key, tag_key="env", tag_value="prod"))
    assert bumps(scope, lambda: Tag.objects.filter(key=key).update(tag_value="dev"))
    assert bumps(scope, lambda: Tag.objects.filter(key=key).delete())
    material = KeyMaterial(key=key, material_id="a" * 64, sealed=b"x")
    assert bumps(scope, material.save)
    assert bumps(scope, lambda: KeyMaterial.objects.filter(key=key).update(is_current=False))
    grant = {
        "grantee_principal": "arn:aws:iam::111122223333:user/app",
        "operations": ["Encrypt"],
        "parameters_digest": "d",
        "issuing_account": ACCOUNT,
        "created_by": "t",
        "propagate_after": timezone.now(),
    }
    assert bumps(
        scope,
        lambda: Grant.objects.bulk_create([Grant(key=key, grant_id=f"{n:064x}", **grant) for n in range(3)]),
    )
    assert bumps(scope, lambda: Grant.objects.filter(key=key).update(effective_at=timezone.now()))
    assert bumps(scope, lambda: Grant.objects.filter(key=key, grant_id=f"{1:064x}").delete())
    assert bumps(scope, lambda: Key.objects.filter(pk=key.pk).delete())  # cascades to grants, tags, materials


def test_alias_writes_bump_the_account_alias_scope(key: Key, account: Account) -> None:
    scope = alias_scope(ACCOUNT)
    assert bumps(scope, lambda: Alias.objects.create(account=account, name="alias/app", key=key))
    assert bumps(scope, lambda: Alias.objects.filter(name="alias/app").update(name="alias/other"))
    assert bumps(scope, lambda: Alias.objects.filter(name="alias/other").delete())


def test_principal_writes_bump_the_account_iam_scope(account: Account) -> None:
    scope = iam_scope(ACCOUNT)
    user = IamUser(account=account, name="u", unique_id="AIDAUSER0000000000001")
    assert bumps(scope, user.save)
    group = IamGroup(account=account, name="g", unique_id="AGPAGROUP000000000001")
    assert bumps(scope, group.save)
    assert bumps(scope, lambda: group.members.add(user))
    assert bumps(scope, lambda: user.groups.remove(group))
    assert bumps(scope, lambda: IdentityPolicy.objects.create(group=group, name="p", document=POLICY))
    assert bumps(scope, lambda: IdentityPolicy.objects.filter(group=group).update(document="{}"))
    assert bumps(scope, lambda: IdentityPolicy.objects.filter(group=group).delete())
    role = IamRole(account=account, name="r", unique_id="AROAROLE0000000000001")
    assert bumps(scope, role.save)
    session = RoleSession.objects.create(
        role=role, session_name="s", session_token_digest="d", expires_at=timezone.now()
    )
    key = AccessKey.objects.create(access_key_id="AKIAEXAMPLE000000001", account=account, kind="user",
                                   user=user, secret_sealed=b"x")  # fmt: skip
    assert bumps(scope, lambda: AccessKey.objects.filter(pk=key.pk).update(status="Inactive"))
    assert bumps(scope, lambda: AccessKey.objects.filter(pk=key.pk).delete())
    assert bumps(scope, lambda: RoleSession.objects.filter(pk=session.pk).delete())
    assert bumps(scope, lambda: IamRole.objects.filter(pk=role.pk).delete())
    assert bumps(scope, lambda: IamUser.objects.filter(pk=user.pk).delete())


def test_a_new_access_key_or_session_bumps_nothing(account: Account) -> None:
    """Nothing can be cached for a key or session that did not exist: AssumeRole does not empty the caches."""
    user = IamUser.objects.create(account=account, name="u", unique_id="AIDAUSER0000000000002")
    before = generation(iam_scope(ACCOUNT))
    AccessKey.objects.create(access_key_id="AKIAEXAMPLE000000002", account=account, kind="user", user=user,
                             secret_sealed=b"x")  # fmt: skip
    assert generation(iam_scope(ACCOUNT)) == before


def test_raw_sql_bumps_too(key: Key) -> None:
    with connection.cursor() as cursor:
        before = generation(key_scope(key.key_id))
        cursor.execute(f"UPDATE {Key._meta.db_table} SET description = 'x' WHERE id = %s", [key.pk])  # noqa: S608
    assert generation(key_scope(key.key_id)) != before


def test_a_rolled_back_write_leaves_the_generation_as_it_was(key: Key) -> None:
    before = generation(key_scope(key.key_id))
    with pytest.raises(RuntimeError), transaction.atomic():
        Key.objects.filter(pk=key.pk).update(state="Disabled")
        raise RuntimeError
    assert generation(key_scope(key.key_id)) == before


def test_a_service_write_bumps_in_its_own_transaction(account: Account) -> None:
    from policies import services

    scope = iam_scope(ACCOUNT)
    before = generation(scope)
    as_operator("iam:CreateUser", lambda ctx: services.user_create(ctx=ctx, account=account, user_name="svc"))
    assert generation(scope) != before


def test_bump_from_python() -> None:
    before = generation("iam:000000000000")
    bump("iam:000000000000", "iam:000000000000")
    assert generation("iam:000000000000") not in (0, before)


@pytest.fixture
def triggers_dropped() -> Iterator[None]:
    """One trigger missing, as after restoring a dump taken without them."""
    name = sorted(triggers.expected_triggers())[0]
    table = next(w.table() for w in triggers.WATCHES if any(name == triggers._name(w, e) for e in w.events))
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER {name}{' ON ' + table if connection.vendor == 'postgresql' else ''}")
    cache._enabled.clear()
    yield
    triggers.install_triggers("default")
    cache._enabled.clear()


def test_without_the_triggers_nothing_is_cached(triggers_dropped: None) -> None:
    assert not triggers.triggers_installed("default")
    with cache.request_snapshot() as snapshot:
        assert snapshot is None and cache.current_snapshot() is None


@pytest.fixture
def break_trigger() -> Iterator[Callable[[], None]]:
    """Drop (PostgreSQL: disable) the keys table's update trigger under a process that has already checked them,
    as an operator with database access could; the triggers are reinstalled afterwards."""
    watch = next(w for w in triggers.WATCHES if w.label == "keys.Key")
    name = triggers._name(watch, "UPDATE")

    def settle() -> None:
        # PostgreSQL refuses DDL on a table with deferred constraint checks pending in the test's transaction.
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    def breaks() -> None:
        settle()
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"ALTER TABLE {watch.table()} DISABLE TRIGGER {name}")
            else:
                cursor.execute(f"DROP TRIGGER {name}")

    cache._enabled.clear()
    yield breaks
    settle()
    triggers.install_triggers("default")
    cache._enabled.clear()


def test_a_running_process_notices_a_trigger_broken_after_it_checked(
    key: Key, break_trigger: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    scope = key_scope(key.key_id)
    probe: cache.GenerationalCache[str, str] = cache.GenerationalCache("probe", 4)
    with cache.request_snapshot() as snapshot:
        assert snapshot is not None
        probe.put("entry", "cached", [(scope, snapshot.value(scope))])
    with cache.request_snapshot() as snapshot:
        assert snapshot is not None and probe.get("entry", snapshot) == "cached"
    break_trigger()
    Key.objects.filter(pk=key.pk).update(description="changed, bumping nothing")
    # The process checked the triggers when it started; its next snapshot read counts them again.
    with cache.request_snapshot() as snapshot:
        assert snapshot is not None and probe.get("entry", snapshot) is None
        assert snapshot.value(scope) < 0  # no entry was or will be built with it
    assert len(probe) == 0 and not cache.caches_enabled()
    with cache.request_snapshot() as snapshot:
        assert snapshot is None  # off until the triggers are back
    triggers.install_triggers("default")
    assert not cache.caches_enabled()  # looked for again only every RECHECK_SECONDS
    monkeypatch.setattr(cache, "RECHECK_SECONDS", 0.0)
    assert cache.caches_enabled()


def test_reinstalling_the_triggers_bumps_every_generation(
    key: Key, break_trigger: Callable[[], None]
) -> None:
    scopes = [key_scope(key.key_id), iam_scope(ACCOUNT)]
    bump(*scopes)
    before = {scope: generation(scope) for scope in scopes}
    break_trigger()
    assert not triggers.triggers_installed("default")
    triggers.install_triggers("default")
    assert triggers.triggers_installed("default")
    after = {scope: generation(scope) for scope in scopes}
    assert all(after[scope] not in (0, before[scope]) for scope in scopes)
    # Installing current triggers again changes nothing.
    triggers.install_triggers("default")
    assert {scope: generation(scope) for scope in scopes} == after
