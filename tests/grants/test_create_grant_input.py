"""CreateGrant's input rules that every interface relies on the service for: operations must suit the key's usage
(not only its type), only known grant constraints are taken, and Name keeps AWS's length and pattern. Checked
through the service and through the REST API, whose serializers leave business rules to the service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from grants import services
from grants.models import Grant
from keys.models import Key
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core import errors
from policies.models import Account
from tests.api.conftest import client_with, make_key, token_for
from tests.conftest import Persona, as_operator

pytestmark = pytest.mark.django_db

NAME_PATTERN_ERROR = (
    "1 validation error detected: Value '{}' at 'name' failed to satisfy constraint: "
    "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
)


@pytest.fixture
def admin_api(account: Account, admin: Persona) -> APIClient:
    return client_with(token_for(account, admin.name))


def create_grant(key: Key, grantee: Persona, operations: list[str], **options: Any) -> services.CreatedGrant:
    created: services.CreatedGrant = as_operator(
        "CreateGrant",
        lambda ctx: services.grant_create(
            ctx=ctx, key_id=str(key.key_id), grantee_principal=grantee.arn, operations=operations, **options
        ),
    )
    return created


def refusal(create: Callable[[], Any]) -> str:
    with pytest.raises(errors.ValidationException) as raised:
        create()
    return raised.value.message


@pytest.mark.parametrize(
    ("key_spec", "key_usage", "allowed", "refused"),
    [
        (
            "RSA_2048", "ENCRYPT_DECRYPT",
            ["Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey", "DescribeKey", "CreateGrant",
             "RetireGrant"],
            ["Sign", "Verify", "GenerateMac", "VerifyMac", "DeriveSharedSecret", "GenerateDataKey",
             "GenerateDataKeyPair"],
        ),
        (
            "RSA_2048", "SIGN_VERIFY",
            ["Sign", "Verify", "GetPublicKey", "DescribeKey", "CreateGrant", "RetireGrant"],
            ["Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GenerateDataKey",
             "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext",
             "DeriveSharedSecret", "GenerateMac"],
        ),
        (
            "ECC_NIST_P384", "KEY_AGREEMENT",
            ["DeriveSharedSecret", "GetPublicKey", "DescribeKey", "CreateGrant", "RetireGrant"],
            ["Sign", "Verify", "Encrypt", "Decrypt", "ReEncryptFrom", "GenerateDataKey", "GenerateMac",
             "Encapsulate"],
        ),
        (
            "ML_KEM_768", "ENCAPSULATE_DECAPSULATE",
            ["Encapsulate", "Decapsulate", "GetPublicKey", "DescribeKey", "CreateGrant", "RetireGrant"],
            ["Sign", "Verify", "Encrypt", "Decrypt", "DeriveSharedSecret", "GenerateDataKey",
             "GenerateDataKeyPair", "GenerateMac"],
        ),
        (
            "ML_DSA_44", "SIGN_VERIFY",
            ["Sign", "Verify", "GetPublicKey", "DescribeKey", "CreateGrant", "RetireGrant"],
            ["Encapsulate", "Decapsulate", "Encrypt", "DeriveSharedSecret", "GenerateDataKeyPair"],
        ),
    ],
)  # fmt: skip
def test_operations_must_suit_the_key_usage(
    make_user: Callable[..., Persona], key_spec: str, key_usage: str, allowed: list[str], refused: list[str]
) -> None:
    key = make_key(key_spec=key_spec, key_usage=key_usage)
    user = make_user("user")
    create_grant(key, user, allowed)
    for operation in refused:
        message = refusal(lambda operation=operation: create_grant(key, user, ["DescribeKey", operation]))
        assert message == (
            f"{operation} is not a valid grant operation for a KMS key with KeySpec {key_spec} and KeyUsage "
            f"{key_usage}."
        )
    assert Grant.objects.filter(key=key).count() == 1


def test_the_rest_api_refuses_an_operation_the_key_usage_cannot_perform(
    admin: Persona, admin_api: APIClient
) -> None:
    key = make_key(key_spec="RSA_2048", key_usage="ENCRYPT_DECRYPT")
    response = admin_api.post(
        f"/api/v1/keys/{key.key_id}/grants",
        {"grantee_principal": admin.arn, "operations": ["Sign"]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "ValidationException"
    assert not Grant.objects.filter(key=key).exists()


@pytest.mark.parametrize(
    ("constraints", "unknown"),
    [
        ({"Bogus": {"a": "b"}}, "Bogus"),
        ({"encryption_context_equals": {"a": "b"}}, "encryption_context_equals"),
        (
            {"EncryptionContextSubset": {"a": "b"}, "encryptioncontextequals": {"a": "b"}},
            "encryptioncontextequals",
        ),
        ({"Bogus": {}}, "Bogus"),
    ],
)
def test_unknown_constraints_are_refused_not_dropped(
    admin: Persona, admin_api: APIClient, constraints: dict[str, Any], unknown: str
) -> None:
    key = make_key()
    response = admin_api.post(
        f"/api/v1/keys/{key.key_id}/grants",
        {"grantee_principal": admin.arn, "operations": ["Decrypt"], "constraints": constraints},
        format="json",
    )
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "ValidationException" and unknown in error["message"]
    assert not Grant.objects.filter(key=key).exists()
    event = AuditEvent.objects.filter(operation="CreateGrant").order_by("-seq").first()
    assert event is not None and event.error_code == "ValidationException"
    # The service refuses them itself, whatever the interface.
    message = refusal(lambda: create_grant(key, admin, ["Decrypt"], constraints=constraints))
    assert message == error["message"]


def test_known_constraints_still_make_a_constrained_grant(admin: Persona, admin_api: APIClient) -> None:
    key = make_key()
    constraints = {"EncryptionContextEquals": {"tenant": "42"}}
    response = admin_api.post(
        f"/api/v1/keys/{key.key_id}/grants",
        {"grantee_principal": admin.arn, "operations": ["Decrypt"], "constraints": constraints},
        format="json",
    )
    assert response.status_code == 201
    assert Grant.objects.get(key=key).constraints == constraints


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "n" * 257,
            "1 validation error detected: Value '"
            + "n" * 256
            + "...' at 'name' failed to satisfy constraint: "
            "Member must have length less than or equal to 256",
        ),
        (
            "n" * 1000,
            "1 validation error detected: Value '"
            + "n" * 256
            + "...' at 'name' failed to satisfy constraint: "
            "Member must have length less than or equal to 256",
        ),
        ("bad name!", NAME_PATTERN_ERROR.format("bad name!")),
        ("dot.ted", NAME_PATTERN_ERROR.format("dot.ted")),
        ("tab\there", NAME_PATTERN_ERROR.format("tab\there")),
        (
            "",
            "1 validation error detected: Value '' at 'name' failed to satisfy constraint: "
            "Member must have length greater than or equal to 1",
        ),
    ],
)
def test_name_must_fit_aws_length_and_pattern(admin: Persona, name: str, message: str) -> None:
    key = make_key()
    assert refusal(lambda: create_grant(key, admin, ["Decrypt"], name=name)) == message
    assert not Grant.objects.filter(key=key).exists()


def test_the_rest_api_reports_a_bad_name_as_a_validation_error_not_a_500(
    admin: Persona, admin_api: APIClient
) -> None:
    key = make_key()
    for name in ("n" * 1000, "bad name!"):
        response = admin_api.post(
            f"/api/v1/keys/{key.key_id}/grants",
            {"grantee_principal": admin.arn, "operations": ["Decrypt"], "name": name},
            format="json",
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "ValidationException" and "at 'name' failed to satisfy" in error["message"]
    assert not Grant.objects.filter(key=key).exists()


def test_names_at_the_limits_are_taken(admin: Persona) -> None:
    key = make_key()
    longest = "a" * services.GRANT_NAME_MAX_LENGTH
    every_character = "aZ09:/_-"
    assert Grant._meta.get_field("name").max_length == services.GRANT_NAME_MAX_LENGTH
    for name in ("x", longest, every_character):
        created = create_grant(key, admin, ["Decrypt"], name=name)
        assert created.grant.name == name


def test_only_ascii_digits_name_an_account() -> None:
    from grants.services.principals import normalize_principal

    assert normalize_principal("111122223333") == "arn:aws:iam::111122223333:root"
    full_width = "\uff11" * 12  # twelve full-width ones: digits to str.isdigit(), not an account id
    assert normalize_principal(full_width) == full_width
