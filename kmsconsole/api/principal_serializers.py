"""Input and output serializers of the principals (accounts, users, roles, groups, their inline policies and
access keys), the caller's API tokens, key rotations and retirable grants. Inputs check shapes only: names,
paths, documents and limits are checked once, by the services."""

from __future__ import annotations

from rest_framework import serializers

from kmsconsole.api.serializers import GrantOutput
from policies.models import AccessKey

# Inputs.


class AccountCreateInput(serializers.Serializer):
    account_id = serializers.CharField(help_text="12 digits.")


class EntityCreateInput(serializers.Serializer):
    name = serializers.CharField(trim_whitespace=False)
    path = serializers.CharField(required=False, default="/", trim_whitespace=False)


class MemberAddInput(serializers.Serializer):
    user_name = serializers.CharField(trim_whitespace=False)


class IdentityPolicyPutInput(serializers.Serializer):
    document = serializers.CharField(trim_whitespace=False, help_text="The policy document (JSON text).")


class AccessKeyUpdateInput(serializers.Serializer):
    status = serializers.ChoiceField(choices=AccessKey.Status.choices)


class ApiTokenCreateInput(serializers.Serializer):
    name = serializers.CharField(required=False, default="", allow_blank=True, max_length=128)
    expires_in_days = serializers.IntegerField(
        required=False,
        default=None,
        allow_null=True,
        help_text="Days until the token expires (1-3650); default KMS_API_TOKEN_TTL_DAYS (90).",
    )


# Outputs.


class AccountOutput(serializers.Serializer):
    account_id = serializers.CharField()
    root_arn = serializers.CharField()
    created_at = serializers.DateTimeField()


class EntityOutput(serializers.Serializer):
    name = serializers.CharField()
    path = serializers.CharField()
    arn = serializers.CharField()
    unique_id = serializers.CharField()
    created_at = serializers.DateTimeField()


class RoleOutput(EntityOutput):
    max_session_seconds = serializers.IntegerField()


class GroupDetailOutput(EntityOutput):
    users = EntityOutput(many=True, help_text="The group's members, by name.")


class IdentityPolicySummaryOutput(serializers.Serializer):
    policy_name = serializers.CharField(source="name")
    updated_at = serializers.DateTimeField()


class IdentityPolicyOutput(IdentityPolicySummaryOutput):
    document = serializers.CharField()


class AccessKeyOutput(serializers.Serializer):
    access_key_id = serializers.CharField()
    user_name = serializers.CharField(source="user.name")
    status = serializers.CharField()
    created_at = serializers.DateTimeField()


class AccessKeyCreatedOutput(serializers.Serializer):
    access_key_id = serializers.CharField()
    user_name = serializers.CharField(source="owner_name")
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    secret_access_key = serializers.CharField(
        help_text="Shown once, in this response; never stored in clear."
    )


class ApiTokenOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField(allow_null=True)


class ApiTokenCreatedOutput(ApiTokenOutput):
    token = serializers.CharField(help_text="`kmsc_<prefix>_<secret>`: shown once, in this response.")


class KeyRotationOutput(serializers.Serializer):
    key_material_id = serializers.CharField(source="material_id")
    rotation_type = serializers.CharField(
        help_text="AUTOMATIC or ON_DEMAND; empty for the original material."
    )
    rotation_date = serializers.DateTimeField(source="created_at")
    is_current = serializers.BooleanField()


class RetirableGrantOutput(GrantOutput):
    key_arn = serializers.CharField(source="key.arn")
