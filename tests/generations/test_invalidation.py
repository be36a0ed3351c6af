"""A cache never makes a revoked permission work, and a change is seen at once: for each change the request path
caches something about, a principal uses a key until its server has it cached, the change is made (through the
other web server process, or through another thread, or by this test process), and the very next use, made as
soon as the change returned, sees it.

Both ways are run: `threads` (the live test server in this process: the test asserts the caches were hit, so the
check is not vacuous) and `processes` (two web server processes on the test database: changes through A, uses
through B, which cached before the change).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.conf import settings
from django.db import connection
from django.utils import timezone

from grants import services as grant_services
from keys.models import KeyMaterial
from keys.services import deletion
from kmsconsole.generations import cache, triggers
from kmsconsole.generations.cache import cache_info
from policies import services as iam
from policies.models import AccessKey, Account, IamRole, IamUser
from tests.conftest import ALLOW_ALL, Persona, as_operator
from tests.generations.conftest import Servers

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNT = settings.KMS_ACCOUNT_ID
ROOT = {
    "Sid": "Enable IAM User Permissions",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
    "Action": "kms:*",
    "Resource": "*",
}


def allow(*actions: str, effect: str = "Allow") -> str:
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": effect, "Action": list(actions), "Resource": "*"}]}
    )


def outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except ClientError as error:
        return str(error.response["Error"]["Code"])
    return "ok"


class Scene:
    """An admin, an app principal and a key, with clients on the servers under test."""

    def __init__(self, servers: Servers, admin: Persona, app: Persona) -> None:
        self.servers, self.admin_persona, self.app_persona = servers, admin, app
        self.admin = servers.admin(admin)
        self.app = servers.user(app)
        self.key = self.admin.create_key()["KeyMetadata"]["KeyId"]

    def encrypt(self, key_id: str | None = None) -> str:
        return outcome(lambda: self.app.encrypt(KeyId=key_id or self.key, Plaintext=b"secret"))

    def cached(self, expected: str, use: Callable[[], str] | None = None) -> None:
        """Use until the user's server has cached what the use reads (and check the answer)."""
        use = use or self.encrypt
        before = cache_info()["keys"]["hits"] + cache_info()["credentials"]["hits"]
        for _ in range(3):
            assert use() == expected
        if self.servers.kind == "threads":
            assert cache_info()["keys"]["hits"] + cache_info()["credentials"]["hits"] > before


@pytest.fixture
def scene(servers: Servers, make_user: Callable[..., Persona]) -> Callable[..., Scene]:
    admin = make_user("admin", ALLOW_ALL)

    def make(*policies: str, name: str = "app") -> Scene:
        return Scene(servers, admin, make_user(name, *policies))

    return make


def test_disable_and_enable(scene: Callable[..., Scene]) -> None:
    s = scene(allow("kms:Encrypt"))
    s.cached("ok")
    s.admin.disable_key(KeyId=s.key)
    assert s.encrypt() == "DisabledException"
    s.cached("DisabledException")
    s.admin.enable_key(KeyId=s.key)
    assert s.encrypt() == "ok"


def test_deletion_scheduled_cancelled_and_done(scene: Callable[..., Scene]) -> None:
    s = scene(allow("kms:Encrypt"))
    s.cached("ok")
    s.admin.schedule_key_deletion(KeyId=s.key, PendingWindowInDays=7)
    assert s.encrypt() == "KMSInvalidStateException"
    s.cached("KMSInvalidStateException")
    s.admin.cancel_key_deletion(KeyId=s.key)
    assert s.encrypt() == "DisabledException"  # a cancelled deletion leaves the key Disabled, as on AWS
    s.admin.enable_key(KeyId=s.key)
    s.cached("ok")
    s.admin.schedule_key_deletion(KeyId=s.key, PendingWindowInDays=7)
    s.cached("KMSInvalidStateException")
    assert deletion.keys_destroy_due(now=timezone.now() + timedelta(days=8)).processed == 1
    assert s.encrypt() == "NotFoundException"


def test_key_policy_change(scene: Callable[..., Scene]) -> None:
    s = scene(allow("kms:Encrypt"))
    s.cached("ok")
    only_admin = {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": s.admin_persona.arn}, "Action": "kms:*",
                  "Resource": "*"}  # fmt: skip
    s.admin.put_key_policy(
        KeyId=s.key, Policy=json.dumps({"Version": "2012-10-17", "Statement": [only_admin]})
    )
    assert s.encrypt() == "AccessDeniedException"


def test_grant_created_revoked_and_retired(scene: Callable[..., Scene]) -> None:
    s = scene()  # no identity policy: only a grant can let the app use the key
    s.cached("AccessDeniedException")
    grant = s.admin.create_grant(KeyId=s.key, GranteePrincipal=s.app_persona.arn, Operations=["Encrypt"])
    assert s.encrypt() == "ok"
    s.cached("ok")
    s.admin.revoke_grant(KeyId=s.key, GrantId=grant["GrantId"])
    assert s.encrypt() == "AccessDeniedException"
    grant = s.admin.create_grant(
        KeyId=s.key, GranteePrincipal=s.app_persona.arn, Operations=["Encrypt"],
        RetiringPrincipal=s.admin_persona.arn,
    )  # fmt: skip
    s.cached("ok")
    s.admin.retire_grant(KeyId=s.key, GrantId=grant["GrantId"])
    assert s.encrypt() == "AccessDeniedException"


def test_grant_propagation(scene: Callable[..., Scene], settings: Any) -> None:
    s = scene()
    settings.KMS_GRANT_PROPAGATION_SECONDS = 60  # made here, in this process: in effect only once propagated
    arn = s.admin.describe_key(KeyId=s.key)["KeyMetadata"]["Arn"]
    created = as_operator(
        "CreateGrant",
        lambda ctx: grant_services.grant_create(
            ctx=ctx, key_id=arn, grantee_principal=s.app_persona.arn, operations=["Encrypt"]
        ),
    )
    grant_id = created.grant.grant_id
    s.cached("AccessDeniedException")
    assert grant_services.grant_propagate(grant_id=grant_id, now=timezone.now() + timedelta(seconds=61))
    assert s.encrypt() == "ok"


def test_alias_moved_and_deleted(scene: Callable[..., Scene]) -> None:
    s = scene(allow("kms:Encrypt"))
    other = s.admin.create_key()["KeyMetadata"]
    s.admin.create_alias(AliasName="alias/app", TargetKeyId=s.key)

    def key_used() -> str:
        try:
            return str(s.app.encrypt(KeyId="alias/app", Plaintext=b"x")["KeyId"]).rsplit("/", 1)[1]
        except ClientError as error:
            return str(error.response["Error"]["Code"])

    s.cached(s.key, key_used)
    s.admin.update_alias(AliasName="alias/app", TargetKeyId=other["KeyId"])
    assert key_used() == other["KeyId"]
    s.cached(other["KeyId"], key_used)
    s.admin.delete_alias(AliasName="alias/app")
    assert key_used() == "NotFoundException"


def test_tag_change(scene: Callable[..., Scene]) -> None:
    s = scene()
    tagged = {"Sid": "Tagged", "Effect": "Allow", "Principal": {"AWS": s.app_persona.arn}, "Action": "kms:Encrypt",
              "Resource": "*", "Condition": {"StringEquals": {"aws:ResourceTag/env": "prod"}}}  # fmt: skip
    s.admin.put_key_policy(
        KeyId=s.key, Policy=json.dumps({"Version": "2012-10-17", "Statement": [ROOT, tagged]})
    )
    s.cached("AccessDeniedException")
    s.admin.tag_resource(KeyId=s.key, Tags=[{"TagKey": "env", "TagValue": "prod"}])
    assert s.encrypt() == "ok"
    s.cached("ok")
    s.admin.tag_resource(KeyId=s.key, Tags=[{"TagKey": "env", "TagValue": "dev"}])
    assert s.encrypt() == "AccessDeniedException"
    s.admin.tag_resource(KeyId=s.key, Tags=[{"TagKey": "env", "TagValue": "prod"}])
    s.cached("ok")
    s.admin.untag_resource(KeyId=s.key, TagKeys=["env"])
    assert s.encrypt() == "AccessDeniedException"


def test_identity_policy_put_and_deleted(scene: Callable[..., Scene]) -> None:
    s = scene(allow("kms:Encrypt"))
    user = IamUser.objects.get(name="app")
    s.cached("ok")
    as_operator(
        "iam:PutUserPolicy",
        lambda ctx: iam.identity_policy_put(
            ctx=ctx, owner=user, policy_name="deny", document=allow("kms:Encrypt", effect="Deny")
        ),
    )
    assert s.encrypt() == "AccessDeniedException"
    account = Account.objects.get(account_id=ACCOUNT)
    for name in ("deny", "policy-0"):
        as_operator(
            "iam:DeleteUserPolicy",
            lambda ctx, name=name: iam.identity_policy_delete(
                ctx=ctx, account=account, kind="user", owner_name="app", policy_name=name
            ),
        )
    assert s.encrypt() == "AccessDeniedException"  # nothing allows it any more
    as_operator(
        "iam:PutUserPolicy",
        lambda ctx: iam.identity_policy_put(
            ctx=ctx, owner=user, policy_name="again", document=allow("kms:Encrypt")
        ),
    )
    assert s.encrypt() == "ok"


def test_group_membership(scene: Callable[..., Scene]) -> None:
    s = scene()
    account = Account.objects.get(account_id=ACCOUNT)
    group = as_operator(
        "iam:CreateGroup", lambda ctx: iam.group_create(ctx=ctx, account=account, group_name="crypto")
    )
    as_operator(
        "iam:PutGroupPolicy",
        lambda ctx: iam.identity_policy_put(
            ctx=ctx, owner=group, policy_name="use", document=allow("kms:Encrypt")
        ),
    )
    s.cached("AccessDeniedException")
    as_operator(
        "iam:AddUserToGroup",
        lambda ctx: iam.group_add_user(ctx=ctx, account=account, group_name="crypto", user_name="app"),
    )
    assert s.encrypt() == "ok"
    s.cached("ok")
    as_operator(
        "iam:RemoveUserFromGroup",
        lambda ctx: iam.group_remove_user(ctx=ctx, account=account, group_name="crypto", user_name="app"),
    )
    assert s.encrypt() == "AccessDeniedException"


def test_access_key_deactivated_and_deleted(scene: Callable[..., Scene]) -> None:
    s = scene(allow("kms:Encrypt"))
    account = Account.objects.get(account_id=ACCOUNT)
    key_id = s.app_persona.access_key_id
    s.cached("ok")
    as_operator(
        "iam:UpdateAccessKey",
        lambda ctx: iam.access_key_set_status(
            ctx=ctx, account=account, access_key_id=key_id, status="Inactive"
        ),
    )
    # An inactive key is never cached: nothing to warm up here.
    assert s.encrypt() == "UnrecognizedClientException"
    as_operator(
        "iam:UpdateAccessKey",
        lambda ctx: iam.access_key_set_status(
            ctx=ctx, account=account, access_key_id=key_id, status="Active"
        ),
    )
    s.cached("ok")
    as_operator(
        "iam:DeleteAccessKey",
        lambda ctx: iam.access_key_delete(ctx=ctx, account=account, access_key_id=key_id),
    )
    assert s.encrypt() == "UnrecognizedClientException"


def test_user_deleted(scene: Callable[..., Scene]) -> None:
    s = scene(allow("kms:Encrypt"))
    s.cached("ok")
    IamUser.objects.filter(name="app").delete()  # no service deletes users yet: the trigger sees the ORM too
    assert s.encrypt() == "UnrecognizedClientException"


def test_role_deleted(
    servers: Servers, make_user: Callable[..., Persona], role_session: Callable[..., Persona]
) -> None:
    admin = make_user("admin", ALLOW_ALL)
    session = role_session("app-role", allow("kms:Encrypt"))
    s = Scene(servers, admin, session)
    s.cached("ok")
    IamRole.objects.filter(name="app-role").delete()
    assert s.encrypt() == "UnrecognizedClientException"


def test_rotation(scene: Callable[..., Scene]) -> None:
    s = scene(allow("kms:Encrypt", "kms:Decrypt"))

    def material_used() -> str:
        blob = s.app.encrypt(KeyId=s.key, Plaintext=b"secret")["CiphertextBlob"]
        return str(s.app.decrypt(KeyId=s.key, CiphertextBlob=blob)["KeyMaterialId"])

    first = KeyMaterial.objects.get(key__key_id=s.key).material_id
    s.cached(first, material_used)
    s.admin.rotate_key_on_demand(KeyId=s.key)
    second = KeyMaterial.objects.get(key__key_id=s.key, is_current=True).material_id
    assert second != first and material_used() == second


def test_decrypt_by_ciphertext_header_sees_a_disable(scene: Callable[..., Scene]) -> None:
    """Decrypt without KeyId finds its key through the ciphertext (the other cached lookup)."""
    s = scene(allow("kms:Encrypt", "kms:Decrypt"))
    blob = s.app.encrypt(KeyId=s.key, Plaintext=b"secret")["CiphertextBlob"]
    assert base64.b64encode(blob)  # a real symmetric ciphertext

    def decrypt() -> str:
        return outcome(lambda: s.app.decrypt(CiphertextBlob=blob))

    s.cached("ok", decrypt)
    s.admin.disable_key(KeyId=s.key)
    assert decrypt() == "DisabledException"


def test_the_user_server_really_caches(scene: Callable[..., Scene]) -> None:
    """The other tests would pass without any cache; this one would not: a write whose bump is undone behind the
    servers' backs (the generation set back to its old value) is not seen until its scope is bumped again."""
    from keys.models import Key
    from kmsconsole.generations.models import Generation
    from kmsconsole.generations.scopes import bump, key_scope

    s = scene(allow("kms:Encrypt"))
    s.cached("ok")
    scope = key_scope(Key.objects.get(key_id=s.key).key_id)
    before = Generation.objects.get(scope=scope).value
    s.admin.disable_key(KeyId=s.key)  # through the service: the trigger bumps the key's generation
    assert Generation.objects.filter(scope=scope).update(value=before) == 1
    assert s.encrypt() == "ok"  # served from the cache: nothing told it
    bump(scope)
    assert s.encrypt() == "DisabledException"


@pytest.fixture
def access_key_triggers() -> Iterator[Callable[[], None]]:
    """Drops the access-key table's triggers (as an operator with database access could, or a migration that
    rebuilds the table); every trigger is back afterwards, and this process's caches on."""
    table = AccessKey._meta.db_table
    names = [name for name in triggers.expected_triggers() if f"_{table}_" in name]
    assert len(names) == 2  # update and delete: an insert bumps nothing

    def drop() -> None:
        with connection.cursor() as cursor:
            for name in names:
                on_table = f" ON {table}" if connection.vendor == "postgresql" else ""
                cursor.execute(f"DROP TRIGGER {name}{on_table}")

    cache._enabled.clear()
    yield drop
    triggers.install_triggers("default")
    cache._enabled.clear()


def test_a_server_stops_trusting_its_caches_when_triggers_are_dropped(
    scene: Callable[..., Scene], access_key_triggers: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = scene(allow("kms:Encrypt"))
    account = Account.objects.get(account_id=ACCOUNT)
    key_id = s.app_persona.access_key_id

    def set_status(status: str) -> None:
        as_operator(
            "iam:UpdateAccessKey",
            lambda ctx: iam.access_key_set_status(
                ctx=ctx, account=account, access_key_id=key_id, status=status
            ),
        )

    s.cached("ok")
    access_key_triggers()  # under the running server, which checked the triggers at its first request
    set_status("Inactive")  # bumps nothing now
    assert s.encrypt() == "UnrecognizedClientException"
    # Dropped and reinstalled between two requests: the reinstall bumps every generation.
    triggers.install_triggers("default")
    monkeypatch.setattr(cache, "RECHECK_SECONDS", 0.0)  # the threads server looks for the triggers at once
    set_status("Active")
    s.cached("ok")
    access_key_triggers()
    set_status("Inactive")
    triggers.install_triggers("default")
    assert s.encrypt() == "UnrecognizedClientException"
