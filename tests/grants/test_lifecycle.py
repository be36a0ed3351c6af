"""CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant over boto3: the lifecycle, the request
rules (grantees, operations per key type, constraints, Name, the limit, key states) and the audit trail."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.forms.models import model_to_dict

from grants.models import Grant
from grants.services import creation
from keys.models import Key, KeyState
from kmsconsole.audit.models import AuditEvent
from policies import services as principals
from policies.models import Account
from tests.conftest import Persona, as_operator
from tests.grants.conftest import ACCOUNT, DENIED, PARTNER, error_of, identity_policy, last_event
from tests.rows import update_sealed

pytestmark = pytest.mark.django_db(transaction=True)

DESCRIBE = ["DescribeKey"]


def test_grant_lifecycle(
    admin_kms: Any, key_arn: Callable[..., str], make_user: Callable[..., Persona], kms_client: Any
) -> None:
    arn = key_arn()
    app, retirer = make_user("app"), make_user("retirer", identity_policy("kms:ListRetirableGrants"))
    app_kms = kms_client(app)
    assert error_of(lambda: app_kms.describe_key(KeyId=arn))[0] == DENIED

    created = admin_kms.create_grant(
        KeyId=arn,
        GranteePrincipal=app.arn,
        RetiringPrincipal=retirer.arn,
        Operations=["Encrypt", "Decrypt", "DescribeKey"],
        Constraints={"EncryptionContextSubset": {"tenant": "42"}},
        Name="orders-service",
    )
    grant_id, token = created["GrantId"], created["GrantToken"]
    assert len(grant_id) == 64 and int(grant_id, 16) >= 0
    assert token and len(token) <= 8192

    [entry] = admin_kms.list_grants(KeyId=arn)["Grants"]
    assert isinstance(entry.pop("CreationDate"), datetime)
    assert entry == {
        "KeyId": arn,
        "GrantId": grant_id,
        "Name": "orders-service",
        "GranteePrincipal": app.arn,
        "RetiringPrincipal": retirer.arn,
        "IssuingAccount": f"arn:aws:iam::{ACCOUNT}:root",
        "Operations": ["Encrypt", "Decrypt", "DescribeKey"],
        "Constraints": {"EncryptionContextSubset": {"tenant": "42"}},
    }
    # The grantee uses it without naming it; the decision names the grant.
    assert app_kms.describe_key(KeyId=arn)["KeyMetadata"]["Arn"] == arn
    event = last_event("DescribeKey")
    assert (event.decision, event.decided_by) == ("allowed", f"grant {grant_id}")
    assert event.reason == f"allowed by grant {grant_id}"

    listed = kms_client(retirer).list_retirable_grants(RetiringPrincipal=retirer.arn)
    assert [g["GrantId"] for g in listed["Grants"]] == [grant_id] and listed["Truncated"] is False
    kms_client(retirer).retire_grant(GrantToken=token)
    assert admin_kms.list_grants(KeyId=arn)["Grants"] == []
    assert error_of(lambda: app_kms.describe_key(KeyId=arn))[0] == DENIED

    # A revoked grant is gone as well; revoking it again is NotFoundException.
    revoked = admin_kms.create_grant(KeyId=arn, GranteePrincipal=app.arn, Operations=DESCRIBE)["GrantId"]
    admin_kms.revoke_grant(KeyId=arn, GrantId=revoked)
    assert not Grant.objects.filter(grant_id=revoked).exists()
    assert error_of(lambda: admin_kms.revoke_grant(KeyId=arn, GrantId=revoked)) == (
        "NotFoundException",
        f"Grant ID {revoked} not found",
    )


def test_every_grant_operation_is_audited_without_the_token(
    admin_kms: Any, key_arn: Callable[..., str], make_user: Callable[..., Persona], kms_client: Any
) -> None:
    arn = key_arn()
    app = make_user("app", identity_policy("kms:ListRetirableGrants"))
    created = admin_kms.create_grant(
        KeyId=arn, GranteePrincipal=app.arn, RetiringPrincipal=app.arn, Operations=DESCRIBE
    )
    token = created["GrantToken"]
    child = kms_client(app)
    admin_kms.list_grants(KeyId=arn)
    child.list_retirable_grants(RetiringPrincipal=app.arn)
    child.retire_grant(GrantToken=token)
    second = admin_kms.create_grant(KeyId=arn, GranteePrincipal=app.arn, Operations=DESCRIBE)
    admin_kms.revoke_grant(KeyId=arn, GrantId=second["GrantId"])
    error_of(lambda: child.retire_grant(GrantToken=token))

    create = AuditEvent.objects.filter(operation="CreateGrant").order_by("seq").first()
    assert create is not None and create.decision == "allowed" and create.key_arn == arn
    assert create.response_elements == {"GrantId": created["GrantId"]}
    assert create.request_parameters == {
        "KeyId": arn,
        "GranteePrincipal": app.arn,
        "RetiringPrincipal": app.arn,
        "Operations": DESCRIBE,
    }
    retire = AuditEvent.objects.filter(operation="RetireGrant", decision="allowed").get()
    assert retire.request_parameters == {} and retire.response_elements == {"GrantId": created["GrantId"]}
    assert retire.decided_by == f"grant {created['GrantId']} as its retiring principal"
    assert last_event("RetireGrant").error_code == "InvalidGrantTokenException"
    revoke = last_event("RevokeGrant")
    assert revoke.request_parameters == {"KeyId": arn, "GrantId": second["GrantId"]}
    for operation in ("CreateGrant", "ListGrants", "ListRetirableGrants", "RetireGrant", "RevokeGrant"):
        assert AuditEvent.objects.filter(operation=operation).exists(), operation
    everything = json.dumps(
        [model_to_dict(event) for event in AuditEvent.objects.all()], cls=DjangoJSONEncoder
    )
    assert token not in everything and second["GrantToken"] not in everything


def test_grantee_forms(
    admin_kms: Any,
    key_arn: Callable[..., str],
    make_user: Callable[..., Persona],
    role_session: Callable[..., Persona],
    partner: Callable[..., Persona],
    kms_client: Any,
) -> None:
    arn = key_arn()
    user, session = make_user("user"), role_session("app")
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/app"
    partner_root = partner(None)
    federated = f"arn:aws:sts::{ACCOUNT}:federated-user/bob"
    for grantee in (user.arn, role_arn, session.arn, f"arn:aws:iam::{PARTNER}:root", PARTNER, federated):
        admin_kms.create_grant(KeyId=arn, GranteePrincipal=grantee, Operations=DESCRIBE)
    listed = {grant["GranteePrincipal"] for grant in admin_kms.list_grants(KeyId=arn)["Grants"]}
    # An account id is stored as the account's root ARN.
    assert listed == {user.arn, role_arn, session.arn, partner_root.arn, federated}

    assert error_of(lambda: admin_kms.create_grant(KeyId=arn, GranteePrincipal="*", Operations=DESCRIBE)) == (
        "ValidationException",
        "1 validation error detected: Value '*' at 'granteePrincipal' failed to satisfy constraint: Member must "
        "satisfy regular expression pattern: ^[\\w+=,.@:/-]+$",
    )
    as_operator(
        "iam:CreateGroup",
        lambda ctx: principals.group_create(
            ctx=ctx, account=Account.objects.get(account_id=ACCOUNT), group_name="devs"
        ),
    )
    for invalid in (
        f"arn:aws:iam::{ACCOUNT}:group/devs",
        f"arn:aws:iam::{ACCOUNT}:user/nobody",
        f"arn:aws:iam::{ACCOUNT}:role/nobody",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/nobody/s",
        "arn:aws:iam::999988887777:root",
        "not-a-principal",
        f"arn:aws:iam::{ACCOUNT}:saml-provider/idp",
    ):
        code, message = error_of(
            lambda invalid=invalid: admin_kms.create_grant(
                KeyId=arn, GranteePrincipal=invalid, Operations=DESCRIBE
            )
        )
        assert (code, message) == (
            "InvalidArnException",
            f"ARN does not refer to a valid principal: {invalid}",
        )
    code, _ = error_of(
        lambda: admin_kms.create_grant(
            KeyId=arn, GranteePrincipal=user.arn, RetiringPrincipal="arn:aws:iam::999988887777:root",
            Operations=DESCRIBE,
        )
    )  # fmt: skip
    assert code == "InvalidArnException"
    assert (
        error_of(lambda: admin_kms.create_grant(KeyId=arn, Operations=DESCRIBE))[0] == "ValidationException"
    )
    code, _ = error_of(
        lambda: admin_kms.create_grant(
            KeyId=arn, GranteeServicePrincipal="logs.us-east-1.amazonaws.com", Operations=DESCRIBE
        )
    )
    assert code == "UnsupportedOperationException"
    assert len(admin_kms.list_grants(KeyId=arn)["Grants"]) == 6


@pytest.mark.parametrize(
    ("key_params", "allowed", "refused"),
    [
        (
            {},
            ["Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GenerateDataKey", "GenerateDataKeyPair",
             "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPairWithoutPlaintext", "DescribeKey",
             "CreateGrant", "RetireGrant"],
            ["Sign", "Verify", "GetPublicKey", "GenerateMac", "VerifyMac", "DeriveSharedSecret"],
        ),
        (
            {"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"},
            ["Sign", "Verify", "GetPublicKey", "DescribeKey", "CreateGrant", "RetireGrant"],
            ["GenerateDataKey", "GenerateDataKeyPair", "GenerateMac", "Encrypt", "Decrypt", "ReEncryptTo"],
        ),
        (
            {"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"},
            ["Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey", "DescribeKey", "CreateGrant",
             "RetireGrant"],
            ["Sign", "Verify", "GenerateDataKey", "GenerateMac", "DeriveSharedSecret"],
        ),
        (
            {"KeySpec": "ECC_NIST_P384", "KeyUsage": "KEY_AGREEMENT"},
            ["DeriveSharedSecret", "GetPublicKey", "DescribeKey", "CreateGrant", "RetireGrant"],
            ["Sign", "Verify", "Encrypt", "Decrypt", "GenerateDataKey", "GenerateMac"],
        ),
        (
            {"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"},
            ["GenerateMac", "VerifyMac", "DescribeKey", "CreateGrant", "RetireGrant"],
            ["Encrypt", "Decrypt", "Sign", "GenerateDataKey", "GetPublicKey"],
        ),
    ],
)  # fmt: skip
def test_operations_must_suit_the_key_type(
    admin_kms: Any,
    key_arn: Callable[..., str],
    make_user: Callable[..., Persona],
    key_params: dict[str, str],
    allowed: list[str],
    refused: list[str],
) -> None:
    arn = key_arn(**key_params)
    user = make_user("user")
    admin_kms.create_grant(KeyId=arn, GranteePrincipal=user.arn, Operations=allowed)
    for operation in refused:
        code, message = error_of(
            lambda operation=operation: admin_kms.create_grant(
                KeyId=arn, GranteePrincipal=user.arn, Operations=["DescribeKey", operation]
            )
        )
        assert code == "ValidationException"
        assert message.startswith(f"{operation} is not a valid grant operation for a KMS key with KeySpec")
    code, message = error_of(
        lambda: admin_kms.create_grant(KeyId=arn, GranteePrincipal=user.arn, Operations=[])
    )
    assert code == "ValidationException"
    if key_params:
        # Encryption-context constraints are for symmetric encryption keys only.
        code, message = error_of(
            lambda: admin_kms.create_grant(
                KeyId=arn,
                GranteePrincipal=user.arn,
                Operations=["DescribeKey"],
                Constraints={"EncryptionContextEquals": {"a": "b"}},
            )
        )
        assert code == "ValidationException" and "symmetric encryption KMS keys" in message


def test_constraint_rules(
    admin_kms: Any, key_arn: Callable[..., str], make_user: Callable[..., Persona]
) -> None:
    arn = key_arn()
    user = make_user("user")

    def create(constraints: dict[str, Any]) -> dict[str, Any]:
        return admin_kms.create_grant(
            KeyId=arn, GranteePrincipal=user.arn, Operations=["Decrypt"], Constraints=constraints
        )

    both = {"EncryptionContextEquals": {"a": "1"}, "EncryptionContextSubset": {"b": "2"}}
    assert error_of(lambda: create(both))[0] == "ValidationException"
    nine = {"EncryptionContextSubset": {f"k{i}": "v" for i in range(9)}}
    assert error_of(lambda: create(nine))[0] == "ValidationException"
    long_value = {"EncryptionContextEquals": {"k": "v" * 385}}
    assert error_of(lambda: create(long_value))[0] == "ValidationException"
    source_arn = {"SourceArn": "arn:aws:ec2:us-east-1:111122223333:volume/vol-1"}
    assert error_of(lambda: create(source_arn))[0] == "UnsupportedOperationException"
    eight = {"EncryptionContextSubset": {f"k{i}": "v" * 384 for i in range(8)}}
    grant_id = create(eight)["GrantId"]
    # An empty constraint is no constraint.
    unconstrained = create({"EncryptionContextEquals": {}})["GrantId"]
    entries = {g["GrantId"]: g for g in admin_kms.list_grants(KeyId=arn)["Grants"]}
    assert entries[grant_id]["Constraints"] == eight and "Constraints" not in entries[unconstrained]


def test_name_makes_a_retry_idempotent(
    admin_kms: Any, key_arn: Callable[..., str], make_user: Callable[..., Persona], kms_client: Any
) -> None:
    arn, other_arn = key_arn(), key_arn()
    user = make_user("user")
    params = {
        "KeyId": arn,
        "GranteePrincipal": user.arn,
        "Operations": ["DescribeKey", "Encrypt"],
        "Name": "job-7",
    }
    first, retry = admin_kms.create_grant(**params), admin_kms.create_grant(**params)
    assert first["GrantId"] == retry["GrantId"] and first["GrantToken"] != retry["GrantToken"]
    # The operations' order is not a parameter difference.
    reordered = admin_kms.create_grant(**{**params, "Operations": ["Encrypt", "DescribeKey"]})
    assert reordered["GrantId"] == first["GrantId"]
    # Other parameters (or another key) under the same name: another grant. Without a name: always another.
    different = admin_kms.create_grant(**{**params, "Operations": ["DescribeKey"]})
    elsewhere = admin_kms.create_grant(**{**params, "KeyId": other_arn})
    unnamed = [admin_kms.create_grant(**{k: v for k, v in params.items() if k != "Name"}) for _ in range(2)]
    ids = {first["GrantId"], different["GrantId"], elsewhere["GrantId"], *(u["GrantId"] for u in unnamed)}
    assert len(ids) == 5
    assert Grant.objects.filter(key__key_id=arn.rsplit("/", 1)[1]).count() == 4
    # Every token of the grant works (here: to retire it, once).
    user_kms = kms_client(user)
    code, _ = error_of(lambda: user_kms.retire_grant(GrantToken=first["GrantToken"]))
    assert code == DENIED  # the grantee may not retire a grant without RetireGrant
    admin_kms.retire_grant(GrantToken=retry["GrantToken"])
    assert error_of(lambda: admin_kms.retire_grant(GrantToken=first["GrantToken"]))[0] == (
        "InvalidGrantTokenException"
    )
    # Once retired, the name is free again: the same request makes a new grant.
    assert admin_kms.create_grant(**params)["GrantId"] not in ids


def test_at_most_the_limit_of_grants_per_key(
    admin_kms: Any,
    key_arn: Callable[..., str],
    make_user: Callable[..., Persona],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert creation.GRANTS_PER_KEY_LIMIT == 50_000
    monkeypatch.setattr(creation, "GRANTS_PER_KEY_LIMIT", 3)
    arn, other = key_arn(), key_arn()
    user = make_user("user")
    named = admin_kms.create_grant(KeyId=arn, GranteePrincipal=user.arn, Operations=DESCRIBE, Name="n")
    for _ in range(2):
        admin_kms.create_grant(KeyId=arn, GranteePrincipal=user.arn, Operations=DESCRIBE)
    code, message = error_of(
        lambda: admin_kms.create_grant(KeyId=arn, GranteePrincipal=user.arn, Operations=DESCRIBE)
    )
    assert (code, message) == (
        "LimitExceededException",
        f"The request would exceed the limit of 3 grants for KMS key {arn}.",
    )
    # A Name retry makes nothing, so it is not refused; other keys have their own limit.
    retry = admin_kms.create_grant(KeyId=arn, GranteePrincipal=user.arn, Operations=DESCRIBE, Name="n")
    assert retry["GrantId"] == named["GrantId"]
    admin_kms.create_grant(KeyId=other, GranteePrincipal=user.arn, Operations=DESCRIBE)
    admin_kms.revoke_grant(KeyId=arn, GrantId=named["GrantId"])
    admin_kms.create_grant(KeyId=arn, GranteePrincipal=user.arn, Operations=DESCRIBE)


def test_key_states(admin_kms: Any, key_arn: Callable[..., str], make_user: Callable[..., Persona]) -> None:
    arn = key_arn()
    user = make_user("user")
    kept = admin_kms.create_grant(KeyId=arn, GranteePrincipal=user.arn, Operations=DESCRIBE)
    other = admin_kms.create_grant(KeyId=arn, GranteePrincipal=user.arn, Operations=DESCRIBE)
    admin_kms.disable_key(KeyId=arn)
    assert error_of(
        lambda: admin_kms.create_grant(KeyId=arn, GranteePrincipal=user.arn, Operations=DESCRIBE)
    ) == ("DisabledException", f"{arn} is disabled.")
    # Listing, retiring and revoking work in every state.
    assert len(admin_kms.list_grants(KeyId=arn)["Grants"]) == 2
    update_sealed(Key.objects.filter(key_id=arn.rsplit("/", 1)[1]), state=KeyState.PENDING_DELETION)
    assert error_of(
        lambda: admin_kms.create_grant(KeyId=arn, GranteePrincipal=user.arn, Operations=DESCRIBE)
    ) == ("KMSInvalidStateException", f"{arn} is pending deletion.")
    admin_kms.revoke_grant(KeyId=arn, GrantId=other["GrantId"])
    admin_kms.retire_grant(GrantToken=kept["GrantToken"])
    assert admin_kms.list_grants(KeyId=arn)["Grants"] == []


def test_dry_run_creates_nothing(
    admin_kms: Any, key_arn: Callable[..., str], make_user: Callable[..., Persona]
) -> None:
    arn = key_arn()
    user = make_user("user")
    dry = ("DryRunOperationException", "The request would have succeeded, but the DryRun option is set.")
    assert (
        error_of(
            lambda: admin_kms.create_grant(
                KeyId=arn, GranteePrincipal=user.arn, Operations=DESCRIBE, DryRun=True
            )
        )
        == dry
    )
    assert not Grant.objects.exists()
    grant = admin_kms.create_grant(KeyId=arn, GranteePrincipal=user.arn, Operations=DESCRIBE)
    assert error_of(lambda: admin_kms.revoke_grant(KeyId=arn, GrantId=grant["GrantId"], DryRun=True)) == dry
    assert error_of(lambda: admin_kms.retire_grant(GrantToken=grant["GrantToken"], DryRun=True)) == dry
    assert Grant.objects.filter(grant_id=grant["GrantId"]).exists()


def test_list_grants_filters_and_pages(
    admin_kms: Any, key_arn: Callable[..., str], make_user: Callable[..., Persona]
) -> None:
    arn = key_arn()
    first, second = make_user("first"), make_user("second")
    ids = [
        admin_kms.create_grant(KeyId=arn, GranteePrincipal=grantee.arn, Operations=DESCRIBE)["GrantId"]
        for grantee in (first, second, first, second, first)
    ]
    page = admin_kms.list_grants(KeyId=arn, Limit=2)
    assert [g["GrantId"] for g in page["Grants"]] == ids[:2] and page["Truncated"] is True
    seen = [g["GrantId"] for g in page["Grants"]]
    while page["Truncated"]:
        page = admin_kms.list_grants(KeyId=arn, Limit=2, Marker=page["NextMarker"])
        seen += [g["GrantId"] for g in page["Grants"]]
    assert seen == ids
    assert [g["GrantId"] for g in admin_kms.list_grants(KeyId=arn, GrantId=ids[3])["Grants"]] == [ids[3]]
    assert admin_kms.list_grants(KeyId=arn, GrantId="0" * 64)["Grants"] == []
    by_grantee = admin_kms.list_grants(KeyId=arn, GranteePrincipal=second.arn)["Grants"]
    assert [g["GrantId"] for g in by_grantee] == [ids[1], ids[3]]
    assert error_of(lambda: admin_kms.list_grants(KeyId=arn, GrantId="not-a-grant-id"))[0] == (
        "InvalidGrantIdException"
    )
    assert error_of(lambda: admin_kms.list_grants(KeyId=arn, Marker="bogus"))[0] == "InvalidMarkerException"
    assert error_of(lambda: admin_kms.list_grants(KeyId=arn, Limit=101))[0] == "ValidationException"
    other = key_arn()
    code, _ = error_of(lambda: admin_kms.list_grants(KeyId=other, Marker=page.get("NextMarker") or "x"))
    assert code == "InvalidMarkerException"


def test_list_retirable_grants(
    admin_kms: Any,
    key_arn: Callable[..., str],
    make_user: Callable[..., Persona],
    partner: Callable[..., Persona],
    kms_client: Any,
) -> None:
    arn = key_arn()
    retirer, user = make_user("retirer", identity_policy("kms:ListRetirableGrants")), make_user("user")
    ids = [
        admin_kms.create_grant(
            KeyId=arn, GranteePrincipal=user.arn, RetiringPrincipal=retirer.arn, Operations=DESCRIBE
        )["GrantId"]
        for _ in range(3)
    ]
    admin_kms.create_grant(KeyId=arn, GranteePrincipal=user.arn, Operations=DESCRIBE)
    retirer_kms = kms_client(retirer)
    page = retirer_kms.list_retirable_grants(RetiringPrincipal=retirer.arn, Limit=2)
    assert page["Truncated"] is True
    rest = retirer_kms.list_retirable_grants(RetiringPrincipal=retirer.arn, Marker=page["NextMarker"])
    assert [g["GrantId"] for g in page["Grants"] + rest["Grants"]] == ids
    assert page["Grants"][0]["KeyId"] == arn
    # Decided by IAM alone: the admin may list anyone's; a user without the permission may not list its own.
    assert len(admin_kms.list_retirable_grants(RetiringPrincipal=retirer.arn)["Grants"]) == 3
    code, message = error_of(lambda: kms_client(user).list_retirable_grants(RetiringPrincipal=user.arn))
    assert code == DENIED and message == (
        f"User: {user.arn} is not authorized to perform: kms:ListRetirableGrants on resource: {user.arn} "
        "because no identity-based policy allows the kms:ListRetirableGrants action"
    )
    partner_user = partner("bob")
    code, _ = error_of(lambda: admin_kms.list_retirable_grants(RetiringPrincipal=partner_user.arn))
    assert code == "InvalidArnException"
    assert error_of(lambda: admin_kms.list_retirable_grants())[0] == "ValidationException"
