"""`KeyQuestions.describable`: DescribeKey decided for many keys at once, exactly as a real DescribeKey request
decides each (key policy, identity policies, tags and condition values, the caller's grants, row checks), for what
the key lists show; and what it costs per key."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from grants.models import Grant
from grants.services.creation import grant_create
from keys.models import Key
from keys.services import aliases, lifecycle
from keys.services.access import KeyQuestions
from kmsconsole.api.authentication import user_caller
from kmsconsole.audit.recorder import AuditRecord
from kmsconsole.core import errors
from kmsconsole.core.context import RequestMeta
from kmsconsole.operations import OPERATIONS, OperationContext, perform
from policies import engine, services
from policies.authorization import authorize, readable_engine_caller
from policies.models import IamUser
from tests.api.conftest import iam_user, make_key
from tests.conftest import Persona, as_operator
from tests.rows import update_sealed

pytestmark = pytest.mark.django_db

ACCOUNT = "111122223333"


def document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(*actions: str, resource: str = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": list(actions), "Resource": resource, **extra}


ROOT = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}


def key_policy(*statements: dict[str, Any]) -> str:
    return document({"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/admin"},
                     "Action": "kms:*", "Resource": "*"}, *statements)  # fmt: skip


def as_caller(persona: Persona, work: Callable[[OperationContext], Any]) -> Any:
    """`work` inside a ListKeys of the persona (its decision made first, as a list's is)."""
    holder: dict[str, Any] = {}

    def service(ctx: OperationContext) -> dict[str, Any]:
        authorize(ctx, resource="*")
        holder["value"] = work(ctx)
        return {}

    perform(
        "ListKeys",
        caller=user_caller(iam_user(persona.name)),
        meta=RequestMeta(interface="api", source_ip="10.0.0.7", secure_transport=True),
        params={},
        service=service,
    )
    return holder["value"]


def listed(keys: list[Key]) -> list[Key]:
    """The keys as a list reads them: with their account, aliases and tags prefetched."""
    return list(
        Key.objects.filter(pk__in=[key.pk for key in keys])
        .select_related("account")
        .prefetch_related("aliases", "tags")
        .order_by("pk")
    )


def describe_key(persona: Persona, key: Key) -> bool:
    """Whether the persona's DescribeKey request on `key` succeeds: the real operation through `perform()`, in a
    context of its own (from the address the keys' conditions name), audited like any other."""
    try:
        perform(
            "DescribeKey",
            caller=user_caller(iam_user(persona.name)),
            meta=RequestMeta(interface="api", source_ip="10.0.0.7", secure_transport=True),
            params={"KeyId": str(key.key_id)},
            service=lambda ctx: {
                "KeyId": str(lifecycle.key_describe(ctx=ctx, key_id=str(key.key_id)).key_id)
            },
        )
    except errors.KmsError:
        return False
    return True


@pytest.fixture
def reader(make_user: Callable[..., Persona]) -> Persona:
    return make_user("reader")


def give(persona: Persona, *documents: str) -> None:
    """Identity policies for the persona."""
    user = iam_user(persona.name)
    for index, text in enumerate(documents):
        as_operator(
            "iam:PutUserPolicy",
            lambda ctx, t=text, i=index: services.identity_policy_put(
                ctx=ctx, owner=user, policy_name=f"given-{i}", document=t
            ),
        )


@pytest.fixture
def keys(admin: Persona, reader: Persona, settings: Any) -> dict[str, Key]:
    """Keys whose DescribeKey each decides a different way for the persona `reader`."""
    settings.KMS_GRANT_PROPAGATION_SECONDS = 0
    reader_arn = f"arn:aws:iam::{ACCOUNT}:user/reader"
    made = {
        "delegated": make_key("default policy: IAM decides"),
        "admin only": make_key("the key policy names the admin only", policy=key_policy()),
        "named": make_key("the key policy names the reader", policy=key_policy(
            {"Effect": "Allow", "Principal": {"AWS": reader_arn}, "Action": "kms:DescribeKey", "Resource": "*"})),
        "denied": make_key("explicit deny for the reader", policy=key_policy(
            {"Effect": "Allow", "Principal": ROOT, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "Principal": {"AWS": reader_arn}, "Action": "kms:DescribeKey", "Resource": "*"})),
        "tagged": make_key("tag condition, met", tags=[{"TagKey": "team", "TagValue": "blue"}], policy=key_policy(
            {"Effect": "Allow", "Principal": {"AWS": reader_arn}, "Action": "kms:DescribeKey", "Resource": "*",
             "Condition": {"StringEquals": {"aws:ResourceTag/team": "blue"}}})),
        "tag unmet": make_key("tag condition, unmet", policy=key_policy(
            {"Effect": "Allow", "Principal": {"AWS": reader_arn}, "Action": "kms:DescribeKey", "Resource": "*",
             "Condition": {"StringEquals": {"aws:ResourceTag/team": "blue"}}})),
        # kms:ResourceAliases counts in identity policies only (spec 7.6): this key delegates to IAM.
        "aliased": make_key("an alias, for an identity policy's condition"),
        "source ip": make_key("address condition", policy=key_policy(
            {"Effect": "Allow", "Principal": {"AWS": reader_arn}, "Action": "kms:DescribeKey", "Resource": "*",
             "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}})),
        "spec": make_key("spec condition", key_spec="RSA_2048", key_usage="SIGN_VERIFY", policy=key_policy(
            {"Effect": "Allow", "Principal": {"AWS": reader_arn}, "Action": "kms:DescribeKey", "Resource": "*",
             "Condition": {"StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT"}}})),
        "granted": make_key("a grant allows", policy=key_policy()),
        "pending grant": make_key("a grant not yet in effect", policy=key_policy()),
        "tampered": make_key("changed outside the service"),
        "unreadable": make_key("a policy the engine cannot read"),
        "tampered tag": make_key("a tag changed outside the service", tags=[{"TagKey": "a", "TagValue": "1"}]),
    }  # fmt: skip
    as_operator(
        "CreateAlias",
        lambda ctx: aliases.alias_create(
            ctx=ctx, alias_name="alias/blue-one", target_key_id=str(made["aliased"].key_id)
        ),
    )
    for name, operations in (("granted", ["DescribeKey"]), ("pending grant", ["DescribeKey"])):
        as_operator(
            "CreateGrant",
            lambda ctx, k=made[name], o=operations: grant_create(
                ctx=ctx, key_id=str(k.key_id), grantee_principal=reader_arn, operations=o
            ),
        )
    update_sealed(Grant.objects.filter(key=made["pending grant"]), effective_at=None)
    Key.objects.filter(pk=made["tampered"].pk).update(key_usage="SIGN_VERIFY")  # its MAC no longer holds
    update_sealed(
        Key.objects.filter(pk=made["unreadable"].pk),
        policy=document({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/a//b"},
                         "Action": "kms:*", "Resource": "*"}),
    )  # fmt: skip
    made["tampered tag"].tags.update(tag_value="2")
    return made


DIRECTLY = {"named", "tagged", "source ip", "granted"}
DESCRIBE_ANY = document(allow("kms:ListKeys", "kms:DescribeKey"))
DENY_BLUE = {"Effect": "Deny", "Action": "kms:*", "Resource": "*",
             "Condition": {"StringEquals": {"aws:ResourceTag/team": "blue"}}}  # fmt: skip
BLUE_ALIASES = {"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/blue-*"}}


@pytest.mark.parametrize(
    ("policies", "expected"),
    [
        pytest.param((document(allow("kms:ListKeys")),), DIRECTLY, id="ListKeys only"),
        pytest.param((DESCRIBE_ANY,), DIRECTLY | {"delegated", "aliased"}, id="DescribeKey on *"),
        pytest.param(
            (DESCRIBE_ANY, document(DENY_BLUE)),
            (DIRECTLY | {"delegated", "aliased"}) - {"tagged"},
            id="an identity deny on a tag",
        ),
        pytest.param(
            (document(allow("kms:ListKeys"), allow("kms:DescribeKey", Condition=BLUE_ALIASES)),),
            DIRECTLY | {"aliased"},
            id="DescribeKey on keys with an alias",
        ),
    ],
)
def test_describable_decides_each_key_as_describe_key_would(
    reader: Persona, keys: dict[str, Key], policies: tuple[str, ...], expected: set[str]
) -> None:
    give(reader, *policies)
    rows = listed(list(keys.values()))
    by_pk = {key.pk: name for name, key in keys.items()}
    bulk = {by_pk[pk] for pk in as_caller(reader, lambda ctx: KeyQuestions(ctx).describable(rows))}
    # Each key's real DescribeKey, a request of its own (a fresh context: its own read of the identity policies,
    # not the list's `read_once`, so a list deciding on a stale or wrong read would differ).
    requested = {name for name, key in keys.items() if describe_key(reader, key)}
    assert bulk == requested
    assert bulk == expected


def test_a_stale_read_of_the_identity_policies_differs_from_describe_key(
    reader: Persona, keys: dict[str, Key]
) -> None:
    """What the comparison above would catch: a list deciding with another read of the identity policies than
    the caller's current ones (here, the list's read replaced by none) decides differently from DescribeKey."""
    give(reader, DESCRIBE_ANY)
    rows = listed(list(keys.values()))

    def stale(ctx: OperationContext) -> frozenset[int]:
        for read in ctx.read_once:  # the list's read, as if made before the policy was put
            ctx.read_once[read] = []
        return KeyQuestions(ctx).describable(rows)

    requested = {key.pk for key in keys.values() if describe_key(reader, key)}
    assert as_caller(reader, lambda ctx: KeyQuestions(ctx).describable(rows)) == requested
    assert as_caller(reader, stale) != requested


def test_the_operator_may_describe_every_key_and_an_unreadable_caller_none(
    keys: dict[str, Key], make_user: Callable[..., Persona]
) -> None:
    rows = listed(list(keys.values()))

    def decide(ctx: OperationContext) -> frozenset[int]:
        authorize(ctx, resource="*")
        return KeyQuestions(ctx).describable(rows)

    everything = as_operator("ListKeys", decide)
    assert everything == {key.pk for key in rows}
    # A principal whose ARN the engine cannot read (a path stored before the engine's rule, "/a//b/"): every
    # request of its is refused, DescribeKey too, though an identity policy and key policies would allow it.
    allowed = make_user("unreadable", document(allow("kms:*")))
    user = iam_user(allowed.name)
    update_sealed(IamUser.objects.filter(pk=user.pk), path="/a//b/")
    caller = user_caller(iam_user(allowed.name))
    assert caller.arn.endswith(":user/a//b/unreadable") and readable_engine_caller(caller) is None
    context = OperationContext(
        operation=OPERATIONS["ListKeys"],
        caller=caller,
        meta=RequestMeta(interface="api"),
        audit=AuditRecord(operation="ListKeys", meta=RequestMeta(interface="api"), caller=caller),
    )
    assert KeyQuestions(context).describable(rows) == frozenset()
    assert not any(describe_key(allowed, key) for key in keys.values())
    # The same user with a path the engine reads is allowed DescribeKey on the keys that delegate to IAM.
    update_sealed(IamUser.objects.filter(pk=user.pk), path="/")
    assert describe_key(allowed, keys["delegated"])


def test_describable_reads_identity_policies_once_and_grants_in_one_query(
    reader: Persona, keys: dict[str, Key]
) -> None:
    give(reader, document(allow("kms:ListKeys", "kms:DescribeKey")))
    rows = listed(list(keys.values()))

    def decide(ctx: OperationContext) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            KeyQuestions(ctx).describable(rows)
        return [query["sql"] for query in queries.captured_queries]

    queries = as_caller(reader, decide)
    # The list's own decision read the identity policies; the questions reuse them: one query, the grants'. A key
    # that fails its check is read again once (a write may have committed between the list's statements): those
    # queries are paid for the two keys changed outside only, never for a key that passes.
    grants = [query for query in queries if "grants_grant" in query]
    assert len(grants) == 1, queries
    tampered = {keys["tampered"].pk, keys["tampered tag"].pk}
    rereads = [query for query in queries if '"keys_' in query.split("FROM", 1)[-1]]
    assert len(rereads) == 3 * len(tampered), queries
    assert {
        int(query.split("= ", 1)[1].split()[0]) for query in rereads if 'WHERE "keys_key"' in query
    } == tampered
    assert len(queries) <= 1 + 4 * len(tampered), queries


@pytest.mark.benchmark
def test_what_describable_costs_per_key(
    request: pytest.FixtureRequest, make_user: Callable[..., Persona], admin: Persona, settings: Any
) -> None:
    """Per key, on 2,000 keys (a tenth with an alias, a tenth with a tag; two key policy texts, 50 keys allowed only
    by a grant to the caller, 50 refused), fresh rows and an empty compiled-policy cache each round, as a request
    meets them."""
    if "benchmark" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("a benchmark: run with -m benchmark")
    from tests.console.test_keys import seed_keys

    settings.KMS_GRANT_PROPAGATION_SECONDS = 0
    reader = make_user("reader", document(allow("kms:ListKeys", "kms:DescribeKey")))
    seed_keys(2_000)
    sample = list(Key.objects.order_by("pk")[1::10])  # no alias or tag: their MACs stay simple to reseal
    update_sealed(Key.objects.filter(pk__in=[k.pk for k in sample[:100]]), policy=key_policy())
    for key in sample[:50]:
        as_operator(
            "CreateGrant",
            lambda ctx, k=key: grant_create(
                ctx=ctx, key_id=str(k.key_id), grantee_principal=reader.arn, operations=["DescribeKey"]
            ),
        )

    def measure(ctx: OperationContext) -> list[float]:
        per_key = []
        for _ in range(7):
            rows = listed(list(Key.objects.all()))
            engine.clear_policy_cache()
            started = time.perf_counter()
            allowed = KeyQuestions(ctx).describable(rows)
            per_key.append((time.perf_counter() - started) / len(rows) * 1e6)
            assert len(allowed) == len(rows) - 50
        return per_key

    per_key = as_caller(reader, measure)
    print(
        f"\nKeyQuestions.describable on 2,000 keys ({connection.vendor}): median {statistics.median(per_key):.1f} "
        f"µs per key, best {min(per_key):.1f}, worst {max(per_key):.1f} ({len(per_key)} rounds)"
    )
    assert statistics.median(per_key) < 200
