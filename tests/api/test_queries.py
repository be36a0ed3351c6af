"""List endpoints keep a fixed number of queries as their rows grow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from grants import services as grant_services
from keys.default_policies import default_key_policy
from keys.models import Key
from keys.services import aliases, key_policy, tags
from kmsconsole.jobs.models import JobRun
from tests.api.conftest import World, make_key
from tests.conftest import as_operator
from tests.rows import update_sealed

pytestmark = pytest.mark.django_db


def grow(world: World, round_: int) -> None:
    """Add a few rows of every listed kind."""
    for index in range(3):
        name = f"{round_}-{index}"
        key = make_key(f"key {name}", tags=[{"TagKey": "n", "TagValue": name}])
        key_id = str(key.key_id)
        as_operator(
            "CreateAlias",
            lambda ctx, k=key_id, n=name: aliases.alias_create(
                ctx=ctx, alias_name=f"alias/{n}", target_key_id=k
            ),
        )
        as_operator(
            "TagResource",
            lambda ctx, n=name: tags.key_tag(ctx=ctx, key_id=world.key, tags=[{"TagKey": n, "TagValue": n}]),
        )
        as_operator(
            "CreateGrant",
            lambda ctx: grant_services.grant_create(
                ctx=ctx, key_id=world.key, grantee_principal=world.admin_arn, operations=["Encrypt"]
            ),
        )
        as_operator(
            "PutKeyPolicy",
            lambda ctx: key_policy.key_policy_put(
                ctx=ctx, key_id=world.key, policy=default_key_policy("111122223333")
            ),
        )
        JobRun.objects.create(
            job="rotation", started_at=timezone.now(), finished_at=timezone.now(), processed=1
        )


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/keys",
        "/api/v1/keys?search=key&ordering=-created_at",
        "/api/v1/aliases",
        "/api/v1/keys/{key}/tags",
        "/api/v1/keys/{key}/grants",
        "/api/v1/keys/{key}/policy/versions",
        "/api/v1/audit-events",
        "/api/v1/job-runs",
    ],
)
def test_list_queries_do_not_grow_with_rows(
    world: World,
    admin_api: APIClient,
    django_assert_num_queries: Callable[..., Any],
    path: str,
) -> None:
    url = path.replace("{key}", world.key)
    admin_api.get(url)  # warm the per-process caches (compiled policies, subkeys)
    grow(world, 1)
    with CaptureQueriesContext(connection) as first:
        response = admin_api.get(url)
    assert response.status_code == 200
    counted = len(response.json()["results"])
    grow(world, 2)
    with django_assert_num_queries(len(first.captured_queries)):
        response = admin_api.get(url)
    assert len(response.json()["results"]) > counted or "audit" in path


@pytest.mark.django_db
def test_key_search_matches_what_the_list_shows_never_tags(admin_api: APIClient) -> None:
    """ListKeys is IAM-only; a key's tags are for those its key policy allows kms:ListResourceTags. A search that
    matched tags told anyone who may list keys what the tags hold, a character at a time."""
    tagged = make_key(description="ledger", tags=[{"TagKey": "project", "TagValue": "zephyr-secret"}])
    assert [row["key_id"] for row in admin_api.get("/api/v1/keys", {"search": "ledg"}).json()["results"]] == [
        str(tagged.key_id)
    ]
    for query in ("zephyr", "project"):
        assert admin_api.get("/api/v1/keys", {"search": query}).json()["results"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key_spec", "key_usage"),
    [
        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
        ("RSA_2048", "SIGN_VERIFY"),
        ("ECC_NIST_P256", "SIGN_VERIFY"),
        ("ECC_NIST_P256", "KEY_AGREEMENT"),
        ("HMAC_256", "GENERATE_VERIFY_MAC"),
        ("ML_DSA_87", "SIGN_VERIFY"),
        ("ML_KEM_1024", "ENCAPSULATE_DECAPSULATE"),
        ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"),
    ],
)
def test_every_key_spec_is_created_and_described(admin_api: APIClient, key_spec: str, key_usage: str) -> None:
    created = admin_api.post("/api/v1/keys", {"key_spec": key_spec, "key_usage": key_usage}, format="json")
    assert created.status_code == 201, created.content
    described = admin_api.get(f"/api/v1/keys/{created.json()['key_id']}")
    assert described.status_code == 200, described.content
    body = described.json()
    assert (body["key_spec"], body["key_usage"]) == (key_spec, key_usage)
    # The service model: only symmetric encryption keys name their current key material.
    assert ("current_key_material_id" in body) == (key_spec == "SYMMETRIC_DEFAULT")
    if key_usage == "ENCAPSULATE_DECAPSULATE":
        assert body["encapsulation_algorithms"] == ["ML_KEM"] and "signing_algorithms" not in body
    if key_spec.startswith("ML_DSA"):
        assert body["signing_algorithms"] == ["ML_DSA_SHAKE_256"]
    if key_spec == "ECC_NIST_EDWARDS25519":  # both of AWS's: pure Ed25519 and Ed25519ph
        assert body["signing_algorithms"] == ["ED25519_SHA_512", "ED25519_PH_SHA_512"]


@pytest.mark.django_db
def test_ml_kem_512_is_refused_with_its_reason(admin_api: APIClient) -> None:
    refused = admin_api.post(
        "/api/v1/keys", {"key_spec": "ML_KEM_512", "key_usage": "ENCAPSULATE_DECAPSULATE"}, format="json"
    )
    assert refused.status_code == 400, refused.content
    error = refused.json()["error"]
    assert error["code"] == "UnsupportedOperationException"
    assert "ML_KEM_768 and ML_KEM_1024 only" in error["message"]


# IAM lets the lister list keys and read tags; a key policy that names only the admin leaves it out.
LISTER = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": '
    '["kms:ListKeys", "kms:ListResourceTags"], "Resource": "*"}]}'
)


def only_for(principal_arn: str) -> str:
    return (
        '{"Version": "2012-10-17", "Statement": [{"Sid": "One principal", "Effect": "Allow", '
        f'"Principal": {{"AWS": "{principal_arn}"}}, "Action": "kms:*", "Resource": "*"}}]}}'
    )


@pytest.mark.django_db
def test_key_list_shows_tags_only_where_the_key_policy_lets_the_caller_read_them(
    make_user: Callable[..., Any], api_as: Callable[..., APIClient], admin: Any
) -> None:
    """ListKeys is IAM-only; reading a key's tags (kms:ListResourceTags) is the key policy's to decide. The list
    showed every key's tags to anyone who may list keys."""
    lister = make_user("lister", LISTER)
    admin_only = only_for(admin.arn)
    shared = make_key("shared", tags=[{"TagKey": "team", "TagValue": "payments"}])
    closed = make_key("closed", tags=[{"TagKey": "project", "TagValue": "zephyr-secret"}], policy=admin_only)
    untagged_closed = make_key("closed, untagged", policy=admin_only)

    listed = api_as(lister).get("/api/v1/keys")
    assert listed.status_code == 200, listed.content
    rows = {row["key_id"]: row for row in listed.json()["results"]}
    assert rows[str(shared.key_id)]["tags"] == {"team": "payments"}
    # Refused keys say null whether or not they have tags (an empty {} would tell which have none).
    assert rows[str(closed.key_id)]["tags"] is None
    assert rows[str(untagged_closed.key_id)]["tags"] is None
    assert "zephyr" not in listed.content.decode()
    # The tags endpoint itself refuses the same caller on the same key: the list now agrees with it.
    assert api_as(lister).get(f"/api/v1/keys/{closed.key_id}/tags").status_code == 403

    # Rotation status is GetKeyRotationStatus's to show: the lister's IAM does not allow it.
    assert {row["rotation_enabled"] for row in rows.values()} == {None}

    as_admin = {row["key_id"]: row for row in api_as(admin).get("/api/v1/keys").json()["results"]}
    assert as_admin[str(closed.key_id)]["tags"] == {"project": "zephyr-secret"}
    assert as_admin[str(untagged_closed.key_id)]["tags"] == {}
    assert as_admin[str(shared.key_id)]["rotation_enabled"] is False


@pytest.mark.django_db
def test_a_listed_key_is_decided_on_only_once_its_rows_check(
    make_user: Callable[..., Any], api_as: Callable[..., APIClient], admin: Any, settings: Any
) -> None:
    """A key policy changed outside the service (its row MAC no longer matches) is refused by the tags request
    itself (KMSInternalException); the list, asking the same question of the same rows, shows no tags either,
    and one stored policy the engine cannot read refuses only its own key's tags, not the whole list."""
    lister = make_user("lister", LISTER)
    admin_only = only_for(admin.arn)
    tampered = make_key(
        "tampered", tags=[{"TagKey": "project", "TagValue": "zephyr-secret"}], policy=admin_only
    )
    unreadable = make_key("unreadable", tags=[{"TagKey": "team", "TagValue": "ops"}], policy=admin_only)
    readable = make_key("readable", tags=[{"TagKey": "team", "TagValue": "payments"}])
    Key.objects.filter(pk=tampered.pk).update(policy=default_key_policy(settings.KMS_ACCOUNT_ID))
    update_sealed(  # as an older row would be: a principal path the engine no longer reads
        Key.objects.filter(pk=unreadable.pk),
        policy='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": '
        f'"arn:aws:iam::{settings.KMS_ACCOUNT_ID}:user/a//b/name"}}, "Action": "kms:*", "Resource": "*"}}]}}',
    )

    assert api_as(lister).get(f"/api/v1/keys/{tampered.key_id}/tags").status_code == 500
    listed = api_as(lister).get("/api/v1/keys")
    assert listed.status_code == 200, listed.content
    rows = {row["key_id"]: row["tags"] for row in listed.json()["results"]}
    assert rows == {
        str(tampered.key_id): None,
        str(unreadable.key_id): None,
        str(readable.key_id): {"team": "payments"},
    }
    assert "zephyr" not in listed.content.decode()
