"""Serializers of the access analyzer and the policy simulator (kmsconsole/api/views/analyzer.py). Inputs check
shapes only; the services (policies/analyzer/services.py) check values and limits."""

from __future__ import annotations

from rest_framework import serializers

from kmsconsole.api.serializers import StrictBooleanField

# Inputs.


class PolicyCompareInput(serializers.Serializer):
    policy = serializers.CharField(trim_whitespace=False, help_text="The draft key policy (JSON text).")


class FindingsQuery(serializers.Serializer):
    severity = serializers.CharField(required=False, default=None, allow_null=True, allow_blank=True)
    after = serializers.CharField(required=False, default=None, allow_null=True, allow_blank=True)
    limit = serializers.IntegerField(required=False, default=None, allow_null=True)


class DraftIdentityPolicyInput(serializers.Serializer):
    name = serializers.CharField(
        help_text="The identity policy the draft replaces, or the name it is added as."
    )
    document = serializers.CharField(trim_whitespace=False)


class SimulationInput(serializers.Serializer):
    principal = serializers.CharField(
        help_text="ARN of a user, role, role session or account root (or account id)."
    )
    action = serializers.CharField(help_text="A KMS action on a key, such as kms:Decrypt.")
    key_id = serializers.CharField(
        help_text="Key id, key ARN, alias name or alias ARN, in the caller's account."
    )
    encryption_context = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False, default=None
    )
    grant_tokens = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    source_ip = serializers.CharField(required=False, default=None, allow_null=True, allow_blank=True)
    time = serializers.DateTimeField(required=False, default=None, allow_null=True, help_text="Default: now.")
    secure_transport = StrictBooleanField(required=False, default=None, allow_null=True)
    draft_key_policy = serializers.CharField(
        required=False, default=None, allow_null=True, trim_whitespace=False
    )
    draft_identity_policy = DraftIdentityPolicyInput(required=False, default=None, allow_null=True)


# Outputs.


class StatementRefOutput(serializers.Serializer):
    policy_kind = serializers.CharField()
    policy_name = serializers.CharField()
    index = serializers.IntegerField(help_text="0-based position in the policy.")
    sid = serializers.CharField(allow_null=True)


class RouteOutput(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=["key-policy", "identity-policy", "cross-account", "grant", "root"]
    )
    reason = serializers.CharField()
    statement = StatementRefOutput(allow_null=True)
    supporting = StatementRefOutput(many=True)
    grant_id = serializers.CharField(allow_null=True)


class WayOutput(serializers.Serializer):
    when = serializers.CharField(help_text="The facts about the request that must all hold.")
    route = RouteOutput()


class VerdictOutput(serializers.Serializer):
    action = serializers.CharField()
    access = serializers.ChoiceField(choices=["allowed", "conditional", "denied"])
    explanation = serializers.CharField()
    route = RouteOutput(allow_null=True)
    conditions = WayOutput(many=True)
    exact = serializers.BooleanField(
        help_text="False when too many conditions were in play to enumerate them."
    )


class PrincipalAccessOutput(serializers.Serializer):
    arn = serializers.CharField(help_text='"*" stands for any principal of any account.')
    kind = serializers.CharField()
    account_id = serializers.CharField()
    label = serializers.CharField()
    access = VerdictOutput(many=True)


class FindingOutput(serializers.Serializer):
    key_id = serializers.CharField()
    key_arn = serializers.CharField()
    source = serializers.ChoiceField(choices=["policy", "store"])
    id = serializers.CharField()
    severity = serializers.ChoiceField(choices=["high", "medium", "low"])
    title = serializers.CharField()
    detail = serializers.CharField()
    fix = serializers.CharField()
    statement_index = serializers.IntegerField(allow_null=True)
    sid = serializers.CharField(allow_null=True)
    principals = serializers.ListField(child=serializers.CharField())


class KeyAccessOutput(serializers.Serializer):
    key_id = serializers.CharField()
    key_arn = serializers.CharField()
    actions = serializers.ListField(child=serializers.CharField())
    principals = PrincipalAccessOutput(many=True)
    findings = FindingOutput(many=True)


class AccessChangeOutput(serializers.Serializer):
    principal = serializers.CharField()
    label = serializers.CharField()
    action = serializers.CharField()
    direction = serializers.ChoiceField(choices=["gains", "loses", "changes"])
    before = serializers.CharField(help_text="The access under the current policy, in words.")
    after = serializers.CharField(help_text="The access under the draft, in words.")


class PolicyComparisonOutput(serializers.Serializer):
    key_id = serializers.CharField()
    gains = AccessChangeOutput(many=True)
    losses = AccessChangeOutput(many=True)
    changes = AccessChangeOutput(many=True, help_text="Conditional before and after, under other conditions.")


class CredentialFindingOutput(serializers.Serializer):
    access_key_id = serializers.CharField()
    owner_arn = serializers.CharField()
    id = serializers.ChoiceField(choices=["access-key-unused", "access-key-old"])
    severity = serializers.ChoiceField(choices=["high", "medium", "low"])
    title = serializers.CharField()
    detail = serializers.CharField()
    fix = serializers.CharField()
    principals = serializers.ListField(child=serializers.CharField())


class FindingsPageOutput(serializers.Serializer):
    findings = FindingOutput(many=True)
    credential_findings = CredentialFindingOutput(
        many=True,
        help_text="The account's long-term access keys that are unused or due for rotation (first page).",
    )
    keys_analysed = serializers.IntegerField()
    keys_hidden = serializers.IntegerField(help_text="Keys left out: the caller may not read their policy.")
    next_after = serializers.CharField(allow_null=True, help_text="Pass as `after` for the next keys.")


class DraftIdentityOutput(serializers.Serializer):
    name = serializers.CharField()
    replaced = serializers.BooleanField()


class SimulationOutput(serializers.Serializer):
    allowed = serializers.BooleanField()
    decision = serializers.ChoiceField(choices=["allowed", "denied"])
    reason = serializers.CharField()
    explanation = serializers.CharField()
    access_denied_message = serializers.CharField(allow_blank=True)
    statement = StatementRefOutput(allow_null=True)
    supporting = StatementRefOutput(many=True)
    grant_id = serializers.CharField(allow_null=True)
    trace = serializers.ListField(child=serializers.CharField())
    principal = serializers.CharField()
    caller_arn = serializers.CharField()
    action = serializers.CharField()
    key_arn = serializers.CharField()
    identity_policies = serializers.ListField(child=serializers.CharField())
    used_draft_key_policy = serializers.BooleanField()
    draft_identity_policy = DraftIdentityOutput(allow_null=True)
    notes = serializers.ListField(child=serializers.CharField())
