"""Serializers of the access analyzer and the policy simulator (kmsconsole/api/views/analyzer.py). Inputs check
shapes only; the services (policies/analyzer/services.py) check values and limits."""

from __future__ import annotations

from rest_framework import serializers

from kmsconsole.api.serializers import QueryWholeNumberField, StrictBooleanField, StrictCharField, StrictInput

# Inputs.


class PolicyCompareInput(StrictInput):
    policy = StrictCharField(trim_whitespace=False, help_text="The draft key policy (JSON text).")


class FindingsQuery(serializers.Serializer):
    severity = StrictCharField(required=False, default=None, allow_null=True, allow_blank=True)
    after = StrictCharField(required=False, default=None, allow_null=True, allow_blank=True)
    limit = QueryWholeNumberField(required=False, default=None, allow_null=True)


class DraftIdentityPolicyInput(StrictInput):
    name = StrictCharField(help_text="The identity policy the draft replaces, or the name it is added as.")
    document = StrictCharField(trim_whitespace=False)


class SimulationInput(StrictInput):
    principal = StrictCharField(
        help_text="ARN of a user, role, role session or account root (or account id)."
    )
    action = StrictCharField(help_text="A KMS action on a key, such as kms:Decrypt.")
    key_id = StrictCharField(help_text="Key id, key ARN, alias name or alias ARN, in the caller's account.")
    encryption_context = serializers.DictField(
        child=StrictCharField(allow_blank=True, trim_whitespace=False), required=False, default=None
    )
    grant_tokens = serializers.ListField(child=StrictCharField(), required=False, default=list)
    source_ip = StrictCharField(required=False, default=None, allow_null=True, allow_blank=True)
    time = serializers.DateTimeField(required=False, default=None, allow_null=True, help_text="Default: now.")
    secure_transport = StrictBooleanField(required=False, default=None, allow_null=True)
    draft_key_policy = StrictCharField(required=False, default=None, allow_null=True, trim_whitespace=False)
    draft_identity_policy = DraftIdentityPolicyInput(required=False, default=None, allow_null=True)


# Outputs.


class StatementRefOutput(serializers.Serializer):
    policy_kind = StrictCharField()
    policy_name = StrictCharField(
        allow_null=True, help_text="Null where `shown_as` stands for the statement."
    )
    index = serializers.IntegerField(allow_null=True, help_text="0-based position in the policy.")
    sid = StrictCharField(allow_null=True)
    shown_as = StrictCharField(
        allow_null=True,
        default=None,
        help_text=(
            "Set (and the name, position and Sid null) for another account's identity policy, shown to the key "
            'owner: "an identity policy of the caller\'s account".'
        ),
    )


class RouteOutput(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=["key-policy", "identity-policy", "cross-account", "grant", "root"]
    )
    reason = StrictCharField()
    statement = StatementRefOutput(allow_null=True)
    supporting = StatementRefOutput(many=True)
    grant_id = StrictCharField(allow_null=True)


class WayOutput(serializers.Serializer):
    when = StrictCharField(help_text="The facts about the request that must all hold.")
    route = RouteOutput()


class VerdictOutput(serializers.Serializer):
    action = StrictCharField()
    access = serializers.ChoiceField(choices=["allowed", "conditional", "denied"])
    explanation = StrictCharField()
    route = RouteOutput(allow_null=True)
    conditions = WayOutput(many=True)
    exact = serializers.BooleanField(
        help_text="False when too many conditions were in play to enumerate them."
    )


class PrincipalAccessOutput(serializers.Serializer):
    arn = StrictCharField(help_text='"*" stands for any principal of any account.')
    kind = StrictCharField()
    account_id = StrictCharField()
    label = StrictCharField()
    access = VerdictOutput(many=True)


class FindingOutput(serializers.Serializer):
    key_id = StrictCharField()
    key_arn = StrictCharField()
    source = serializers.ChoiceField(choices=["policy", "store"])
    id = StrictCharField()
    severity = serializers.ChoiceField(choices=["high", "medium", "low"])
    title = StrictCharField()
    detail = StrictCharField()
    fix = StrictCharField()
    statement_index = serializers.IntegerField(allow_null=True)
    sid = StrictCharField(allow_null=True)
    principals = serializers.ListField(child=StrictCharField())


class KeyAccessOutput(serializers.Serializer):
    key_id = StrictCharField()
    key_arn = StrictCharField()
    actions = serializers.ListField(child=StrictCharField())
    principals = PrincipalAccessOutput(many=True)
    findings = FindingOutput(many=True)


class AccessChangeOutput(serializers.Serializer):
    principal = StrictCharField()
    label = StrictCharField()
    action = StrictCharField()
    direction = serializers.ChoiceField(choices=["gains", "loses", "changes"])
    before = StrictCharField(help_text="The access under the current policy, in words.")
    after = StrictCharField(help_text="The access under the draft, in words.")


class PolicyComparisonOutput(serializers.Serializer):
    key_id = StrictCharField()
    gains = AccessChangeOutput(many=True)
    losses = AccessChangeOutput(many=True)
    changes = AccessChangeOutput(many=True, help_text="Conditional before and after, under other conditions.")


class CredentialFindingOutput(serializers.Serializer):
    access_key_id = StrictCharField()
    owner_arn = StrictCharField()
    id = serializers.ChoiceField(choices=["access-key-unused", "access-key-old"])
    severity = serializers.ChoiceField(choices=["high", "medium", "low"])
    title = StrictCharField()
    detail = StrictCharField()
    fix = StrictCharField()
    principals = serializers.ListField(child=StrictCharField())


class FindingsPageOutput(serializers.Serializer):
    findings = FindingOutput(many=True)
    credential_findings = CredentialFindingOutput(
        many=True,
        help_text="The account's long-term access keys that are unused or due for rotation (first page).",
    )
    keys_analysed = serializers.IntegerField()
    keys_hidden = serializers.IntegerField(help_text="Keys left out: the caller may not read their policy.")
    next_after = StrictCharField(allow_null=True, help_text="Pass as `after` for the next keys.")


class DraftIdentityOutput(serializers.Serializer):
    name = StrictCharField()
    replaced = serializers.BooleanField()


class SimulationOutput(serializers.Serializer):
    allowed = serializers.BooleanField()
    decision = serializers.ChoiceField(choices=["allowed", "denied"])
    reason = StrictCharField()
    explanation = StrictCharField()
    access_denied_message = StrictCharField(allow_blank=True)
    statement = StatementRefOutput(allow_null=True)
    supporting = StatementRefOutput(many=True)
    grant_id = StrictCharField(allow_null=True)
    trace = serializers.ListField(child=StrictCharField())
    principal = StrictCharField()
    caller_arn = StrictCharField()
    action = StrictCharField()
    key_arn = StrictCharField()
    identity_policies = serializers.ListField(child=StrictCharField())
    used_draft_key_policy = serializers.BooleanField()
    draft_identity_policy = DraftIdentityOutput(allow_null=True)
    notes = serializers.ListField(child=StrictCharField())
