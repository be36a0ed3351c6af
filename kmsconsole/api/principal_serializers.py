"""Input and output serializers of the principals (accounts, users, roles, groups, their inline policies and
access keys), the caller's API tokens, key rotations and retirable grants. Inputs check shapes only: names,
paths, documents and limits are checked once, by the services."""

from __future__ import annotations

from rest_framework import serializers

from kmsconsole.api.serializers import GrantOutput, StrictCharField, StrictInput, StrictIntegerField
from policies.models import AccessKey

# Inputs.


class AccountCreateInput(StrictInput):
    account_id = StrictCharField(help_text="12 digits.")


class EntityCreateInput(StrictInput):
    name = StrictCharField(trim_whitespace=False)
    path = StrictCharField(required=False, default="/", trim_whitespace=False)


class MemberAddInput(StrictInput):
    user_name = StrictCharField(trim_whitespace=False)


class IdentityPolicyPutInput(StrictInput):
    document = StrictCharField(trim_whitespace=False, help_text="The policy document (JSON text).")


class AccessKeyUpdateInput(StrictInput):
    status = serializers.ChoiceField(choices=AccessKey.Status.choices)


class ApiTokenCreateInput(StrictInput):
    name = StrictCharField(required=False, default="", allow_blank=True, max_length=128)
    expires_in_days = StrictIntegerField(
        required=False,
        default=None,
        allow_null=True,
        help_text="Days until the token expires (1-3650); default KMS_API_TOKEN_TTL_DAYS (90).",
    )


# Outputs.


class AccountOutput(serializers.Serializer):
    account_id = StrictCharField()
    root_arn = StrictCharField()
    created_at = serializers.DateTimeField()


class EntityOutput(serializers.Serializer):
    name = StrictCharField()
    path = StrictCharField()
    arn = StrictCharField()
    unique_id = StrictCharField()
    created_at = serializers.DateTimeField()


class RoleOutput(EntityOutput):
    max_session_seconds = serializers.IntegerField()


class GroupDetailOutput(EntityOutput):
    users = EntityOutput(many=True, help_text="The group's members, by name.")


class IdentityPolicySummaryOutput(serializers.Serializer):
    policy_name = StrictCharField(source="name")
    updated_at = serializers.DateTimeField()


class IdentityPolicyOutput(IdentityPolicySummaryOutput):
    document = StrictCharField()


class AccessKeyOutput(serializers.Serializer):
    access_key_id = StrictCharField()
    user_name = StrictCharField(source="user.name")
    status = StrictCharField()
    created_at = serializers.DateTimeField()


class AccessKeyCreatedOutput(serializers.Serializer):
    access_key_id = StrictCharField()
    user_name = StrictCharField(source="owner_name")
    status = StrictCharField()
    created_at = serializers.DateTimeField()
    secret_access_key = StrictCharField(help_text="Shown once, in this response; never stored in clear.")


class ApiTokenOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = StrictCharField()
    prefix = StrictCharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField(allow_null=True)


class ApiTokenCreatedOutput(ApiTokenOutput):
    token = StrictCharField(help_text="`kmsc_<prefix>_<secret>`: shown once, in this response.")


class KeyRotationOutput(serializers.Serializer):
    key_material_id = StrictCharField(source="material_id")
    rotation_type = StrictCharField(help_text="AUTOMATIC or ON_DEMAND; empty for the original material.")
    rotation_date = serializers.DateTimeField(source="created_at")
    is_current = serializers.BooleanField()


class RetirableGrantOutput(GrantOutput):
    key_arn = StrictCharField(source="key.arn")
