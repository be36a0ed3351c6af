"""What the trail keeps of a key's policies and of its destruction (auditor's report M2, M8).

- CreateKey without a policy records the default key policy it applied, so the trail holds every policy a key had.
- An event that set a policy shows it laid out, and the diff against the previous policy of the same key (or the
  same identity policy) that the reader's trail recorded, never read from the key's policy history.
- The worker's DeleteKey records what went with the key (aliases, counts of grants, tags and policy versions, the
  material versions' ids), never material; and the dashboard's key filter finds a destroyed key's events by an
  alias it had, through the alias's history in the trail.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from grants import services as grant_services
from keys.default_policies import default_key_policy
from keys.models import Key, KeyMaterial
from keys.services import deletion, rotation, tags
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.policy_history import DEFAULT_KEY_POLICY
from policies import services
from policies.models import IamUser
from tests.audit.dashboard_support import KEY_1, KEY_2, PARTNER_KEY, append, event_values
from tests.conftest import ALLOW_ALL, Persona, as_operator
from tests.grants.conftest import allow, policy

pytestmark = pytest.mark.django_db

ACCOUNT = settings.KMS_ACCOUNT_ID
TRAIL = "/console/audit/"


def event_page(client: Client, event: AuditEvent) -> str:
    response = client.get(reverse("console:audit-event", kwargs={"event_id": event.event_id}))
    assert response.status_code == 200, response.content
    return html.unescape(response.content.decode())


def create_key(api: APIClient, **body: Any) -> str:
    response = api.post("/api/v1/keys", body, format="json")
    assert response.status_code == 201, response.content
    return str(Key.objects.latest("pk").key_id)


def latest(operation: str) -> AuditEvent:
    event = AuditEvent.objects.filter(operation=operation).order_by("-seq").first()
    assert event is not None
    return event


def policy_with(sid: str) -> str:
    root = f"arn:aws:iam::{ACCOUNT}:root"
    return policy(allow(root, "kms:*", sid="Enable IAM policies"), allow(root, "kms:Encrypt", sid=sid))


# M8: the policy history in the trail.


def test_createkey_without_a_policy_records_the_default_one_it_applied(admin_api: APIClient) -> None:
    create_key(admin_api, description="plain")
    event = latest("CreateKey")
    assert event.response_elements[DEFAULT_KEY_POLICY] == default_key_policy(ACCOUNT)
    create_key(admin_api, description="given", policy=policy_with("Given"))
    assert DEFAULT_KEY_POLICY not in (latest("CreateKey").response_elements or {})


def test_a_putkeypolicy_event_shows_its_document_laid_out_and_the_diff_against_the_trails_previous_one(
    admin_api: APIClient, console: Callable[..., Client], admin: Persona
) -> None:
    key_id = create_key(admin_api, description="watched")
    created = latest("CreateKey")
    browser = console(admin)
    first = event_page(browser, created)
    assert "The default key policy, applied because the request gave none." in first
    assert '"Sid": "Enable IAM User Permissions"' in first  # laid out: one member a line, indented
    assert "No earlier policy of this key is recorded" in first

    answer = admin_api.put(f"/api/v1/keys/{key_id}/policy", {"policy": policy_with("First")}, format="json")
    assert answer.status_code == 200, answer.content
    admin_api.put(f"/api/v1/keys/{key_id}/policy", {"policy": policy_with("Second")}, format="json")
    put = latest("PutKeyPolicy")
    page = event_page(browser, put)
    assert '      "Sid": "Second",' in page  # indented JSON, not one escaped line
    assert '-      "Sid": "First",' in page and '+      "Sid": "Second",' in page
    previous = AuditEvent.objects.filter(operation="PutKeyPolicy").order_by("seq").first()
    assert previous is not None and f"PutKeyPolicy #{previous.seq}" in page
    assert reverse("console:audit-event", kwargs={"event_id": previous.event_id}) in page
    # The first PutKeyPolicy is compared with CreateKey's default policy.
    assert '-      "Sid": "Enable IAM User Permissions",' in event_page(browser, previous)


def test_an_identity_policy_event_is_compared_with_the_same_policys_previous_event(
    console: Callable[..., Client], admin: Persona, make_user: Callable[..., Persona]
) -> None:
    make_user("carol")
    carol = IamUser.objects.get(name="carol")
    narrower = ALLOW_ALL.replace('"*"', '"kms:*"', 1)
    # The REST API's parameters (no account), another policy of hers, then the console's (the account named).
    for name, document, where in (
        ("ops", ALLOW_ALL, {}),
        ("other", narrower, {}),
        ("ops", narrower, {"AccountId": ACCOUNT}),
    ):
        as_operator(
            "iam:PutUserPolicy",
            lambda ctx, n=name, d=document: services.identity_policy_put(
                ctx=ctx, owner=carol, policy_name=n, document=d
            ),
            UserName="carol",
            PolicyName=name,
            PolicyDocument=document,
            **where,
        )
    first, other, last = AuditEvent.objects.filter(
        operation="iam:PutUserPolicy", request_parameters__UserName="carol"
    ).order_by("seq")
    page = event_page(console(admin), last)
    assert "The previous version of this policy in the trail" in page
    assert f"iam:PutUserPolicy #{first.seq}" in page and f"#{other.seq}" not in page
    assert '+      "Action": "kms:*",' in page


# M2: what went with a destroyed key, and its alias afterwards.


def test_the_destruction_event_names_what_went_with_the_key_and_its_alias_still_finds_its_events(
    admin_api: APIClient, console: Callable[..., Client], admin: Persona
) -> None:
    key_id = create_key(admin_api, description="doomed")
    arn = f"arn:aws:kms:{settings.KMS_REGION}:{ACCOUNT}:key/{key_id}"
    created = admin_api.post(
        "/api/v1/aliases", {"alias_name": "alias/zed", "target_key_id": key_id}, format="json"
    )
    assert created.status_code == 201, created.content
    as_operator(
        "TagResource",
        lambda ctx: tags.key_tag(ctx=ctx, key_id=key_id, tags=[{"TagKey": "env", "TagValue": "dev"}]),
    )
    as_operator(
        "CreateGrant",
        lambda ctx: grant_services.grant_create(
            ctx=ctx, key_id=key_id, grantee_principal=admin.arn, operations=["Encrypt"]
        ),
    )
    as_operator("RotateKeyOnDemand", lambda ctx: rotation.key_rotate_on_demand(ctx=ctx, key_id=key_id))
    admin_api.put(f"/api/v1/keys/{key_id}/policy", {"policy": policy_with("Before")}, format="json")
    material_ids = list(
        KeyMaterial.objects.filter(key__key_id=key_id)
        .order_by("created_at", "pk")
        .values_list("material_id", flat=True)
    )
    assert len(material_ids) == 2
    scheduled = admin_api.post(
        f"/api/v1/keys/{key_id}/schedule-deletion", {"pending_window_days": 7}, format="json"
    )
    assert scheduled.status_code == 200, scheduled.content
    key = Key.objects.get(key_id=key_id)
    tombstone = deletion.key_destroy(
        key_pk=key.pk, account_id=ACCOUNT, key_arn=arn, now=timezone.now() + timedelta(days=8)
    )
    assert tombstone is not None and tombstone.material_versions_destroyed == 2

    destroyed = latest("DeleteKey")
    assert (destroyed.interface, destroyed.key_arn) == ("worker", arn)
    assert destroyed.response_elements == {
        "KeyId": arn,
        "Aliases": ["alias/zed"],
        "GrantsDeleted": 1,
        "TagsDeleted": 1,
        "PolicyVersionsDeleted": 2,
        "KeyMaterialVersionsDestroyed": 2,
        "KeyMaterialIds": material_ids,
    }

    page = console(admin).get(TRAIL, {"key": "alias/zed", "range": "all"})
    assert page.status_code == 200
    body = html.unescape(page.content.decode())
    assert "There is no alias alias/zed in account 111122223333 now" in body
    assert f"last pointed at {arn}, a key destroyed on {tombstone.deleted_at:%Y-%m-%d %H:%M} UTC" in body
    for operation in ("CreateAlias", "DeleteKey"):
        assert str(latest(operation).event_id) in body
    # An alias the trail never saw still names nothing.
    unknown = html.unescape(
        console(admin).get(TRAIL, {"key": "alias/never", "range": "all"}).content.decode()
    )
    assert "There is no alias alias/never in account 111122223333: no event matches it." in unknown


def test_a_gone_alias_follows_its_last_allowed_update_and_never_another_accounts_key(
    console: Callable[..., Client], admin: Persona
) -> None:
    key_1, key_2 = (arn.rsplit("/", 1)[1] for arn in (KEY_1, KEY_2))

    def pointing(operation: str, target: str, **fields: Any) -> dict[str, Any]:
        return event_values(
            operation=operation,
            request_parameters={"AliasName": "alias/moved", "TargetKeyId": target},
            **fields,
        )

    append(
        [
            pointing("CreateAlias", key_1),
            pointing("UpdateAlias", key_2),
            # Refused: not where the alias went.
            pointing("UpdateAlias", key_1, decision="denied", error_code="AccessDeniedException"),
        ]
    )

    def shown() -> str:
        page = console(admin).get(TRAIL, {"key": "alias/moved", "range": "all"})
        assert page.status_code == 200
        return html.unescape(page.content.decode())

    assert f"last pointed at {KEY_2} (UpdateAlias," in shown()
    # An allowed UpdateAlias naming another account's key (which the service refuses; a forged or old event) is
    # not followed: the filter reads nothing of another account.
    append([pointing("UpdateAlias", PARTNER_KEY)])
    body = shown()
    assert "There is no alias alias/moved in account 111122223333: no event matches it." in body
    assert PARTNER_KEY not in body
