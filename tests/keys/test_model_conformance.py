"""Where this KMS once answered outside botocore's KMS model or AWS's documented behaviour, over boto3 against the
live server: DescribeCustomKeyStores (an account with no custom key stores), CreateKey's custom key store members, and
multi-Region key ids (`mrk-`, a valid key id form that names no key here). Each case checks its audit event."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from grants.models import Grant
from keys.models import Alias, Key
from kmsconsole.audit.models import AuditEvent
from tests.conftest import Persona
from tests.grants.conftest import ACCOUNT, error_of, last_event

pytestmark = pytest.mark.django_db(transaction=True)

MRK_ID = "mrk-1234abcd12ab34cd56ef1234567890ab"
MRK_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{MRK_ID}"
MRK_MISSING = ("NotFoundException", f"Key '{MRK_ARN}' does not exist")

ALLOW_DESCRIBE_STORES = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kms:DescribeCustomKeyStores", "Resource": "*"}],
    }
)
ALLOW_LIST_KEYS = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:ListKeys", "Resource": "*"}]}
)


# DescribeCustomKeyStores


def test_describe_custom_key_stores_lists_none(kms_client: Callable[..., Any], make_user: Any) -> None:
    """An account with no custom key stores gets an empty, untruncated list, allowed by the IAM-only action
    kms:DescribeCustomKeyStores alone, and one audit event."""
    user = make_user("store-reader", ALLOW_DESCRIBE_STORES)
    events = AuditEvent.objects.count()
    answer = kms_client(user).describe_custom_key_stores()
    assert (answer["CustomKeyStores"], answer["Truncated"]) == ([], False)
    assert "NextMarker" not in answer
    assert kms_client(user).describe_custom_key_stores(Limit=1000)["CustomKeyStores"] == []
    assert AuditEvent.objects.count() == events + 2
    event = last_event("DescribeCustomKeyStores")
    assert (event.decision, event.interface, event.caller_arn) == ("allowed", "kms", user.arn)
    assert event.request_parameters == {"Limit": 1000}
    assert event.response_elements == {"CustomKeyStores": [], "Truncated": False}
    assert "policy-0" in event.reason


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"CustomKeyStoreId": "cks-1234567890abcdef0"},
        {"CustomKeyStoreName": "ExampleKeyStore"},
        {"Marker": "bogus"},
    ],
)
def test_describe_custom_key_stores_needs_its_own_action(
    kms_client: Callable[..., Any], outsider: Persona, make_user: Any, params: dict[str, str]
) -> None:
    """Authorization comes first: naming a store or sending a marker is AccessDeniedException for a caller
    without kms:DescribeCustomKeyStores (none, or only kms:ListKeys), never the error it would get if allowed."""
    lister = make_user("key-lister", ALLOW_LIST_KEYS)
    for persona in (outsider, lister):
        events = AuditEvent.objects.count()
        code, message = error_of(lambda p=persona: kms_client(p).describe_custom_key_stores(**params))
        assert (code, message) == (
            "AccessDeniedException",
            f"User: {persona.arn} is not authorized to perform: kms:DescribeCustomKeyStores on resource: * "
            "because no identity-based policy allows the kms:DescribeCustomKeyStores action",
        )
        assert AuditEvent.objects.count() == events + 1
        event = last_event("DescribeCustomKeyStores")
        assert (event.decision, event.error_code, event.caller_arn) == (
            "denied",
            "AccessDeniedException",
            persona.arn,
        )
        assert event.request_parameters == params


@pytest.mark.parametrize(
    "params",
    [
        {"CustomKeyStoreId": "cks-1234567890abcdef0"},
        {"CustomKeyStoreName": "ExampleKeyStore"},
        # The model says either, not both; AWS's answer to both is not on record. A guess: the answer to each alone.
        pytest.param(
            {"CustomKeyStoreId": "cks-1234567890abcdef0", "CustomKeyStoreName": "ExampleKeyStore"},
            id="both-guess",
        ),
    ],
)
def test_naming_a_custom_key_store_finds_none(admin_kms: Any, params: dict[str, str]) -> None:
    events = AuditEvent.objects.count()
    assert error_of(lambda: admin_kms.describe_custom_key_stores(**params)) == (
        "CustomKeyStoreNotFoundException",
        "",
    )
    assert AuditEvent.objects.count() == events + 1
    event = last_event("DescribeCustomKeyStores")
    assert (event.decision, event.error_code) == ("failed", "CustomKeyStoreNotFoundException")
    assert event.request_parameters == params


def test_every_operation_answers_a_missing_store_alike(admin_kms: Any) -> None:
    """One message for "no such custom key store": DescribeCustomKeyStores', CreateKey's and GenerateRandom's."""
    for call in (
        lambda: admin_kms.describe_custom_key_stores(CustomKeyStoreId=STORE),
        lambda: admin_kms.create_key(CustomKeyStoreId=STORE),
        lambda: admin_kms.generate_random(NumberOfBytes=8, CustomKeyStoreId=STORE),
    ):
        assert error_of(call) == NO_SUCH_STORE


def test_describe_custom_key_stores_refuses_markers_and_limits(
    kms_client: Callable[..., Any], admin: Persona, create_key: Callable[..., dict[str, Any]]
) -> None:
    """It never issues a NextMarker, so every marker is invalid (a forged one, or another listing's), as on the
    other List operations. The Limit cases test the model's validation at the endpoint (the service takes no
    Limit): 0 and 1001 are outside the model's LimitType, 1-1000."""
    admin_kms = kms_client(admin, parameter_validation=False)  # boto3 would refuse Limit=0 itself
    create_key(), create_key()
    list_keys_marker = admin_kms.list_keys(Limit=1)["NextMarker"]
    for marker in ("bogus", "AAAAAAAAAAAAAAAAAAAAAA", list_keys_marker):
        events = AuditEvent.objects.count()
        assert error_of(lambda m=marker: admin_kms.describe_custom_key_stores(Marker=m)) == (
            "InvalidMarkerException",
            "The request contains an invalid marker.",
        )
        assert AuditEvent.objects.count() == events + 1
        event = last_event("DescribeCustomKeyStores")
        assert (event.decision, event.error_code) == ("failed", "InvalidMarkerException")
    for limit, constraint in ((0, "greater than or equal to 1"), (1001, "less than or equal to 1000")):
        assert error_of(lambda n=limit: admin_kms.describe_custom_key_stores(Limit=n)) == (
            "ValidationException",
            f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: "
            f"Member must have value {constraint}",
        )


def test_the_other_custom_key_store_operations_stay_unsupported(admin_kms: Any) -> None:
    """No custom key store can exist here: creating one, or acting on one, is not offered (kms-spec §0: "out")."""
    calls = {
        "CreateCustomKeyStore": lambda: admin_kms.create_custom_key_store(CustomKeyStoreName="store"),
        "ConnectCustomKeyStore": lambda: admin_kms.connect_custom_key_store(CustomKeyStoreId="cks-1"),
        "DisconnectCustomKeyStore": lambda: admin_kms.disconnect_custom_key_store(CustomKeyStoreId="cks-1"),
        "UpdateCustomKeyStore": lambda: admin_kms.update_custom_key_store(CustomKeyStoreId="cks-1"),
        "DeleteCustomKeyStore": lambda: admin_kms.delete_custom_key_store(CustomKeyStoreId="cks-1"),
    }
    for name, call in calls.items():
        assert error_of(call) == ("UnsupportedOperationException", f"{name} is not supported by this KMS.")


# CreateKey: the custom key store members (Origin, XksKeyId, CustomKeyStoreId) and MultiRegion

XKS_ORIGIN = (
    "UnsupportedOperationException",
    "Origin EXTERNAL_KEY_STORE (a KMS key in a custom key store) is not supported by this KMS: it has no custom "
    "key stores.",
)
XKS_KEY_ID_ALONE = (
    "ValidationException",
    "XksKeyId is valid only for a KMS key in an external key store (Origin EXTERNAL_KEY_STORE).",
)
EXTERNAL_ORIGIN = ("UnsupportedOperationException", "Origin EXTERNAL is not supported by this KMS.")
BOTH_SPECS = (
    "ValidationException",
    "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec is deprecated.",
)
NO_SUCH_STORE = ("CustomKeyStoreNotFoundException", "")
NO_MULTI_REGION = ("UnsupportedOperationException", "Multi-Region keys are not supported by this KMS.")
STORE = "cks-1234567890abcdef0"
MISSING_FEATURES: list[tuple[dict[str, Any], tuple[str, str]]] = [
    # Origin first: a key in an external key store is one answer, whatever else is sent.
    ({"Origin": "EXTERNAL_KEY_STORE"}, XKS_ORIGIN),
    ({"Origin": "EXTERNAL_KEY_STORE", "XksKeyId": "abc"}, XKS_ORIGIN),
    ({"Origin": "EXTERNAL_KEY_STORE", "CustomKeyStoreId": STORE}, XKS_ORIGIN),
    ({"Origin": "EXTERNAL_KEY_STORE", "CustomKeyStoreId": STORE, "XksKeyId": "abc"}, XKS_ORIGIN),
    ({"Origin": "EXTERNAL_KEY_STORE", "MultiRegion": True}, XKS_ORIGIN),
    (
        {"Origin": "AWS_CLOUDHSM", "CustomKeyStoreId": STORE},
        (
            "UnsupportedOperationException",
            "Origin AWS_CLOUDHSM (a KMS key in a custom key store) is not supported by this KMS: it has no custom "
            "key stores.",
        ),
    ),
    ({"Origin": "EXTERNAL", "XksKeyId": "abc", "CustomKeyStoreId": STORE}, EXTERNAL_ORIGIN),
    # Then KeySpec with its deprecated name CustomerMasterKeySpec, even naming the same spec (AWS's words).
    ({"KeySpec": "RSA_2048", "CustomerMasterKeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}, BOTH_SPECS),
    ({"KeySpec": "SYMMETRIC_DEFAULT", "CustomerMasterKeySpec": "HMAC_256"}, BOTH_SPECS),
    (
        {"KeySpec": "SYMMETRIC_DEFAULT", "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT", "XksKeyId": "abc"},
        BOTH_SPECS,
    ),
    (
        {
            "Origin": "EXTERNAL",
            "KeySpec": "HMAC_256",
            "CustomerMasterKeySpec": "HMAC_256",
            "KeyUsage": "GENERATE_VERIFY_MAC",
        },
        EXTERNAL_ORIGIN,
    ),
    # Then XksKeyId, with an Origin it is never valid with.
    ({"XksKeyId": "abc"}, XKS_KEY_ID_ALONE),
    ({"XksKeyId": "abc", "Origin": "AWS_KMS", "CustomKeyStoreId": STORE}, XKS_KEY_ID_ALONE),
    ({"XksKeyId": "abc", "KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}, XKS_KEY_ID_ALONE),
    # Then the store named, which cannot exist; then MultiRegion.
    ({"CustomKeyStoreId": STORE}, NO_SUCH_STORE),
    ({"CustomKeyStoreId": STORE, "MultiRegion": True}, NO_SUCH_STORE),
    ({"MultiRegion": True}, NO_MULTI_REGION),
]


@pytest.mark.parametrize(("params", "answer"), MISSING_FEATURES)
def test_create_key_refuses_external_key_store_members(
    admin_kms: Any, admin: Persona, params: dict[str, Any], answer: tuple[str, str]
) -> None:
    """Decided in one place (lifecycle.key_create), in one order, after authorization: refused before any key is
    made, with one audit event carrying the decision that allowed the request to get that far."""
    keys, events = Key.objects.count(), AuditEvent.objects.count()
    assert error_of(lambda: admin_kms.create_key(**params)) == answer
    assert Key.objects.count() == keys
    assert AuditEvent.objects.count() == events + 1
    event = last_event("CreateKey")
    assert (event.decision, event.error_code, event.key_arn, event.caller_arn) == (
        "failed",
        answer[0],
        "",
        admin.arn,
    )
    assert event.decided_by and event.reason, "authorized before the refusal"
    assert event.request_parameters == params


@pytest.mark.parametrize(("params", "answer"), MISSING_FEATURES)
def test_a_caller_who_may_not_create_keys_is_denied_whatever_it_asks_for(
    kms_client: Callable[..., Any], outsider: Persona, params: dict[str, Any], answer: tuple[str, str]
) -> None:
    """Authorization before the missing features: a caller without kms:CreateKey gets AccessDeniedException and
    a denied event, never what an allowed caller would be told."""
    keys, events = Key.objects.count(), AuditEvent.objects.count()
    code, message = error_of(lambda: kms_client(outsider).create_key(**params))
    assert (code, message.split(" because ")[0]) == (
        "AccessDeniedException",
        f"User: {outsider.arn} is not authorized to perform: kms:CreateKey on resource: *",
    )
    assert (Key.objects.count(), AuditEvent.objects.count()) == (keys, events + 1)
    event = last_event("CreateKey")
    assert (event.decision, event.error_code, event.caller_arn) == (
        "denied",
        "AccessDeniedException",
        outsider.arn,
    )


NO_USAGE = (
    "ValidationException",
    "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
)


def test_a_key_spec_its_usage_does_not_fit_is_refused_before_both_names_and_authorization(
    admin_kms: Any, kms_client: Callable[..., Any], outsider: Persona
) -> None:
    """The KeySpec/KeyUsage pair is checked before authorization (its values are the kms:KeySpec and kms:KeyUsage
    conditions), KeySpec being the spec when both names are sent: so both names with an HMAC spec and no KeyUsage
    are refused for the missing KeyUsage, to any caller, and with the KeyUsage for naming the spec twice."""
    both = {"KeySpec": "HMAC_256", "CustomerMasterKeySpec": "HMAC_256"}
    keys = Key.objects.count()
    assert error_of(lambda: admin_kms.create_key(**both)) == NO_USAGE
    assert error_of(lambda: kms_client(outsider).create_key(**both)) == NO_USAGE
    assert error_of(lambda: admin_kms.create_key(**both, KeyUsage="GENERATE_VERIFY_MAC")) == BOTH_SPECS
    assert Key.objects.count() == keys


def create_key_denied_when(*conditions: dict[str, Any]) -> str:
    """An identity policy allowing kms:CreateKey but for requests meeting any of `conditions`."""
    deny = [
        {"Effect": "Deny", "Action": "kms:CreateKey", "Resource": "*", "Condition": c} for c in conditions
    ]
    allow = {"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [allow, *deny]})


def test_create_key_conditions_see_the_requested_origin_and_multi_region(
    kms_client: Callable[..., Any], make_user: Any
) -> None:
    """kms:KeyOrigin and kms:MultiRegion are the request's: a policy denying them decides first."""
    document = create_key_denied_when(
        {"Bool": {"kms:MultiRegion": "true"}}, {"StringEquals": {"kms:KeyOrigin": "EXTERNAL_KEY_STORE"}}
    )
    creator = make_user("guarded-creator", document)
    for params in ({"MultiRegion": True}, {"Origin": "EXTERNAL_KEY_STORE", "XksKeyId": "abc"}):
        code, _ = error_of(lambda p=params: kms_client(creator).create_key(**p))
        assert code == "AccessDeniedException", params
        assert last_event("CreateKey").decision == "denied"


def test_create_key_takes_the_key_spec_under_either_name(
    admin_kms: Any, kms_client: Callable[..., Any], make_user: Any
) -> None:
    """CustomerMasterKeySpec alone is the key spec, as KeySpec is (AWS keeps the deprecated name working), and the
    kms:KeySpec condition sees it under either name."""
    made = admin_kms.create_key(CustomerMasterKeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert (made["KeySpec"], made["CustomerMasterKeySpec"]) == ("ECC_NIST_P256", "ECC_NIST_P256")
    document = create_key_denied_when({"StringEquals": {"kms:KeySpec": "HMAC_256"}})
    creator = make_user("spec-guarded-creator", document)
    for name in ("KeySpec", "CustomerMasterKeySpec"):
        params = {name: "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}
        assert error_of(lambda p=params: kms_client(creator).create_key(**p))[0] == "AccessDeniedException", (
            name
        )


# Multi-Region key ids


def test_a_multi_region_key_id_is_well_formed_and_names_no_key(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    """`mrk-` and 32 lowercase hex digits is a key id (kms-spec §2.5): as an id or in a key ARN it is answered
    as a well-formed key that does not exist (AWS's recorded answer), never as a malformed one."""
    create_key()
    for identifier in (MRK_ID, MRK_ARN):
        assert error_of(lambda i=identifier: admin_kms.describe_key(KeyId=i)) == MRK_MISSING
    event = last_event("DescribeKey")
    assert (event.decision, event.error_code, event.error_message) == ("failed", *MRK_MISSING)
    # Malformed multi-Region ids stay malformed (AWS: "Invalid keyId 'mrk-fake-key-id'").
    for malformed in ("mrk-fake-key-id", MRK_ID.upper(), "MRK-" + MRK_ID[4:], MRK_ID + "0", MRK_ID[:-1]):
        assert error_of(lambda m=malformed: admin_kms.describe_key(KeyId=m)) == (
            "NotFoundException",
            f"Invalid keyId '{malformed}'",
        )


def test_every_key_id_member_accepts_a_multi_region_key_id(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]], make_user: Any
) -> None:
    """Management, cryptographic, alias and grant operations parse the id alike, and it matches no key."""
    key_id = create_key()["KeyId"]
    grantee = make_user("grantee")
    grant_id = admin_kms.create_grant(KeyId=key_id, GranteePrincipal=grantee.arn, Operations=["Encrypt"])[
        "GrantId"
    ]
    calls: dict[str, Callable[[], Any]] = {
        "EnableKey": lambda: admin_kms.enable_key(KeyId=MRK_ID),
        "GetKeyPolicy": lambda: admin_kms.get_key_policy(KeyId=MRK_ARN),
        "Encrypt": lambda: admin_kms.encrypt(KeyId=MRK_ID, Plaintext=b"x"),
        "Decrypt": lambda: admin_kms.decrypt(KeyId=MRK_ID, CiphertextBlob=b"\x01" * 64),
        "CreateAlias": lambda: admin_kms.create_alias(AliasName="alias/mrk", TargetKeyId=MRK_ID),
        "ListAliases": lambda: admin_kms.list_aliases(KeyId=MRK_ID),
        "ListGrants": lambda: admin_kms.list_grants(KeyId=MRK_ID),
        "CreateGrant": lambda: admin_kms.create_grant(
            KeyId=MRK_ARN, GranteePrincipal=grantee.arn, Operations=["Encrypt"]
        ),
        "RevokeGrant": lambda: admin_kms.revoke_grant(KeyId=MRK_ID, GrantId=grant_id),
    }
    for operation, call in calls.items():
        assert error_of(call) == MRK_MISSING, operation
        assert last_event(operation).error_code == "NotFoundException", operation
    assert not Alias.objects.filter(name="alias/mrk").exists()
    assert Grant.objects.filter(grant_id=grant_id).count() == 1
