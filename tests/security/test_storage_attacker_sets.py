"""An operator with write access to the database (issue 10, "Storage attacker"), continued: the rows protected
since the first row MACs (aliases, tags, rotation schedules, material versions, key policy history, roles, groups,
integrated-service bindings), the sets a parent's MAC now covers (a user's, group's or role's inline policies, a
user's memberships, a key's aliases and tags), and the grant-token path.

Each test changes or deletes rows outside the service, as the attacker would, then shows that the next request
that relies on them fails closed with KMSInternalException and is audited as failed, instead of being decided on
the changed rows. Deletions matter because they can remove a Deny."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction

from grants import services as grant_services
from grants.models import Grant, IntegratedService
from keys.models import Alias, Key, KeyMaterial, KeyPolicyVersion, Tag
from kmsconsole.audit.models import AuditChainHead, AuditEvent
from kmsconsole.core import errors
from kmsconsole.generations import triggers
from policies import services
from policies.models import Account, IamGroup, IamRole, IamUser, IdentityPolicy
from tests.api.conftest import client_with, token_for
from tests.conftest import ALLOW_ALL, Persona, as_operator
from tests.grants.test_integrated_service import via
from tests.security.test_storage_attacker import INTEGRITY, fails_closed, failure, user_row

pytestmark = pytest.mark.django_db(transaction=True)

EC2 = "ec2.us-east-1.amazonaws.com"


def deny(action: str) -> str:
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": action, "Resource": "*"}]}
    )


def key_policy(*statements: dict[str, Any]) -> str:
    root = {
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{settings.KMS_ACCOUNT_ID}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [root, *statements]})


def last_failed(operation: str) -> None:
    """The latest event of `operation` records the integrity failure."""
    event = AuditEvent.objects.filter(operation=operation).order_by("-seq").first()
    assert event is not None
    assert (event.decision, event.error_code) == ("failed", "KMSInternalException")


def put_policy(owner: IamUser | IamRole | IamGroup, name: str, document: str) -> None:
    as_operator(
        "iam:PutUserPolicy",
        lambda ctx: services.identity_policy_put(ctx=ctx, owner=owner, policy_name=name, document=document),
    )


# Keys: tags, aliases, the rotation schedule, material versions, the policy history.


def test_a_tag_a_deny_matches_edited_or_deleted_fails_closed(
    kms_client: Callable[..., Any], admin: Persona, outsider: Persona
) -> None:
    """The key policy lets the outsider encrypt unless the key is tagged frozen=true: changing or deleting the
    tag in the database would lift that Deny."""
    document = key_policy(
        {
            "Sid": "Use",
            "Effect": "Allow",
            "Principal": {"AWS": outsider.arn},
            "Action": "kms:Encrypt",
            "Resource": "*",
        },
        {
            "Sid": "Frozen",
            "Effect": "Deny",
            "Principal": {"AWS": outsider.arn},
            "Action": "kms:Encrypt",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/frozen": "true"}},
        },
    )
    key_id = kms_client(admin).create_key(Policy=document, Tags=[{"TagKey": "frozen", "TagValue": "true"}])[
        "KeyMetadata"
    ]["KeyId"]
    mallory = kms_client(outsider)
    assert failure(lambda: mallory.encrypt(KeyId=key_id, Plaintext=b"x"))["Code"] == "AccessDeniedException"
    tag = Tag.objects.filter(key__key_id=key_id)
    tag.update(tag_value="false")
    fails_closed(lambda: mallory.encrypt(KeyId=key_id, Plaintext=b"x"))
    last_failed("Encrypt")
    tag.update(tag_value="true")  # the genuine row again (its MAC matches once more)
    assert failure(lambda: mallory.encrypt(KeyId=key_id, Plaintext=b"x"))["Code"] == "AccessDeniedException"
    tag.delete()
    fails_closed(lambda: mallory.encrypt(KeyId=key_id, Plaintext=b"x"))
    fails_closed(lambda: kms_client(admin).describe_key(KeyId=key_id))
    last_failed("DescribeKey")


def test_an_alias_repointed_or_deleted_fails_closed(kms_client: Callable[..., Any], admin: Persona) -> None:
    kms = kms_client(admin)
    first = kms.create_key()["KeyMetadata"]["KeyId"]
    second = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/app", TargetKeyId=first)
    assert kms.encrypt(KeyId="alias/app", Plaintext=b"x")["KeyId"].endswith(first)
    alias = Alias.objects.filter(name="alias/app")
    alias.update(key=Key.objects.get(key_id=second))  # the name now sends callers to another key
    fails_closed(lambda: kms.encrypt(KeyId="alias/app", Plaintext=b"x"))
    last_failed("Encrypt")
    fails_closed(lambda: kms.encrypt(KeyId=second, Plaintext=b"x"))  # its MAC does not cover that alias
    alias.update(key=Key.objects.get(key_id=first))
    assert kms.encrypt(KeyId="alias/app", Plaintext=b"x")["KeyId"].endswith(first)
    # A Deny on kms:ResourceAliases stops matching when the alias is gone: the key's MAC covers its aliases.
    alias.delete()
    fails_closed(lambda: kms.encrypt(KeyId=first, Plaintext=b"x"))
    kms.encrypt(KeyId=second, Plaintext=b"x")  # the other key is untouched


def test_a_rotation_schedule_changed_fails_closed(kms_client: Callable[..., Any], admin: Persona) -> None:
    kms = kms_client(admin)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    schedule = Key.objects.filter(key_id=key_id)
    due = schedule.get().next_rotation_at
    # Postponing the next rotation for a century, or quietly turning rotation off: the key would keep
    # encrypting under aging material.
    schedule.update(next_rotation_at=due.replace(year=due.year + 100))
    fails_closed(lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x"))
    last_failed("Encrypt")
    schedule.update(next_rotation_at=due)
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    schedule.update(rotation_enabled=False, rotation_period_days=None, next_rotation_at=None)
    fails_closed(lambda: kms.get_key_rotation_status(KeyId=key_id))
    last_failed("GetKeyRotationStatus")


def test_an_older_material_version_made_current_fails_closed(
    kms_client: Callable[..., Any], admin: Persona
) -> None:
    kms = kms_client(admin)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.rotate_key_on_demand(KeyId=key_id)
    old, new = KeyMaterial.objects.filter(key__key_id=key_id).order_by("pk")
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    KeyMaterial.objects.filter(pk=new.pk).update(is_current=False)
    KeyMaterial.objects.filter(pk=old.pk).update(is_current=True)
    fails_closed(lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x"))
    last_failed("Encrypt")
    fails_closed(lambda: kms.decrypt(CiphertextBlob=blob))  # the version the blob names fails its check too


def test_a_policy_version_edited_then_restored_fails_closed(
    kms_client: Callable[..., Any], account: Account, admin: Persona, outsider: Persona
) -> None:
    kms = kms_client(admin)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=key_policy())
    opened = key_policy(
        {"Effect": "Allow", "Principal": {"AWS": outsider.arn}, "Action": "kms:*", "Resource": "*"}
    )
    KeyPolicyVersion.objects.filter(key__key_id=key_id, version=1).update(document=opened)
    api = client_with(token_for(account, admin.name))
    response = api.post(f"/api/v1/keys/{key_id}/policy/versions/1/restore", {}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (500, "KMSInternalException")
    assert outsider.arn not in Key.objects.get(key_id=key_id).policy
    last_failed("PutKeyPolicy")


# Principals: deleted Deny policies and memberships, roles, integrated services.


def test_a_deny_policy_deleted_from_a_user_fails_closed(
    kms_client: Callable[..., Any], make_user: Callable[..., Persona]
) -> None:
    bob = make_user("bob", ALLOW_ALL, deny("kms:CreateKey"))
    kms = kms_client(bob)
    assert failure(lambda: kms.create_key())["Code"] == "AccessDeniedException"
    IdentityPolicy.objects.filter(user=user_row(bob), name="policy-1").delete()
    fails_closed(lambda: kms.create_key())
    last_failed("CreateKey")
    fails_closed(lambda: kms.generate_random(NumberOfBytes=8))
    assert not Key.objects.exists()


def test_a_groups_deny_policy_or_a_membership_deleted_fails_closed(
    kms_client: Callable[..., Any], account: Account, make_user: Callable[..., Persona]
) -> None:
    """Two users each in a group that denies CreateKey: one group's Deny policy row is deleted (the group's MAC
    covers its policies), and the other user's membership row (the user's MAC covers its groups)."""
    people = {name: make_user(name, ALLOW_ALL) for name in ("carol", "dave")}
    for name in people:
        group = as_operator(
            "iam:CreateGroup",
            lambda ctx, n=name: services.group_create(ctx=ctx, account=account, group_name=n),
        )
        put_policy(group, "frozen", deny("kms:CreateKey"))
        as_operator(
            "iam:AddUserToGroup",
            lambda ctx, n=name: services.group_add_user(ctx=ctx, account=account, group_name=n, user_name=n),
        )
    carol, dave = (kms_client(people[name]) for name in ("carol", "dave"))
    for kms in (carol, dave):
        assert failure(lambda kms=kms: kms.create_key())["Code"] == "AccessDeniedException"
    IdentityPolicy.objects.filter(group__name="carol").delete()
    fails_closed(lambda: carol.create_key())
    IamGroup.members.through.objects.filter(iamuser=user_row(people["dave"])).delete()
    fails_closed(lambda: dave.create_key())
    last_failed("CreateKey")
    assert not Key.objects.exists()


def test_a_roles_deny_deleted_or_its_session_limit_raised_fails_closed(
    kms_client: Callable[..., Any], account: Account, role_session: Callable[..., Persona]
) -> None:
    session = role_session("app", ALLOW_ALL, deny("kms:CreateKey"))
    kms = kms_client(session)
    assert failure(lambda: kms.create_key())["Code"] == "AccessDeniedException"
    IdentityPolicy.objects.filter(role__name="app", name="policy-1").delete()
    fails_closed(lambda: kms.create_key())
    last_failed("CreateKey")
    IamRole.objects.filter(name="app").update(max_session_seconds=12 * 3600)
    with pytest.raises(errors.KMSInternalException, match=INTEGRITY):
        as_operator(
            "sts:AssumeRole",
            lambda ctx: services.role_assume(
                ctx=ctx, account=account, role_name="app", session_name="long", duration_seconds=12 * 3600
            ),
        )
    last_failed("sts:AssumeRole")


def test_a_principal_bound_to_an_integrated_service_in_the_database_fails_closed(
    kms_client: Callable[..., Any], admin: Persona, outsider: Persona, make_user: Callable[..., Persona]
) -> None:
    service_user = make_user("ec2-service")
    as_operator(
        "kmsconsole:RegisterIntegratedService",
        lambda ctx: grant_services.integrated_service_register(
            ctx=ctx, name=EC2, principals=[service_user.arn]
        ),
    )
    key_id = kms_client(admin).create_key()["KeyMetadata"]["KeyId"]
    mallory = via(kms_client(outsider), EC2)
    assert failure(lambda: mallory.encrypt(KeyId=key_id, Plaintext=b"x"))["Code"] == "AccessDeniedException"
    IntegratedService.objects.filter(name=EC2).update(principals=[service_user.arn, outsider.arn])
    fails_closed(lambda: mallory.encrypt(KeyId=key_id, Plaintext=b"x"))
    last_failed("Encrypt")


# Grant tokens: the grant a token names is checked even when it is not among the caller's loaded grants.


def test_a_grant_token_for_a_tampered_grant_row_is_refused(
    kms_client: Callable[..., Any], admin: Persona, outsider: Persona, random_user: Persona, settings: Any
) -> None:
    settings.KMS_GRANT_PROPAGATION_SECONDS = 3600  # the grant stays pending: only its token makes it count
    owner = kms_client(admin)
    key_id = owner.create_key()["KeyMetadata"]["KeyId"]
    token = owner.create_grant(KeyId=key_id, GranteePrincipal=outsider.arn, Operations=["Encrypt"])[
        "GrantToken"
    ]
    mallory = kms_client(outsider)
    mallory.encrypt(KeyId=key_id, Plaintext=b"x", GrantTokens=[token])
    assert failure(lambda: mallory.encrypt(KeyId=key_id, Plaintext=b"x"))["Code"] == "AccessDeniedException"
    # Re-pointed to another grantee, the row is no longer among the outsider's grants; its token still names it.
    Grant.objects.filter(key__key_id=key_id).update(grantee_principal=random_user.arn)
    fails_closed(lambda: mallory.encrypt(KeyId=key_id, Plaintext=b"x", GrantTokens=[token]))
    last_failed("Encrypt")
    fails_closed(lambda: kms_client(random_user).encrypt(KeyId=key_id, Plaintext=b"x", GrantTokens=[token]))


# Concurrent service writes of one parent's children: the parent's lock orders them, so no child is left out of
# the parent's MAC (which would fail the next request closed).


def test_concurrent_policy_puts_on_one_user_keep_its_mac_whole(
    kms_client: Callable[..., Any], make_user: Callable[..., Persona]
) -> None:
    """The racers are held at their audit write (the chain head is locked meanwhile), after each has put its
    policy and computed the user's MAC: without the user's row lock each MAC would cover its own policy only.
    The generation triggers would serialize the racers too (each bumps the account's row); an operator can drop
    them, so the MAC must not depend on them: they are dropped here."""
    bob = make_user("bob")
    owner = user_row(bob)
    racers = 8
    started = threading.Barrier(racers + 1)

    def put(index: int) -> None:
        started.wait()
        try:
            put_policy(owner, f"p{index}", ALLOW_ALL)
        finally:
            connection.close()

    with connection.cursor() as cursor:
        for trigger, table in triggers._present(connection).items():
            cursor.execute(
                f"DROP TRIGGER {trigger}{' ON ' + table if connection.vendor == 'postgresql' else ''}"
            )
    try:
        with ThreadPoolExecutor(max_workers=racers) as pool, transaction.atomic():
            AuditChainHead.objects.select_for_update().get()
            done = [pool.submit(put, index) for index in range(racers)]
            started.wait()
            time.sleep(
                1
            )  # every racer reaches its lock wait (the user row, or the head with the user row held)
        for future in done:
            future.result()
    finally:
        triggers.install_triggers("default")
    assert IdentityPolicy.objects.filter(user=owner).count() == racers
    IamUser.objects.get(pk=owner.pk).check_row()
    kms_client(bob).create_key()
