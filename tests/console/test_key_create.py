"""Console: the create-key wizard, end to end through its five steps, with each step's checks, Previous keeping
the choices, the generated policy, the lockout refusal, and what an outsider sees."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse

from keys.models import Alias, Key, Tag
from keys.services import aliases
from kmsconsole.console.views.keys_create import WIZARD_SALT
from kmsconsole.core import errors
from tests.api.conftest import make_key
from tests.conftest import Persona, as_operator
from tests.console.conftest import audit_events

INVALID = "Policy contains a statement with one or more invalid principals."
pytestmark = pytest.mark.django_db

CREATE = reverse("console:key-create")
SYMMETRIC = {"key_type": "symmetric"}
SIGNING = {"key_type": "asymmetric", "key_usage": "SIGN_VERIFY", "key_spec": "ECC_NIST_P256"}
CREATOR_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "kms:CreateKey",
                    "kms:CreateAlias",
                    "kms:ListAliases",
                    "iam:ListUsers",
                    "iam:ListRoles",
                ],
                "Resource": "*",
            }
        ],
    }
)


def submit(client: Client, page: Any, data: dict[str, Any] | None = None, action: str = "next") -> Any:
    """Post the wizard's current step (its signed state and step number) with `data`."""
    form = {"wizard": page.context["wizard"], "step": page.context["step"], "action": action, **(data or {})}
    return client.post(CREATE, form)


def walk_to_review(
    client: Client,
    key_type: dict[str, str],
    labels: dict[str, Any],
    admins: dict[str, Any],
    users: dict[str, Any],
) -> Any:
    page = client.get(CREATE)
    assert page.status_code == 200 and page.context["step"] == 1
    for step, data in enumerate((key_type, labels, admins, users), start=1):
        assert page.context["step"] == step
        page = submit(client, page, data)
        assert page.status_code == 200, page.content.decode()
    assert page.context["step"] == 5
    return page


def create_refused(client: Client, review: Any, status: int) -> Any:
    """Create from the review step, expecting a refusal that stays on it and creates nothing."""
    response = submit(client, review, action="create")
    assert response.status_code == status and response.context["step"] == 5
    assert "The key was not created." in response.content.decode()
    assert not Key.objects.exists() and not Alias.objects.exists()
    return response


def statement(policy: str, sid: str) -> dict[str, Any]:
    return next(s for s in json.loads(policy)["Statement"] if s["Sid"] == sid)


def test_anonymous_is_sent_to_sign_in(client: Client) -> None:
    for response in (client.get(CREATE), client.post(CREATE, {"step": 5, "action": "create"})):
        assert response.status_code == 302 and response.url.startswith("/signin/")


def test_symmetric_key_end_to_end(
    console: Callable[..., Client], admin: Persona, make_user: Callable[..., Persona]
) -> None:
    app = make_user("app")
    client = console(admin)
    review = walk_to_review(
        client,
        SYMMETRIC,
        {
            "alias": "orders",
            "description": "orders database",
            "tag_key": ["team", ""],
            "tag_value": ["pay", ""],
        },
        {"principal": [admin.arn], "allow_delete": "on"},
        {"principal": [app.arn]},
    )
    policy = review.context["policy"]
    body = review.content.decode()
    assert "alias/orders" in body and "orders database" in body and "SYMMETRIC_DEFAULT" in body
    admins = statement(policy, "Allow access for Key Administrators")
    assert admins["Principal"]["AWS"] == [admin.arn]
    assert "kms:ScheduleKeyDeletion" in admins["Action"]
    assert statement(policy, "Allow use of the key")["Principal"]["AWS"] == [app.arn]
    assert "kms:Encrypt" in statement(policy, "Allow use of the key")["Action"]
    assert "&quot;Sid&quot;: &quot;Allow use of the key&quot;" in body  # the policy is shown for review

    response = submit(client, review, action="create")
    key = Key.objects.get()
    assert response.status_code == 302 and response.url == reverse("console:key", args=[str(key.key_id)])
    assert (key.key_spec, key.key_usage, key.description) == (
        "SYMMETRIC_DEFAULT",
        "ENCRYPT_DECRYPT",
        "orders database",
    )
    assert key.policy == policy
    assert list(Alias.objects.filter(key=key).values_list("name", flat=True)) == ["alias/orders"]
    assert list(Tag.objects.filter(key=key).values_list("tag_key", "tag_value")) == [("team", "pay")]
    [created] = audit_events("CreateKey", decision="allowed", key_arn=key.arn)
    assert created.request_parameters["Tags"] == [{"TagKey": "team", "TagValue": "pay"}]
    assert audit_events("CreateAlias", decision="allowed", key_arn=key.arn)
    assert audit_events("iam:ListUsers", decision="allowed", caller_arn=admin.arn)
    assert "Key alias/orders created" in client.get(response.url).content.decode()


def test_asymmetric_signing_key(
    console: Callable[..., Client], admin: Persona, make_user: Callable[..., Persona]
) -> None:
    signer = make_user("signer")
    client = console(admin)
    review = walk_to_review(
        client,
        SIGNING,
        {"description": "release signing"},
        {"principal": [admin.arn]},  # administrators may not delete it
        {"other_arns": signer.arn},
    )
    policy = review.context["policy"]
    assert "kms:ScheduleKeyDeletion" not in statement(policy, "Allow access for Key Administrators")["Action"]
    use = statement(policy, "Allow use of the key")
    assert use["Principal"]["AWS"] == [signer.arn]
    assert {"kms:Sign", "kms:Verify", "kms:GetPublicKey"} <= set(use["Action"])
    assert "kms:Encrypt" not in use["Action"]
    assert submit(client, review, action="create").status_code == 302
    key = Key.objects.get()
    assert (key.key_spec, key.key_usage) == ("ECC_NIST_P256", "SIGN_VERIFY")
    assert key.public_key_der
    assert not Alias.objects.exists()


def test_post_quantum_encapsulation_key(
    console: Callable[..., Client], admin: Persona, make_user: Callable[..., Persona]
) -> None:
    """An ML-KEM key through the wizard: its one usage needs no choice, its users get Encapsulate/Decapsulate."""
    peer = make_user("peer")
    client = console(admin)
    review = walk_to_review(
        client,
        {"key_type": "asymmetric", "key_spec": "ML_KEM_1024"},
        {"description": "key exchange"},
        {"principal": [admin.arn]},
        {"other_arns": peer.arn},
    )
    use = statement(review.context["policy"], "Allow use of the key")
    assert use["Action"] == ["kms:DescribeKey", "kms:GetPublicKey", "kms:Encapsulate", "kms:Decapsulate"]
    assert submit(client, review, action="create").status_code == 302
    key = Key.objects.get()
    assert (key.key_spec, key.key_usage) == ("ML_KEM_1024", "ENCAPSULATE_DECAPSULATE")
    assert key.public_key_der and len(key.public_key_der) == 1590


def test_step_one_offers_only_supported_specs_and_their_usages(
    console: Callable[..., Client], admin: Persona
) -> None:
    body = console(admin).get(CREATE).content.decode()
    assert 'value="RSA_2048"' in body and 'value="HMAC_512"' in body
    assert 'value="SM2"' not in body and 'value="ML_KEM_512"' not in body  # not implemented here
    assert 'value="ML_DSA_44"' in body and 'value="ML_KEM_1024"' in body  # post-quantum, as on AWS
    assert 'data-usages="ENCAPSULATE_DECAPSULATE"' in body
    assert 'data-usages="SIGN_VERIFY KEY_AGREEMENT"' in body  # the NIST curves
    assert "js/keys.js" in body


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Choose a key type."),
        ({"key_type": "asymmetric", "key_usage": "SIGN_VERIFY"}, "Choose a key spec"),
        (
            {"key_type": "asymmetric", "key_usage": "GENERATE_VERIFY_MAC", "key_spec": "RSA_2048"},
            "cannot be used",
        ),
        (
            {"key_type": "asymmetric", "key_usage": "ENCRYPT_DECRYPT", "key_spec": "ECC_NIST_P256"},
            "can only be used",
        ),
        ({"key_type": "hmac", "key_spec": "RSA_2048"}, "RSA_2048 is not an HMAC key spec."),
        ({"key_type": "asymmetric", "key_spec": "HMAC_256"}, "HMAC_256 is not an asymmetric key spec."),
        ({"key_type": "asymmetric", "key_spec": "RSA_4096"}, "Choose what the key will be used for"),
        ({"key_type": "quantum"}, "Select a valid choice"),
    ],
)
def test_step_one_refuses_combinations_that_do_not_exist(
    console: Callable[..., Client], admin: Persona, data: dict[str, str], message: str
) -> None:
    client = console(admin)
    response = submit(client, client.get(CREATE), data)
    assert response.status_code == 400
    assert response.context["step"] == 1
    body = response.content.decode()
    assert message in body and 'class="field-error"' in body


def test_hmac_needs_no_usage(console: Callable[..., Client], admin: Persona) -> None:
    client = console(admin)
    response = submit(client, client.get(CREATE), {"key_type": "hmac", "key_spec": "HMAC_384"})
    assert response.status_code == 200 and response.context["step"] == 2
    state = signing.loads(response.context["wizard"], salt=WIZARD_SALT)
    assert (state["key_spec"], state["key_usage"]) == ("HMAC_384", "GENERATE_VERIFY_MAC")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"alias": "aws/mine"}, "reserved for AWS managed keys"),
        ({"alias": "has space"}, "An alias name may contain only letters, digits, /, _ and -, not spaces."),
        ({"alias": "a:b"}, "An alias name may contain only letters, digits, /, _ and -, not &quot;:&quot;."),
        ({"alias": "taken"}, "already in use"),
        ({"tag_key": ["a", "a"], "tag_value": ["1", "2"]}, "Duplicate tag keys"),
        ({"tag_key": ["aws:x"], "tag_value": ["1"]}, "reserved"),
        ({"tag_key": [""], "tag_value": ["orphan"]}, "Every tag needs a key"),
        ({"tag_key": ["k" * 129], "tag_value": [""]}, "at most 128 characters"),
        ({"tag_key": ["nul\x00"], "tag_value": [""]}, "null characters"),
        ({"description": "d" * 8193}, "at most 8192 characters"),
    ],
)
def test_step_two_checks_alias_description_and_tags(
    console: Callable[..., Client], admin: Persona, data: dict[str, Any], message: str
) -> None:
    existing = make_key("has an alias")
    as_operator(
        "CreateAlias",
        lambda ctx: aliases.alias_create(
            ctx=ctx, alias_name="alias/taken", target_key_id=str(existing.key_id)
        ),
    )
    client = console(admin)
    step_two = submit(client, client.get(CREATE), SYMMETRIC)
    response = submit(client, step_two, data)
    assert response.status_code == 400 and response.context["step"] == 2
    assert message in response.content.decode()


def test_a_validation_error_shows_the_tags_with_one_empty_row_and_the_alias_problem_in_words(
    console: Callable[..., Client], admin: Persona
) -> None:
    """Each answer carries back the empty row it showed: submitting it again must not add another."""
    client = console(admin)
    page = submit(client, client.get(CREATE), SYMMETRIC)
    assert page.context["tag_rows"] == [("", "")]
    for _ in range(3):
        # What the browser sends: every row shown, the tag typed into the first.
        keys = ["env"] + [""] * (len(page.context["tag_rows"]) - 1)
        values = ["prod"] + [""] * (len(page.context["tag_rows"]) - 1)
        page = submit(client, page, {"alias": "aws/evil key", "tag_key": keys, "tag_value": values})
        assert page.status_code == 400 and page.context["step"] == 2
        assert page.context["tag_rows"] == [("env", "prod"), ("", "")]
    body = page.content.decode()
    assert "validation error detected" not in body and "^[a-zA-Z0-9" not in body
    assert "Names starting with &quot;alias/aws/&quot; are reserved for AWS managed keys." in body
    assert "not spaces" in body


def test_add_another_tag_keeps_what_was_typed(console: Callable[..., Client], admin: Persona) -> None:
    client = console(admin)
    step_two = submit(client, client.get(CREATE), SYMMETRIC)
    response = submit(
        client, step_two, {"alias": "kept", "tag_key": ["env"], "tag_value": ["prod"]}, "add-tag"
    )
    assert response.status_code == 200 and response.context["step"] == 2
    assert response.context["tag_rows"] == [("env", "prod"), ("", "")]
    assert 'value="kept"' in response.content.decode()
    # Asked again with the empty row it showed: another empty row, as asked.
    response = submit(client, response, {"tag_key": ["env", ""], "tag_value": ["prod", ""]}, "add-tag")
    assert response.context["tag_rows"] == [("env", "prod"), ("", ""), ("", "")]


def test_previous_keeps_every_choice(
    console: Callable[..., Client], admin: Persona, make_user: Callable[..., Persona]
) -> None:
    app = make_user("app")
    client = console(admin)
    review = walk_to_review(
        client,
        SIGNING,
        {"alias": "signer", "description": "kept", "tag_key": ["env"], "tag_value": ["prod"]},
        {"principal": [admin.arn]},
        {"principal": [app.arn]},
    )
    users = submit(client, review, action="back")
    assert users.context["step"] == 4
    assert f'value="{app.arn}" id="principal-' in users.content.decode()
    assert app.arn in users.context["chosen"]
    admins = submit(client, users, {"principal": [app.arn]}, action="back")
    assert admins.context["step"] == 3 and admins.context["chosen"] == [admin.arn]
    assert admins.context["allow_delete"] is False
    labels = submit(client, admins, {"principal": [admin.arn]}, action="back")
    body = labels.content.decode()
    assert 'value="signer"' not in body  # the prefix is added once
    assert 'value="alias/signer"' in body and ">kept</textarea>" in body and 'value="prod"' in body
    first = submit(client, labels, {"alias": "alias/signer", "description": "kept"}, action="back")
    assert first.context["step"] == 1
    assert 'value="ECC_NIST_P256" checked' in first.content.decode()
    # Editing from the review page goes straight to that step.
    assert submit(client, review, action="goto-2").context["step"] == 2


def test_step_three_refuses_what_is_not_a_principal_arn(
    console: Callable[..., Client], admin: Persona
) -> None:
    client = console(admin)
    page = submit(client, submit(client, client.get(CREATE), SYMMETRIC), {})
    response = submit(client, page, {"other_arns": "bob\narn:aws:iam::111122223333:group/ops"})
    assert response.status_code == 400 and response.context["step"] == 3
    body = response.content.decode()
    assert "Not the ARN of a user, a role or an account: bob, arn:aws:iam::111122223333:group/ops" in body
    assert "bob\narn:aws:iam::111122223333:group/ops</textarea>" in body


def test_lockout_refusal_is_shown_and_fixed_by_going_back(
    console: Callable[..., Client], admin: Persona, make_user: Callable[..., Persona]
) -> None:
    creator = make_user("creator", CREATOR_POLICY)
    client = console(creator)
    review = walk_to_review(client, SYMMETRIC, {"alias": "mine"}, {"principal": [admin.arn]}, {})
    response = create_refused(client, review, 400)
    assert "would stop you from managing the key" in response.content.decode()
    assert response.context["lockout"] is True
    assert audit_events("CreateKey", decision="failed", caller_arn=creator.arn)

    admins = submit(client, response, action="goto-3")
    assert admins.context["step"] == 3
    review = submit(client, submit(client, admins, {"principal": [admin.arn, creator.arn]}), {})
    assert statement(review.context["policy"], "Allow access for Key Administrators")["Principal"]["AWS"] == [
        admin.arn,
        creator.arn,
    ]
    assert submit(client, review, action="create").status_code == 302
    assert Alias.objects.get().key == Key.objects.get()


def test_an_alias_taken_meanwhile_creates_no_key(console: Callable[..., Client], admin: Persona) -> None:
    client = console(admin)
    review = walk_to_review(client, SYMMETRIC, {"alias": "race"}, {"principal": [admin.arn]}, {})
    other = make_key("first")
    as_operator(
        "CreateAlias",
        lambda ctx: aliases.alias_create(ctx=ctx, alias_name="alias/race", target_key_id=str(other.key_id)),
    )
    response = submit(client, review, action="create")
    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    assert response.context["alias_taken"] is True
    assert list(Key.objects.values_list("description", flat=True)) == ["first"]


def test_outsider_may_not_list_principals_or_create(
    console: Callable[..., Client], outsider: Persona
) -> None:
    client = console(outsider)
    step_three = submit(client, submit(client, client.get(CREATE), SYMMETRIC), {"alias": "x"})
    assert step_three.status_code == 200 and step_three.context["step"] == 3
    body = step_three.content.decode()
    assert "cannot be listed for you" in body and "iam:ListUsers" in body
    assert 'name="other_arns"' in body
    review = submit(client, submit(client, step_three, {"other_arns": outsider.arn}), {})
    response = submit(client, review, action="create")
    assert response.status_code == 403
    assert "Refused." in response.content.decode() and "kms:CreateKey" in response.content.decode()
    assert not Key.objects.exists()
    assert audit_events("CreateKey", decision="denied", caller_arn=outsider.arn)


# Explicit ids: a signed value carries a timestamp, and pytest-xdist needs the same test ids in every worker.
@pytest.mark.parametrize(
    "wizard",
    ["", "forged", signing.dumps({"done": 4}, salt="another salt")],
    ids=["empty", "not-signed", "signed-with-another-salt"],
)
def test_a_forged_wizard_state_starts_again(
    console: Callable[..., Client], admin: Persona, wizard: str
) -> None:
    response = console(admin).post(CREATE, {"wizard": wizard, "step": 5, "action": "create"})
    assert response.status_code == 400 and response.context["step"] == 1
    assert "could not be read" in response.content.decode()
    assert not Key.objects.exists()


def test_steps_cannot_be_skipped(console: Callable[..., Client], admin: Persona) -> None:
    client = console(admin)
    state = signing.dumps({"key_type": "symmetric"}, salt=WIZARD_SALT, compress=True)
    response = client.post(CREATE, {"wizard": state, "step": 5, "action": "create"})
    assert response.status_code == 400 and response.context["step"] == 1
    assert not Key.objects.exists()


NO_ALIAS_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["kms:CreateKey", "kms:PutKeyPolicy", "kms:ListAliases", "kms:DescribeKey"],
                "Resource": "*",
            }
        ],
    }
)


def test_a_refused_alias_creates_no_key(
    console: Callable[..., Client], make_user: Callable[..., Persona]
) -> None:
    creator = make_user("creator", NO_ALIAS_POLICY)
    client = console(creator)
    # A key administrator: the new key's policy allows it kms:Create*, but CreateAlias also needs
    # kms:CreateAlias on the alias itself, which only identity policies can give.
    review = walk_to_review(client, SYMMETRIC, {"alias": "fromwizard"}, {"principal": [creator.arn]}, {})
    response = create_refused(client, review, 403)
    body = response.content.decode()
    assert "kms:CreateAlias" in body and "alias/fromwizard" in body
    [refused] = audit_events("CreateKey", caller_arn=creator.arn)
    assert refused.decision == "denied" and "kms:CreateAlias" in refused.error_message
    assert not audit_events("CreateAlias")

    labels = submit(client, response, action="goto-2")
    review = submit(client, submit(client, submit(client, labels, {"alias": ""}), {}), {})
    created = submit(client, review, action="create")
    key = Key.objects.get()
    assert created.status_code == 302 and not Alias.objects.exists()
    assert f"Key {key.key_id} created." in client.get(created.url).content.decode()


def test_an_alias_that_fails_after_the_key_is_not_claimed(
    console: Callable[..., Client], admin: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(**_: Any) -> None:
        raise errors.LimitExceededException("No more aliases today.")

    client = console(admin)
    review = walk_to_review(client, SYMMETRIC, {"alias": "late"}, {"principal": [admin.arn]}, {})
    monkeypatch.setattr(aliases, "alias_create", refuse)
    response = submit(client, review, action="create")
    key = Key.objects.get()
    page = client.get(response.url).content.decode()
    assert "The key was created, but not its alias alias/late: No more aliases today." in page
    assert f"Key {key.key_id} created." in page and "Key alias/late created." not in page


def test_a_principal_of_ones_own_account_that_does_not_exist_is_named(
    console: Callable[..., Client], admin: Persona
) -> None:
    """CreateKey refuses the policy in AWS's words, which name no principal; the wizard names the missing one of the
    caller's own account, as the key policy editor does. Another account's stays unnamed."""
    account = admin.arn.split(":")[4]
    nobody = f"arn:aws:iam::{account}:user/nobody"
    client = console(admin)
    review = walk_to_review(client, SYMMETRIC, {}, {"principal": [admin.arn], "other_arns": nobody}, {})
    body = create_refused(client, review, 400).content.decode()
    assert (
        f"Policy contains a statement with one or more invalid principals. {nobody} does not exist." in body
    )
    [event] = audit_events("CreateKey")
    assert event.decision == "failed" and event.error_code == "MalformedPolicyDocumentException"

    elsewhere = "arn:aws:iam::999988887777:user/nobody"
    review = walk_to_review(client, SYMMETRIC, {}, {"principal": [admin.arn], "other_arns": elsewhere}, {})
    refused = create_refused(client, review, 400)
    assert (
        refused.context["create_error"] == "Policy contains a statement with one or more invalid principals."
    )


def test_several_missing_principals_are_named_together_and_another_accounts_is_told(
    console: Callable[..., Client], admin: Persona
) -> None:
    """Two missing principals of the caller's own account are named in one sentence, and a missing one of another
    account adds AWS's words (naming none), as the key policy editor marks them. The audit event keeps what
    CreateKey answered, not the console's wording."""
    account = admin.arn.split(":")[4]
    first, second = f"arn:aws:iam::{account}:user/nobody-a", f"arn:aws:iam::{account}:user/nobody-b"
    elsewhere = "arn:aws:iam::999988887777:user/nobody"
    client = console(admin)
    review = walk_to_review(
        client, SYMMETRIC, {}, {"principal": [admin.arn], "other_arns": f"{second} {elsewhere} {first}"}, {}
    )
    refused = create_refused(client, review, 400)
    assert refused.context["create_error"] == (f"{INVALID} {first} and {second} do not exist. {INVALID}")
    [event] = audit_events("CreateKey")
    assert event.decision == "failed" and event.error_code == "MalformedPolicyDocumentException"
    assert event.error_message == INVALID
