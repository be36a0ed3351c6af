"""The key page's Tags, Aliases, Grants, Key rotation and Key policy tabs offer a change only where the engine could
allow it (`keys.services.lifecycle.key_actions_allowed`), say which they leave out, and are read-only for a
caller who may only read. Each offer is checked against the request itself: what is offered is allowed, what is
not offered is refused. A form whose values are not typed yet is offered when some values could be allowed
(a tag's, a grant's, an alias name), and hidden when none could (a condition on the caller's address, known
from the page's own request)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from grants.models import Grant
from keys.models import Key
from keys.services import aliases, tags
from keys.services.access import FORM_MAX_FACTS
from kmsconsole.audit.models import AuditEvent
from tests.conftest import Persona, as_operator
from tests.console.conftest import audit_events
from tests.console.key_tab_helpers import make_grant, snapshot, url
from tests.console.test_keys import make_key
from tests.policies.analyzer_support import ACCOUNT, ROOT, allow, identity_policy, user_arn
from tests.policies.analyzer_support import make_key as make_policy_key

pytestmark = pytest.mark.django_db

ELSEWHERE = {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}  # the test client comes from 127.0.0.1


def text(response: Any) -> str:
    return str(response.content.decode())


def statements(*items: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(items)})


def grant_of(*actions: str, resource: str | list[str] = "*", **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": list(actions), "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def tagged_key(**pairs: str) -> Key:
    key = make_key()
    as_operator(
        "TagResource",
        lambda ctx: tags.key_tag(
            ctx=ctx, key_id=str(key.key_id), tags=[{"TagKey": k, "TagValue": v} for k, v in pairs.items()]
        ),
    )
    return key


# ---------------------------------------------------------------------------------------------------------- Tags


def test_tags_a_caller_allowed_every_change_gets_the_form_and_each_remove(
    make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    key = tagged_key(team="ops", cost="42")
    alice = make_user(
        "alice", identity_policy("kms:ListResourceTags", "kms:TagResource", "kms:UntagResource")
    )
    client = console(alice)
    page = text(client.get(url("key-tags", key)))
    assert 'action="/console/keys/' in page and "Save tag" in page
    assert page.count("Remove tag ") == 2 and page.count("Change value") == 2
    assert "not-allowed" not in page
    assert client.post(url("key-tag-put", key), {"tag_key": "env", "tag_value": "prod"}).status_code == 302
    assert client.post(url("key-tag-remove", key), {"tag_key": "cost"}).status_code == 302


def test_tags_a_reader_gets_a_read_only_tab_and_is_refused_anyway(
    make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    key = tagged_key(team="ops")
    reader = make_user("reader", identity_policy("kms:ListResourceTags"))
    client = console(reader)
    page = text(client.get(url("key-tags", key)))
    assert "<code>ops</code>" in page
    assert "Save tag" not in page and "Remove tag" not in page and "Change value" not in page
    assert 'id="tags-read-only"' in page and 'id="tags-none-removable"' not in page
    assert (
        "You can view these tags but not change them: your access does not allow kms:TagResource or "
        "kms:UntagResource on this key." in page
    )
    # Only the action is named: nothing of the policies that decided.
    assert "Statement" not in page and "identity policy" not in page.lower()
    before = snapshot()
    assert client.post(url("key-tag-put", key), {"tag_key": "env", "tag_value": "x"}).status_code == 403
    assert client.post(url("key-tag-remove", key), {"tag_key": "team"}).status_code == 403
    assert snapshot() == before
    # The questions are asked inside the tab's read: a page view records one event, its own, whatever it asks.
    count = AuditEvent.objects.count()
    assert client.get(url("key-tags", key)).status_code == 200
    assert AuditEvent.objects.count() == count + 1
    assert AuditEvent.objects.order_by("-seq").values_list("operation", flat=True)[0] == "ListResourceTags"


def test_tags_a_condition_on_the_callers_address_hides_the_form(
    make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    """The page's own request carries the address: not left open, so no tag could be allowed."""
    key = tagged_key(team="ops")
    document = statements(
        grant_of("kms:ListResourceTags"), grant_of("kms:TagResource", "kms:UntagResource", **ELSEWHERE)
    )
    refused = make_user("refused", document)
    client = console(refused)
    page = text(client.get(url("key-tags", key)))
    assert "Save tag" not in page and "Remove tag" not in page and "kms:TagResource" in page
    assert client.post(url("key-tag-put", key), {"tag_key": "env", "tag_value": "x"}).status_code == 403


def test_tags_offered_when_some_tag_could_be_allowed_and_removal_decided_per_tag(
    make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    """TagResource only for team=ops (a tag not typed yet: offered); UntagResource only of the cost tag (each
    tag's removal decided with its key)."""
    key = tagged_key(team="ops", cost="42")
    document = statements(
        grant_of("kms:ListResourceTags"),
        grant_of("kms:TagResource", StringEquals={"aws:RequestTag/team": "ops"}),
        grant_of("kms:UntagResource", **{"ForAllValues:StringEquals": {"aws:TagKeys": ["cost"]}}),
    )
    bob = make_user("bob", document)
    client = console(bob)
    page = text(client.get(url("key-tags", key)))
    assert "Save tag" in page
    assert "Remove tag cost" in page and "Remove tag team" not in page
    assert "Only the tags with a Remove button can be removed" in page
    assert client.post(url("key-tag-put", key), {"tag_key": "team", "tag_value": "ops"}).status_code == 302
    assert client.post(url("key-tag-put", key), {"tag_key": "team", "tag_value": "dev"}).status_code == 403
    assert client.post(url("key-tag-remove", key), {"tag_key": "team"}).status_code == 403
    assert client.post(url("key-tag-remove", key), {"tag_key": "cost"}).status_code == 302


def test_tags_the_remove_hint_is_given_only_with_some_remove_button(
    make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    """UntagResource allowed for some tag (cost) but none the key has: no Remove button, so no word of one."""
    key = tagged_key(team="ops")
    document = statements(
        grant_of("kms:ListResourceTags"),
        grant_of("kms:UntagResource", **{"ForAllValues:StringEquals": {"aws:TagKeys": ["cost"]}}),
    )
    page = text(console(make_user("dora", document)).get(url("key-tags", key)))
    assert "Remove tag " not in page and "Remove button" not in page and "You may remove" not in page
    # UntagResource is allowed on the key, only for no tag it has: its own hint, not the reader's.
    assert 'id="tags-none-removable"' in page and 'id="tags-read-only"' not in page
    assert (
        "nor kms:UntagResource for these tags" in page and "kms:TagResource or kms:UntagResource" not in page
    )


def test_tags_a_deny_of_one_tag_leaves_the_form_offered(
    make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    """TagResource allowed, denied for team=x: "every open condition true" is refused, another tag is allowed,
    so the form is offered (the analysis looks past its first assignment); the tag typed then decides."""
    key = tagged_key(cost="42")
    document = statements(
        grant_of("kms:ListResourceTags", "kms:TagResource"),
        {**grant_of("kms:TagResource", StringEquals={"aws:RequestTag/team": "x"}), "Effect": "Deny"},
    )
    client = console(make_user("erin", document))
    assert "Save tag" in text(client.get(url("key-tags", key)))
    assert client.post(url("key-tag-put", key), {"tag_key": "team", "tag_value": "x"}).status_code == 403
    assert client.post(url("key-tag-put", key), {"tag_key": "team", "tag_value": "ops"}).status_code == 302


def own_name_tag_policy(version: str) -> str:
    """The key policy: the account root, and alice may tag the key when the owner tag typed is her user name
    (``aws:username`` equal to ``${aws:RequestTag/owner}``; kmsconsole's principals carry no tags, so her name
    stands for the caller's own value)."""
    tagging = allow(
        user_arn("alice"), "kms:TagResource", StringEquals={"aws:username": "${aws:RequestTag/owner}"}
    )
    return json.dumps({"Version": version, "Statement": [ROOT, tagging]})


@pytest.mark.parametrize(("version", "offered"), [("2012-10-17", True), ("2008-10-17", False)])
def test_tags_a_value_naming_the_typed_tag_is_decided_by_the_tag_typed(
    make_user: Callable[..., Persona], console: Callable[..., Client], version: str, offered: bool
) -> None:
    """A condition whose value is a variable naming a tag not typed yet: offered, and alice's own name is
    saved while another is refused (the page once decided it on no tag at all, and hid the form). Where the
    policy's Version substitutes no variables the value is the literal "${aws:RequestTag/owner}": never allowed,
    and hidden."""
    client = console(make_user("alice", identity_policy("kms:ListResourceTags")))
    key = make_policy_key(own_name_tag_policy(version))
    assert ("Save tag" in text(client.get(url("key-tags", key)))) is offered
    put = client.post(url("key-tag-put", key), {"tag_key": "owner", "tag_value": "alice"})
    assert put.status_code == (302 if offered else 403)
    assert client.post(url("key-tag-put", key), {"tag_key": "owner", "tag_value": "bob"}).status_code == 403


def tag_statements_elsewhere(count: int) -> list[dict[str, Any]]:
    """`count` TagResource statements, each on its own tag and each from an address the client is not at: no
    request could be allowed, but each adds an open condition (the tag) to enumerate."""
    return [
        grant_of("kms:TagResource", StringEquals={f"aws:RequestTag/t{index}": "x"}, **ELSEWHERE)
        for index in range(count)
    ]


def test_tags_more_open_conditions_than_the_bound_offer_the_form(
    make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    """Past the enumeration's bound the page does not decide: it offers the form (the request sent is decided
    as typed, and refused here); within the bound the same statements are decided exactly, and hidden."""
    key = tagged_key(team="ops")
    over = make_user(
        "over",
        statements(grant_of("kms:ListResourceTags"), *tag_statements_elsewhere(FORM_MAX_FACTS + 1)),
    )
    client = console(over)
    assert "Save tag" in text(client.get(url("key-tags", key)))
    assert client.post(url("key-tag-put", key), {"tag_key": "t0", "tag_value": "x"}).status_code == 403
    within = make_user(
        "within", statements(grant_of("kms:ListResourceTags"), *tag_statements_elsewhere(FORM_MAX_FACTS))
    )
    assert "Save tag" not in text(console(within).get(url("key-tags", key)))


# ------------------------------------------------------------------------------------------------------- Aliases


def test_aliases_a_caller_allowed_every_change_gets_the_form_and_each_action(
    make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    key = make_key(alias="alias/app")
    actions = ("kms:ListAliases", "kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias")
    alice = make_user("alice", identity_policy(*actions))
    client = console(alice)
    page = text(client.get(url("key-aliases", key)))
    assert "Create alias" in page and "Point elsewhere" in page and "Delete alias/app" in page
    assert "not-allowed" not in page
    assert client.post(url("key-alias-create", key), {"alias_name": "alias/more"}).status_code == 302
    confirm = client.get(url("key-alias-delete", key), {"alias_name": "alias/app"})
    assert confirm.status_code == 200 and "Delete alias" in text(confirm)
    assert client.post(url("key-alias-delete", key), {"alias_name": "alias/app"}).status_code == 302


def test_aliases_a_reader_gets_a_read_only_tab(
    make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    key = make_key(alias="alias/app")
    reader = make_user("reader", identity_policy("kms:ListAliases"))
    client = console(reader)
    page = text(client.get(url("key-aliases", key)))
    assert "<code>alias/app</code>" in page
    assert "Create alias" not in page and "Point elsewhere" not in page and "Delete alias/app" not in page
    assert "You can view these aliases but not change them" in page
    assert "You may not create an alias for this key: your access does not allow kms:CreateAlias" in page
    # The confirmation's URL shows no form either, and the request is refused as before.
    confirm = client.get(url("key-alias-delete", key), {"alias_name": "alias/app"})
    assert confirm.status_code == 403 and 'name="alias_name"' not in text(confirm)
    assert "your access does not allow kms:DeleteAlias" in text(confirm)
    assert client.post(url("key-alias-delete", key), {"alias_name": "alias/app"}).status_code == 403
    assert client.post(url("key-alias-create", key), {"alias_name": "alias/more"}).status_code == 403


def test_aliases_decided_on_the_key_and_on_the_alias_name(
    make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    """CreateAlias needs the action on the key and on the alias: allowed on the key but on no alias ARN, the form
    is hidden; allowed on alias/app-* it is offered (some name could be), and each alias's Delete is decided on
    its own ARN."""
    key = make_key(alias="alias/app-one")
    as_operator_alias(key, "alias/other")
    keys_only = f"arn:aws:kms:*:{ACCOUNT}:key/*"
    no_alias = make_user(
        "noalias",
        statements(
            grant_of("kms:ListAliases"), grant_of("kms:CreateAlias", "kms:DeleteAlias", resource=keys_only)
        ),
    )
    page = text(console(no_alias).get(url("key-aliases", key)))
    assert "Create alias" not in page and "Delete alias/" not in page
    app_only = [keys_only, f"arn:aws:kms:*:{ACCOUNT}:alias/app-*"]
    app = make_user(
        "app",
        statements(
            grant_of("kms:ListAliases"), grant_of("kms:CreateAlias", "kms:DeleteAlias", resource=app_only)
        ),
    )
    client = console(app)
    page = text(client.get(url("key-aliases", key)))
    assert "Create alias" in page
    assert "Delete alias/app-one" in page and "Delete alias/other" not in page
    assert "Point elsewhere" not in page
    assert client.post(url("key-alias-create", key), {"alias_name": "alias/app-two"}).status_code == 302
    assert client.post(url("key-alias-create", key), {"alias_name": "alias/nope"}).status_code == 403
    assert client.post(url("key-alias-delete", key), {"alias_name": "alias/other"}).status_code == 403
    assert client.post(url("key-alias-delete", key), {"alias_name": "alias/app-one"}).status_code == 302


def test_aliases_the_update_form_by_url_is_refused_to_who_may_not_update(
    make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    """The Point elsewhere form reached by its URL, for a caller allowed DeleteAlias but not UpdateAlias: 403,
    no form, the action named."""
    key = make_key(alias="alias/app")
    deleter = make_user("deleter", identity_policy("kms:ListAliases", "kms:DeleteAlias"))
    client = console(deleter)
    assert "Point elsewhere" not in text(client.get(url("key-aliases", key)))
    form = client.get(url("key-alias-update", key), {"alias_name": "alias/app"})
    assert form.status_code == 403 and 'name="target_key_id"' not in text(form)
    assert "your access does not allow kms:UpdateAlias" in text(form)
    other = make_key()
    update = {"alias_name": "alias/app", "target_key_id": str(other.key_id)}
    assert client.post(url("key-alias-update", key), update).status_code == 403


def as_operator_alias(key: Key, name: str) -> None:
    as_operator(
        "CreateAlias",
        lambda ctx: aliases.alias_create(ctx=ctx, alias_name=name, target_key_id=str(key.key_id)),
    )


# -------------------------------------------------------------------------------------------------------- Grants


def grant_form(grantee: Persona, *operations: str) -> dict[str, Any]:
    return {"grantee_principal": grantee.arn, "operations": list(operations) or ["Decrypt"]}


def test_grants_a_caller_allowed_every_change_gets_create_and_revoke(
    make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    key = make_key()
    make_grant(key, f"arn:aws:iam::{ACCOUNT}:root", "Decrypt")
    alice = make_user(
        "alice", identity_policy("kms:ListGrants", "kms:DescribeKey", "kms:CreateGrant", "kms:RevokeGrant")
    )
    client = console(alice)
    page = text(client.get(url("key-grants", key)))
    assert "Create grant" in page and ">Revoke</a>" in page and "not-allowed" not in page
    form = client.get(url("key-grant-create", key))
    assert form.status_code == 200 and 'name="grantee_principal"' in text(form)
    assert client.post(url("key-grant-create", key), grant_form(alice)).status_code == 302


def test_grants_a_reader_gets_a_read_only_tab_and_no_create_form(
    make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    key = make_key()
    grant_id = make_grant(key, f"arn:aws:iam::{ACCOUNT}:root", "Decrypt").grant.grant_id
    reader = make_user("reader", identity_policy("kms:ListGrants", "kms:DescribeKey"))
    client = console(reader)
    page = text(client.get(url("key-grants", key)))
    assert "Create grant" not in page and ">Revoke</a>" not in page
    assert "You can view these grants but not revoke them: your access does not allow kms:RevokeGrant" in page
    assert "your access does not allow kms:CreateGrant" in page
    form = client.get(url("key-grant-create", key))
    assert form.status_code == 403 and 'name="grantee_principal"' not in text(form)
    confirm = client.get(url("key-grant-revoke", key, grant_id))
    assert confirm.status_code == 403 and "Revoke grant</button>" not in text(confirm)
    before = snapshot()
    assert client.post(url("key-grant-create", key), grant_form(reader)).status_code == 403
    assert client.post(url("key-grant-revoke", key, grant_id)).status_code == 403
    assert snapshot() == before


def test_grants_create_offered_when_some_grant_could_be_allowed(
    make_user: Callable[..., Persona], console: Callable[..., Client], settings: Any
) -> None:
    """CreateGrant's conditions test the grant asked for: one that allows only Decrypt grants is offered, one only
    for integrated services (which the console never is) or only from another address is not; a grant of the
    caller allowing CreateGrant (in effect) offers the form with no identity policy for it."""
    settings.KMS_GRANT_PROPAGATION_SECONDS = 0
    key = make_key()
    decrypt_only = {"ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt"]}}
    bob = make_user(
        "bob",
        statements(
            grant_of("kms:ListGrants", "kms:DescribeKey"), grant_of("kms:CreateGrant", **decrypt_only)
        ),
    )
    client = console(bob)
    assert "Create grant" in text(client.get(url("key-grants", key)))
    assert client.post(url("key-grant-create", key), grant_form(bob)).status_code == 302
    wider = grant_form(bob, "Decrypt", "Encrypt")
    assert client.post(url("key-grant-create", key), wider).status_code == 403
    for name, condition in (
        ("service", {"Bool": {"kms:GrantIsForAWSResource": "true"}}),
        ("away", ELSEWHERE),
    ):
        refused = make_user(
            name,
            statements(
                grant_of("kms:ListGrants", "kms:DescribeKey"), grant_of("kms:CreateGrant", **condition)
            ),
        )
        page = text(console(refused).get(url("key-grants", key)))
        assert "Create grant" not in page and "kms:CreateGrant" in page, name
        assert console(refused).get(url("key-grant-create", key)).status_code == 403, name
    carol = make_user("carol", identity_policy("kms:ListGrants", "kms:DescribeKey"))
    assert "Create grant" not in text(console(carol).get(url("key-grants", key)))
    make_grant(key, carol.arn, "CreateGrant", "Decrypt")
    assert "Create grant" in text(console(carol).get(url("key-grants", key)))


def test_grants_a_grant_to_the_account_offers_create_only_with_iam(
    make_user: Callable[..., Persona], console: Callable[..., Client], settings: Any
) -> None:
    """A grant to the account root allowing CreateGrant counts only where the account's IAM policies also allow
    it: the form is hidden for a caller they do not, and the request refused; offered where they do."""
    settings.KMS_GRANT_PROPAGATION_SECONDS = 0
    key = make_key()
    make_grant(key, f"arn:aws:iam::{ACCOUNT}:root", "CreateGrant", "Decrypt")
    dave = make_user("dave", identity_policy("kms:ListGrants", "kms:DescribeKey"))
    client = console(dave)
    assert "Create grant" not in text(client.get(url("key-grants", key)))
    assert client.get(url("key-grant-create", key)).status_code == 403
    assert client.post(url("key-grant-create", key), grant_form(dave)).status_code == 403
    erin = make_user("erin", identity_policy("kms:ListGrants", "kms:DescribeKey", "kms:CreateGrant"))
    assert "Create grant" in text(console(erin).get(url("key-grants", key)))


def test_grants_a_grant_failing_its_check_hides_create_and_keeps_the_list(
    make_user: Callable[..., Persona], console: Callable[..., Client], settings: Any
) -> None:
    """A grant row of the caller altered in the database (its MAC fails): the offer is not made, and the tab's
    own read is not failed by the question."""
    settings.KMS_GRANT_PROPAGATION_SECONDS = 0
    key = make_key()
    carol = make_user("carol", identity_policy("kms:ListGrants", "kms:DescribeKey"))
    make_grant(key, carol.arn, "CreateGrant", "Decrypt")
    Grant.objects.filter(key=key, grantee_principal=carol.arn).update(operations=["CreateGrant", "Encrypt"])
    response = console(carol).get(url("key-grants", key))
    assert response.status_code == 200
    assert "Create grant" not in text(response)
    assert audit_events("ListGrants")[-1].decision == "allowed"


# ------------------------------------------------------------------------------------------------------ Rotation


def test_rotation_offers_each_change_the_caller_would_be_allowed(
    make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    key = make_key()
    everything = (
        "kms:GetKeyRotationStatus",
        "kms:EnableKeyRotation",
        "kms:DisableKeyRotation",
        "kms:RotateKeyOnDemand",
    )
    alice = make_user("alice", identity_policy(*everything, "kms:ListKeyRotations"))
    page = text(console(alice).get(url("key-rotation", key)))
    assert (
        "Turn on automatic rotation" in page and "Rotate now</button>" in page and "not-allowed" not in page
    )
    reader = make_user("reader", identity_policy("kms:GetKeyRotationStatus", "kms:ListKeyRotations"))
    client = console(reader)
    page = text(client.get(url("key-rotation", key)))
    assert "Turn on automatic rotation</button>" not in page and "Rotate now</button>" not in page
    assert "your access does not allow kms:EnableKeyRotation" in page
    assert "your access does not allow kms:RotateKeyOnDemand" in page
    assert client.post(url("key-rotation-enable", key), {"rotation_period_days": "365"}).status_code == 403
    # A period condition leaves the period open: offered when some period could be allowed.
    periodic = make_user(
        "periodic",
        statements(
            grant_of("kms:GetKeyRotationStatus", "kms:ListKeyRotations"),
            grant_of("kms:EnableKeyRotation", NumericLessThanEquals={"kms:RotationPeriodInDays": "180"}),
        ),
    )
    client = console(periodic)
    assert "Turn on automatic rotation</button>" in text(client.get(url("key-rotation", key)))
    assert client.post(url("key-rotation-enable", key), {"rotation_period_days": "365"}).status_code == 403
    assert client.post(url("key-rotation-enable", key), {"rotation_period_days": "90"}).status_code == 302


# -------------------------------------------------------------------------------------------------------- Policy


def test_policy_tab_offers_changes_only_to_who_could_put_the_policy(
    make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    """The review step checks the draft as PutKeyPolicy without the lockout check's bypass: a caller allowed it
    only with the bypass would be refused there, so it gets no editor (and the review, posted anyway, is
    refused); a reader gets neither, in either view."""
    key = make_key()
    document = json.dumps(json.loads(key.policy))
    bypass = {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "true"}}
    bypasser = make_user(
        "bypasser", statements(grant_of("kms:GetKeyPolicy"), grant_of("kms:PutKeyPolicy", **bypass))
    )
    client = console(bypasser)
    page = text(client.get(url("key-policy", key), {"view": "json"}))
    assert "Review changes" not in page and "data-validate-url" not in page and " readonly" in page
    assert "your access does not allow kms:PutKeyPolicy on this key" in page
    assert client.post(url("key-policy-review", key), {"policy": document}).status_code == 403
    writer = make_user("writer", identity_policy("kms:GetKeyPolicy", "kms:PutKeyPolicy"))
    page = text(console(writer).get(url("key-policy", key), {"view": "json"}))
    assert "Review changes" in page and "data-validate-url" in page
    assert console(writer).post(url("key-policy-review", key), {"policy": document}).status_code == 200
    reader = make_user("reader", identity_policy("kms:GetKeyPolicy"))
    for view in ("json", "people"):
        page = text(console(reader).get(url("key-policy", key), {"view": view}))
        assert "Review changes" not in page and "people-add" not in page, view
        assert "your access does not allow kms:PutKeyPolicy on this key" in page, view
