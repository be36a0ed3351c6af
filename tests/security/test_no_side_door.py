"""Authorization has no side door (issue 10): every operation of the AWS endpoint and every console and REST API
route, called by a signed-in principal with no permissions at all, gives nothing away, changes nothing, and
every request that reached a service was decided by the engine and written to the audit trail.

The routes are enumerated from Django's URL resolver and the operations from the operation table, so a route
or operation added later is covered without touching this test (an unknown URL parameter fails it loudly).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from grants.models import Grant
from grants.services.creation import grant_create
from keys.models import Alias, Key, KeyPolicyVersion, Tag
from keys.services import aliases, lifecycle, tags
from kmsconsole.api.models import ApiToken
from kmsconsole.audit.models import AuditEvent
from kmsconsole.awskms.model import service_model
from kmsconsole.console.sudo import SUDO_AT
from kmsconsole.operations import OPERATIONS
from policies import services
from policies.models import AccessKey, IamGroup, IamRole, IamUser, IdentityPolicy
from tests.api.conftest import token_for
from tests.conftest import Persona, as_operator
from tests.console.conftest import console_login_for
from tests.security.test_fuzz_kms import send

pytestmark = pytest.mark.django_db

SENTINEL = "SIDE-DOOR-SENTINEL"
SECRET_SID = "VictimOnlySid"
# Routes that are not operations: signing in and out, the sudo password page, health probes, the API's schema
# and documentation pages and its unknown-route 404. They read or change no key, principal or policy.
NOT_OPERATIONS = {
    "login",
    "logout",
    "console:sudo",
    "healthz",
    "readyz",
    "api-schema",
    "api-docs",
    "api-redoc",
    "api-unknown-route",
    "kms-endpoint",  # the AWS endpoint: covered operation by operation below
}


@dataclass(frozen=True)
class World:
    key: Key
    grant_id: str
    event_id: str
    token_id: int
    victim_access_key: str


@pytest.fixture
def world(admin: Persona, account: Any) -> World:
    key = as_operator("CreateKey", lambda ctx: lifecycle.key_create(ctx=ctx, description=SENTINEL))
    key_id = str(key.key_id)
    as_operator(
        "CreateAlias",
        lambda ctx: aliases.alias_create(ctx=ctx, alias_name="alias/sentinel", target_key_id=key_id),
    )
    as_operator(
        "TagResource",
        lambda ctx: tags.key_tag(ctx=ctx, key_id=key_id, tags=[{"TagKey": "owner", "TagValue": SENTINEL}]),
    )
    grant = as_operator(
        "CreateGrant",
        lambda ctx: grant_create(ctx=ctx, key_id=key_id, grantee_principal=admin.arn, operations=["Encrypt"]),
    )
    victim = as_operator(
        "iam:CreateUser", lambda ctx: services.user_create(ctx=ctx, account=account, user_name="victim")
    )
    document = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Sid": SECRET_SID, "Effect": "Allow", "Action": "kms:*", "Resource": "*"}],
        }
    )
    as_operator(
        "iam:PutUserPolicy",
        lambda ctx: services.identity_policy_put(
            ctx=ctx, owner=victim, policy_name="victim-policy", document=document
        ),
    )
    as_operator(
        "iam:CreateGroup", lambda ctx: services.group_create(ctx=ctx, account=account, group_name="crew")
    )
    as_operator(
        "iam:CreateRole", lambda ctx: services.role_create(ctx=ctx, account=account, role_name="robot")
    )
    as_operator(
        "iam:AddUserToGroup",
        lambda ctx: services.group_add_user(ctx=ctx, account=account, group_name="crew", user_name="victim"),
    )
    access_key = as_operator(
        "iam:CreateAccessKey",
        lambda ctx: services.access_key_create(ctx=ctx, account=account, user_name="victim"),
    )
    token_for(account, "admin")
    return World(
        key=key,
        grant_id=grant.grant.grant_id,
        event_id=str(AuditEvent.objects.order_by("seq").first().event_id),  # type: ignore[union-attr]
        token_id=ApiToken.objects.order_by("pk").first().pk,  # type: ignore[union-attr]
        victim_access_key=access_key.access_key_id,
    )


def snapshot() -> dict[str, list[Any]]:
    """Every row an operation could change."""
    return {
        "keys": list(
            Key.objects.order_by("pk").values_list("pk", "state", "description", "policy", "rotation_enabled")
        ),
        "aliases": list(Alias.objects.order_by("pk").values_list("name", "key_id")),
        "tags": list(Tag.objects.order_by("pk").values_list("tag_key", "tag_value")),
        "grants": list(Grant.objects.order_by("pk").values_list("grant_id", "removal_requested_at")),
        "policy versions": list(KeyPolicyVersion.objects.order_by("pk").values_list("pk")),
        "users": list(IamUser.objects.order_by("pk").values_list("name")),
        "roles": list(IamRole.objects.order_by("pk").values_list("name")),
        "groups": list(IamGroup.objects.order_by("pk").values_list("name")),
        "identity policies": list(IdentityPolicy.objects.order_by("pk").values_list("name", "document")),
        "access keys": list(AccessKey.objects.order_by("pk").values_list("access_key_id", "status")),
        "api tokens": list(ApiToken.objects.order_by("pk").values_list("pk", "revoked_at")),
    }


def routes(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = f"{entry.namespace}:" if entry.namespace else namespace
            yield from routes(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), f"{namespace}{entry.name}"


def fill(route: str, world: World) -> str:
    values = {
        "key_id": str(world.key.key_id),
        "grant_id": world.grant_id,
        "event_id": world.event_id,
        "token_id": str(world.token_id),
        "account_id": settings.KMS_ACCOUNT_ID,
        "name": "victim",
        "kind": "users",
        "user_name": "victim",
        "policy_name": "victim-policy",
        "alias_name": "alias/sentinel",
        "access_key_id": world.victim_access_key,
        "version": "1",
    }

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"no test value for the URL parameter <{name}> in {route}: add one"
        return values[name]

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", value, route)


# Pages that only show an empty form and read nothing from the store (their POST is an operation, audited).
FORMS_WITHOUT_DATA: set[tuple[str, str]] = {
    ("get", "console:key-create"),
    ("get", "console:user-create"),
    ("get", "console:role-create"),
    ("get", "console:group-create"),
    ("get", "console:identity-policy-create"),
    ("get", "console:simulator"),
}

FORM = {
    "policy": json.dumps({"Version": "2012-10-17", "Statement": []}),
    "description": "changed",
    "pending_window_days": "7",
    "confirm_key_id": "x",
    "alias_name": "alias/stolen",
    "tag_key": "owner",
    "tag_value": "outsider",
    "password": "x",
}


def gave_nothing(body: str) -> bool:
    return SENTINEL not in body and SECRET_SID not in body


def test_no_console_or_api_route_gives_an_outsider_anything(
    world: World, outsider: Persona, account: Any
) -> None:
    browser = Client()
    browser.force_login(console_login_for(outsider))
    session = browser.session
    session[SUDO_AT] = int(time.time())  # sudo mode open: what stops the outsider must be the engine
    session.save()
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token_for(account, 'outsider')}")
    before = snapshot()
    checked = 0
    unaudited: list[str] = []
    for route, name in routes(get_resolver().url_patterns):
        if name in NOT_OPERATIONS:
            continue
        url = fill(route, world)
        is_api = url.startswith("/api/")
        methods = ("get", "post", "put", "patch", "delete") if is_api else ("get", "post")
        for method in methods:
            events = AuditEvent.objects.count()
            if is_api and method == "get":
                response = api.get(url)
            elif is_api:
                response = getattr(api, method)(url, data=json.dumps(FORM), content_type="application/json")
            else:
                response = getattr(browser, method)(url, data=FORM) if method == "post" else browser.get(url)
            body = b"".join(response) if response.streaming else response.content
            text = body.decode("utf-8", "replace")
            where = f"{method.upper()} {url} ({name}) -> {response.status_code}"
            assert response.status_code < 500, where
            assert gave_nothing(text), f"{where} showed what only an allowed principal may see"
            reached_a_service = 200 <= response.status_code < 300 or response.status_code == 403
            if reached_a_service and (method, name) not in FORMS_WITHOUT_DATA:
                if AuditEvent.objects.count() == events:
                    unaudited.append(where)
                    continue
                decisions = set(AuditEvent.objects.filter(seq__gt=events).values_list("decision", flat=True))
                assert decisions, where
            checked += 1
    assert not unaudited, "answered without an audit event:\n" + "\n".join(unaudited)
    assert snapshot() == before, "a route changed something for a principal with no permissions"
    assert checked > 150  # every console and API route, with each method


def kms_params(operation: str, world: World, ciphertext: str) -> dict[str, Any]:
    """The operation's members, filled with values that would work for an allowed caller."""
    known: dict[str, Any] = {
        "KeyId": str(world.key.key_id),
        "TargetKeyId": str(world.key.key_id),
        "DestinationKeyId": str(world.key.key_id),
        "CiphertextBlob": ciphertext,
        "Plaintext": base64.b64encode(b"a plaintext").decode(),
        "AliasName": "alias/sentinel",
        "GrantId": world.grant_id,
        "GranteePrincipal": "arn:aws:iam::111122223333:user/outsider",
        "Operations": ["Encrypt"],
        "Policy": json.dumps({"Version": "2012-10-17", "Statement": []}),
        "PolicyName": "default",
        "Tags": [{"TagKey": "owner", "TagValue": "outsider"}],
        "TagKeys": ["owner"],
        "Message": base64.b64encode(b"message").decode(),
        "Signature": base64.b64encode(b"s" * 64).decode(),
        "SigningAlgorithm": "RSASSA_PSS_SHA_256",
        "MacAlgorithm": "HMAC_SHA_256",
        "Mac": base64.b64encode(b"m" * 32).decode(),
        "KeyPairSpec": "RSA_2048",
        "NumberOfBytes": 16,
        "PendingWindowInDays": 7,
        "Description": "changed",
        "KeyAgreementAlgorithm": "ECDH",
        "PublicKey": base64.b64encode(b"p" * 91).decode(),
        "EncapsulationAlgorithm": "ML_KEM",
        "SharedSecretCiphertextBlob": base64.b64encode(b"c" * 1088).decode(),
        "RetiringPrincipal": "arn:aws:iam::111122223333:user/outsider",
    }
    shape = service_model().operation_model(operation).input_shape
    required = list(shape.required_members) if shape is not None else []
    missing = [member for member in required if member not in known]
    assert not missing, f"{operation}: no test value for {missing}"
    # The required members, and the optional ones we have values for (some, such as CreateGrant's
    # GranteePrincipal, are optional in the model but needed in practice).
    params = {
        member: known[member] for member in (shape.members if shape is not None else {}) if member in known
    }
    if operation in ("Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "DescribeKey"):
        params.setdefault("KeyId", str(world.key.key_id))
    return params


# Operations this server does not offer answer UnsupportedOperationException before any key is read.
UNSUPPORTED_OK = {"UnsupportedOperationException"}


def test_no_kms_operation_gives_an_outsider_anything(
    world: World, outsider: Persona, admin: Persona, client: Client
) -> None:
    encrypted = send(
        client,
        admin,
        "TrentService.Encrypt",
        json.dumps(
            {"KeyId": str(world.key.key_id), "Plaintext": base64.b64encode(b"x" * 16).decode()}
        ).encode(),
        {},
    )
    ciphertext = json.loads(encrypted.content)["CiphertextBlob"]
    before = snapshot()
    kms_operations = sorted(
        op.name for op in OPERATIONS.values() if op.name in service_model().operation_names
    )
    assert len(kms_operations) > 40
    for operation in kms_operations:
        events = AuditEvent.objects.count()
        response = send(
            client,
            outsider,
            f"TrentService.{operation}",
            json.dumps(kms_params(operation, world, ciphertext)).encode(),
            {},
        )
        text = response.content.decode()
        error = json.loads(text).get("__type") if text else None
        assert gave_nothing(text), operation
        assert error in {"AccessDeniedException", *UNSUPPORTED_OK}, (
            f"{operation}: {response.status_code} {text}"
        )
        event = AuditEvent.objects.filter(seq__gt=events, operation=operation).first()
        assert event is not None, f"{operation} left no audit event"
        if error == "AccessDeniedException":
            assert event.decision == "denied" and event.caller_arn == outsider.arn, operation
    assert snapshot() == before


@pytest.mark.parametrize("operation", ["UpdateKeyDescription", "Encrypt"])
def test_a_service_that_never_asks_the_engine_fails_closed(admin: Persona, operation: str) -> None:
    """perform()'s last line of defence: a service (here, a deliberately broken one) that returns without any
    decision by the engine gets KMSInternalException, its change is undone, and the event says it failed."""
    from kmsconsole.core import errors
    from kmsconsole.core.context import RequestMeta
    from kmsconsole.operations import perform
    from policies.selectors import credentials_for

    key = as_operator("CreateKey", lambda ctx: lifecycle.key_create(ctx=ctx, description="before"))
    credentials = credentials_for(admin.access_key_id)
    assert credentials is not None

    def side_door(ctx: Any) -> dict[str, Any]:
        Key.objects.filter(pk=key.pk).update(description="changed without authorization")
        return {"KeyId": str(key.key_id)}

    with pytest.raises(errors.KMSInternalException):
        perform(
            operation,
            caller=credentials.caller,
            meta=RequestMeta(interface="api"),
            params={"KeyId": str(key.key_id)},
            service=side_door,
        )
    event = AuditEvent.objects.filter(operation=operation).order_by("-seq").first()
    assert event is not None and (event.decision, event.error_code) == ("failed", "KMSInternalException")
    assert event.caller_arn == admin.arn and not event.response_elements
    if operation == "UpdateKeyDescription":  # a change runs in the operation's transaction: undone
        assert Key.objects.get(pk=key.pk).description == "before"
