"""Input and output serializers of the REST API. Inputs only check shapes and types: business limits (windows,
periods, sizes, key specs) live once, in the services, which raise the errors the API reports. Outputs are
read-only descriptions of what the services return; nothing here ever saves a model."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from keys.models import KeyState
from kmsconsole.api.key_listing import SEARCH_MAX_LENGTH, ListedKey, only_by_creation
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.scope import DEFAULT_SCOPE, Scope, parse_scope, scope_problem
from kmsconsole.core.text import shortened
from kmsconsole.jobs.models import JobRun, ShownRun

# The serializer context entry of what the caller may see of each job run (kmsconsole.api.reads.shown_runs).
SHOWN_RUNS = "shown_runs"
# The serializer context entry of the scope audit events are read through (kmsconsole.audit.scope).
AUDIT_SCOPE = "audit_scope"

# Inputs.


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false, nothing else. DRF's BooleanField also takes "true", "yes", 1 and "on": a view that
    reads the raw body to pick its operation (EnableKeyRotation or DisableKeyRotation) would then authorize one
    operation and the service do the other."""

    default_error_messages = {"invalid": "Must be true or false (a JSON boolean)."}

    def to_internal_value(self, data: object) -> bool:
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)
        raise AssertionError("fail() raises")  # pragma: no cover


class StrictCharField(serializers.CharField):  # noqa: TID251 - the one subclass
    """A JSON string, nothing else: DRF's CharField turns a number into its text, so `{"description": 123}` was
    stored as "123" where the KMS endpoint refuses it (SerializationException). Every text field of every
    serializer of the API is this one (a test walks them all), outputs too, which it does not change."""

    default_error_messages = {
        "invalid": "Must be a string (a JSON string), not a number, boolean, list or object."
    }

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        text: str = super().to_internal_value(data)
        return text


class StrictIntegerField(serializers.IntegerField):
    """A whole JSON number, nothing else: DRF's IntegerField also takes "7", 7.0 and true, where the KMS endpoint
    refuses them (SerializationException). For JSON bodies only: a query string's numbers are text
    (QueryWholeNumberField). Every integer of every `...Input` serializer is this one (a test walks them)."""

    default_error_messages = {
        "invalid": "Must be a whole number (a JSON number), not a string, boolean or float."
    }

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        number: int = super().to_internal_value(data)
        return number


class QueryWholeNumberField(serializers.IntegerField):
    """A query string's whole number: ASCII digits and nothing else, as `page_size` takes them
    (kmsconsole.api.filters.whole_number). DRF's IntegerField also takes " 7", "+7", "7.0" and non-ASCII digits,
    which a client that sent them did not mean as the number they become. Every integer of every `...Query`
    serializer is this one (a test walks them)."""

    default_error_messages = {"invalid": "Must be a whole number, written in the digits 0-9 only."}

    def to_internal_value(self, data: object) -> int:
        if not (isinstance(data, str) and data.isascii() and data.isdigit()):
            self.fail("invalid")
        number: int = super().to_internal_value(data)
        return number


class StrictInput(serializers.Serializer):
    """A JSON object whose members are the serializer's fields and nothing else. DRF drops a member it does not
    know: `{"pending_window_in_days": 6}` scheduled a deletion with the default 30-day window instead of being
    refused, and `{"KeySpec": "RSA_2048"}` made a symmetric key. Each unknown member is a 400 naming it (at most
    UNKNOWN_MEMBERS_NAMED of them, each name shortened), with the field it most likely meant. Every `...Input`
    serializer is one (a test walks them)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = [name for name in data if name not in self.fields]
            if unknown:
                raise serializers.ValidationError(unknown_members(unknown, list(self.fields)))
        return super().to_internal_value(data)


# A body of 900 unknown members is refused with the first few named, not 900 messages.
UNKNOWN_MEMBERS_NAMED = 5


def unknown_members(unknown: list[str], known: list[str]) -> dict[str, list[str]]:
    """The error detail for members a body should not have: each by its (shortened) name, with the field of the
    same words if there is one (`PendingWindowInDays` or `pending_window_in_days` for `pending_window_days`)."""
    problems: dict[str, list[str]] = {}
    for name in unknown[:UNKNOWN_MEMBERS_NAMED]:
        shown = shortened(name, FIELD_NAME_CHARS)
        # Only a name shown whole is matched: a hint for a 2 MB name would cost seconds and help no one.
        guess = [] if shown != name else difflib.get_close_matches(snake_case(name), known, n=1, cutoff=0.75)
        hint = f" Did you mean '{guess[0]}'?" if guess else f" It takes: {', '.join(known)}."
        problems[shown] = [f"Unknown field.{hint}"]
    # Counted from what is named, so names that shorten alike are not lost from the count.
    others = len(unknown) - len(problems)
    if others:
        problems["(others)"] = [f"{others} more unknown field{'s' if others > 1 else ''}."]
    return problems


# The longest an unknown member's name is repeated in an error (a name is a few dozen characters at most).
FIELD_NAME_CHARS = 64


def snake_case(name: str) -> str:
    """`PendingWindowInDays` as `pending_window_in_days` (AWS's member names as this API would spell them)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


class TagInput(StrictInput):
    tag_key = StrictCharField(allow_blank=True, trim_whitespace=False)
    tag_value = StrictCharField(allow_blank=True, trim_whitespace=False)


class KeyCreateInput(StrictInput):
    description = StrictCharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    key_spec = StrictCharField(required=False, default=None, allow_null=True)
    key_usage = StrictCharField(required=False, default=None, allow_null=True)
    policy = StrictCharField(required=False, default=None, allow_null=True, trim_whitespace=False)
    bypass_lockout_safety_check = StrictBooleanField(required=False, default=False)
    tags = TagInput(many=True, required=False, default=list)


class KeyUpdateInput(StrictInput):
    description = StrictCharField(allow_blank=True, trim_whitespace=False)


class ScheduleDeletionInput(StrictInput):
    pending_window_days = StrictIntegerField(required=False, default=None, allow_null=True)


class RotationSettingsInput(StrictInput):
    enabled = StrictBooleanField()
    rotation_period_days = StrictIntegerField(required=False, default=None, allow_null=True)


class PolicyPutInput(StrictInput):
    policy = StrictCharField(trim_whitespace=False)
    bypass_lockout_safety_check = StrictBooleanField(required=False, default=False)


class PolicyValidateInput(StrictInput):
    policy = StrictCharField(trim_whitespace=False)


class PolicyRestoreInput(StrictInput):
    bypass_lockout_safety_check = StrictBooleanField(required=False, default=False)


class AliasCreateInput(StrictInput):
    alias_name = StrictCharField()
    target_key_id = StrictCharField()


class AliasUpdateInput(StrictInput):
    target_key_id = StrictCharField()


class TagsPutInput(StrictInput):
    tags = TagInput(many=True, allow_empty=False)


class TagsDeleteInput(StrictInput):
    """The query string of UntagResource: `tag_key`, repeated (named as sent, so its errors name it)."""

    # A blank key names the empty-key tags stored before tag keys had a minimum length (keys.tag_rules).
    tag_key = serializers.ListField(
        child=StrictCharField(trim_whitespace=False, allow_blank=True),
        allow_empty=False,
        error_messages={"empty": "Name at least one tag key: ?tag_key=<key>, repeated for more."},
    )


class GrantCreateInput(StrictInput):
    grantee_principal = StrictCharField()
    operations = serializers.ListField(child=StrictCharField(), allow_empty=False)
    retiring_principal = StrictCharField(required=False, default=None, allow_null=True)
    name = StrictCharField(required=False, default=None, allow_null=True)
    constraints = serializers.DictField(
        child=serializers.DictField(child=StrictCharField()),
        required=False,
        default=None,
        allow_null=True,
    )


class RetirableGrantsQuery(serializers.Serializer):
    retiring_principal = StrictCharField()


class AuditScopeQuery(serializers.Serializer):
    scope = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)

    def validate_scope(self, value: str) -> Scope:
        # The console's words for a scope that is not one (kmsconsole.audit.scope.scope_problem), one source.
        if problem := scope_problem(value):
            raise serializers.ValidationError(problem)
        return parse_scope(value)


class KeyListQuery(serializers.Serializer):
    """The key list's query parameters (kmsconsole.api.key_listing)."""

    search = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=SEARCH_MAX_LENGTH,
        help_text="One case-insensitive text (not split into terms). A whole key id or key ARN finds that key; a "
        "search starting with `alias/` matches alias names, and only for a caller allowed kms:ListAliases; any "
        "other text matches part of a key id, of an alias name (where aliases are shown) or of a description "
        "(only on keys the caller may describe). Never tags.",
    )
    state = serializers.ChoiceField(
        choices=KeyState.choices,
        required=False,
        allow_blank=True,
        help_text="Only keys in this state, among the keys the caller may describe (kms:DescribeKey).",
    )
    key_spec = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=64,
        help_text="Only keys of this spec, among the keys the caller may describe.",
    )
    key_usage = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=64,
        help_text="Only keys of this usage, among the keys the caller may describe.",
    )
    ordering = serializers.ChoiceField(
        choices=[("created_at", "oldest first"), ("-created_at", "newest first")],
        required=False,
        default="created_at",
        error_messages={
            "invalid_choice": '"{input}" is not an order of the key list. '
            + only_by_creation("`created_at`, oldest first, or `-created_at`, newest first")
        },
        help_text="Creation order (ListKeys' order), oldest first by default. Ordering by description, state or "
        "key spec is refused: it would place a key by what the caller may not see.",
    )
    cursor = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=256,
        help_text="Continues a searched or filtered list: take it from the `next` link. Opens only for the same "
        "account, search, filters and ordering; anything else is a 400 InvalidMarkerException.",
    )


# Outputs.


class KeySummaryOutput(serializers.Serializer):
    """A listed key. ListKeys gives `key_id` and `arn` only: every other field is another request's answer, shown
    only where that request by the caller would be allowed (decided by the policy engine, recorded only on the
    list's ListKeys event), else null."""

    key_id = serializers.UUIDField()
    arn = StrictCharField()
    described = serializers.BooleanField(
        help_text="Whether a DescribeKey request by the caller on this key would be allowed (key policy, identity "
        "policies and the caller's grants): only then are description, state, key_spec, key_usage, origin, "
        "created_at and deletion_date shown; otherwise they are null."
    )
    description = StrictCharField(allow_null=True, help_text="null unless `described`.")
    state = StrictCharField(allow_null=True, help_text="null unless `described`.")
    key_spec = StrictCharField(allow_null=True, help_text="null unless `described`.")
    key_usage = StrictCharField(allow_null=True, help_text="null unless `described`.")
    origin = StrictCharField(allow_null=True, help_text="null unless `described`.")
    created_at = serializers.DateTimeField(allow_null=True, help_text="null unless `described`.")
    deletion_date = serializers.DateTimeField(
        allow_null=True, help_text="null unless `described`, or when no deletion is scheduled."
    )
    rotation_enabled = serializers.BooleanField(
        allow_null=True,
        help_text="Whether automatic rotation is on, where the key policy lets the caller read it "
        "(kms:GetKeyRotationStatus), else null.",
    )
    aliases = serializers.ListField(
        child=StrictCharField(),
        allow_null=True,
        help_text="The key's alias names where the caller may list aliases (kms:ListAliases, IAM-only), else null.",
    )
    tags = serializers.DictField(
        child=StrictCharField(),
        allow_null=True,
        help_text="The key's tags where the key policy lets the caller read them (kms:ListResourceTags), else null.",
    )


def key_summary(row: ListedKey) -> dict[str, Any]:
    """What `KeySummaryOutput` shows of a row of the key list."""
    key = row.key
    described = {
        "description": key.description,
        "state": key.state,
        "key_spec": key.key_spec,
        "key_usage": key.key_usage,
        "origin": key.origin,
        "created_at": key.created_at,
        "deletion_date": key.deletion_date,
    }
    return {
        "key_id": key.key_id,
        "arn": key.arn,
        "described": row.described,
        **{name: value if row.described else None for name, value in described.items()},
        "rotation_enabled": row.rotation_enabled,
        "aliases": list(row.aliases) if row.aliases is not None else None,
        "tags": row.tags,
    }


class KeyMetadataOutput(serializers.Serializer):
    """KeyMetadata as DescribeKey returns it (keys.metadata.key_metadata), in the API's snake_case."""

    aws_account_id = StrictCharField(source="AWSAccountId")
    key_id = StrictCharField(source="KeyId")
    arn = StrictCharField(source="Arn")
    creation_date = serializers.DateTimeField(source="CreationDate")
    enabled = serializers.BooleanField(source="Enabled")
    description = StrictCharField(source="Description")
    key_usage = StrictCharField(source="KeyUsage")
    key_state = StrictCharField(source="KeyState")
    origin = StrictCharField(source="Origin")
    key_manager = StrictCharField(source="KeyManager")
    key_spec = StrictCharField(source="KeySpec")
    multi_region = serializers.BooleanField(source="MultiRegion")
    current_key_material_id = StrictCharField(
        source="CurrentKeyMaterialId", required=False, help_text="Symmetric encryption keys only."
    )
    deletion_date = serializers.DateTimeField(source="DeletionDate", required=False)
    encryption_algorithms = serializers.ListField(
        child=StrictCharField(), source="EncryptionAlgorithms", required=False
    )
    signing_algorithms = serializers.ListField(
        child=StrictCharField(), source="SigningAlgorithms", required=False
    )
    mac_algorithms = serializers.ListField(child=StrictCharField(), source="MacAlgorithms", required=False)
    key_agreement_algorithms = serializers.ListField(
        child=StrictCharField(), source="KeyAgreementAlgorithms", required=False
    )
    encapsulation_algorithms = serializers.ListField(
        child=StrictCharField(),
        source="EncapsulationAlgorithms",
        required=False,
        help_text="ML-KEM keys (ENCAPSULATE_DECAPSULATE) only.",
    )


class RotationOutput(serializers.Serializer):
    key_id = StrictCharField()
    rotation_enabled = serializers.BooleanField()
    rotation_period_days = serializers.IntegerField(allow_null=True)
    next_rotation_at = serializers.DateTimeField(allow_null=True)


class LastUseOutput(serializers.Serializer):
    operation = StrictCharField()
    time = serializers.DateTimeField()
    event_id = serializers.UUIDField(help_text="The audit event of the use (AWS: its CloudTrail event id).")
    request_id = StrictCharField()


class KeyLastUsageOutput(serializers.Serializer):
    """GetKeyLastUsage's answer (keys.services.usage.KeyLastUsage)."""

    key_id = StrictCharField(source="key.key_id")
    last_usage = LastUseOutput(
        source="last_use",
        allow_null=True,
        help_text="The last successful cryptographic operation with the key since tracking_started_at, or null.",
    )
    tracking_started_at = serializers.DateTimeField(
        help_text="Since when uses are known: the key's creation, or the oldest event the audit trail still holds "
        "once retention archived older ones, whichever is later."
    )
    created_at = serializers.DateTimeField(source="key.created_at")


class RotateOutput(serializers.Serializer):
    key_id = StrictCharField()
    key_material_id = StrictCharField()


class PolicyOutput(serializers.Serializer):
    key_id = StrictCharField()
    policy_name = StrictCharField()
    policy = StrictCharField()


class PolicyValidationOutput(serializers.Serializer):
    valid = serializers.BooleanField()
    code = StrictCharField(help_text="The error code PutKeyPolicy would answer, empty when valid.")
    message = StrictCharField()


class PolicyVersionOutput(serializers.Serializer):
    version = serializers.IntegerField()
    document = StrictCharField()
    created_at = serializers.DateTimeField()
    created_by = StrictCharField()
    bypassed_lockout_check = serializers.BooleanField()


class PolicyRestoreOutput(PolicyOutput):
    restored_version = serializers.IntegerField()
    version = serializers.IntegerField(help_text="The new version, which is now the key policy.")
    rebound_principals = serializers.DictField(
        child=StrictCharField(allow_null=True),
        help_text="Each ARN of the restored version whose principal was deleted (or deleted and recreated) since "
        "it was saved, with the unique id written instead of it; null for another account's principal (its "
        "unique id is that account's business; the policy names it, as a deletion's rewrite does).",
    )
    notes = serializers.ListField(
        child=StrictCharField(),
        help_text="In words, each ARN rebound, and each whose principal may not be the one the version meant; "
        "another account's principal without its unique id, whether it was deleted or recreated, or when.",
    )


class AliasOutput(serializers.Serializer):
    alias_name = StrictCharField(source="name")
    alias_arn = StrictCharField(source="arn")
    target_key_id = serializers.UUIDField(source="key.key_id")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class TagOutput(serializers.Serializer):
    tag_key = StrictCharField()
    tag_value = StrictCharField()


class GrantOutput(serializers.Serializer):
    grant_id = StrictCharField()
    name = StrictCharField()
    grantee_principal = StrictCharField()
    retiring_principal = StrictCharField()
    issuing_account = StrictCharField()
    operations = serializers.ListField(child=StrictCharField())
    constraints = serializers.DictField(child=serializers.DictField(child=StrictCharField()), allow_null=True)
    created_at = serializers.DateTimeField()


class GrantCreatedOutput(serializers.Serializer):
    grant_id = StrictCharField()
    grant_token = StrictCharField(help_text="Use it at once in GrantTokens, before the grant propagates.")


class AuditEventOutput(serializers.Serializer):
    event_id = serializers.UUIDField()
    seq = serializers.IntegerField()
    time = serializers.DateTimeField()
    request_id = StrictCharField()
    interface = StrictCharField()
    operation = StrictCharField()
    caller_arn = StrictCharField()
    caller_account = StrictCharField()
    access_key_id = StrictCharField(help_text="Empty on another account's request (scope key-owner).")
    source_ip = StrictCharField()
    user_agent = StrictCharField()
    key_arn = StrictCharField()
    request_parameters = serializers.JSONField(allow_null=True)
    response_elements = serializers.JSONField(allow_null=True)
    error_code = StrictCharField()
    error_message = StrictCharField()
    decision = StrictCharField()
    reason = StrictCharField(
        help_text="Why the request was allowed or denied. On another account's key, that account's key-policy "
        "statements and grants are not named; of another account's request on the caller's key (scope "
        "key-owner), the caller's identity policies are not (kmsconsole.audit.shown)."
    )
    decided_by = StrictCharField(
        help_text="The statement or grant that decided; on another account's key, \"a statement in the key "
        'owner\'s key policy" or "a grant on the key owner\'s key"; read as the key owner (scope key-owner), "an '
        "identity policy of the caller's account\" for the caller's identity policies, and, read as the owner of "
        'an allowed ReEncrypt\'s source key, "a statement in the destination key\'s policy" or "a grant on the '
        'destination key" (the reason is then cut to its outcome).'
    )
    notable = StrictCharField()
    scope = serializers.SerializerMethodField()

    def get_scope(self, event: AuditEvent) -> str:
        """The side the caller's account reads the event from: "caller" (a request of its own principals) or
        "key-owner" (another account's request on one of its keys: access_key_id is then empty, and the caller's
        identity policies are not named in reason and decided_by)."""
        return str(self.context.get(AUDIT_SCOPE, DEFAULT_SCOPE).value)


class JobRunOutput(serializers.Serializer):
    """A job run as the caller may see it (kmsconsole.api.reads.shown_runs): its counts and errors are the
    caller's account's share of the run."""

    id = serializers.IntegerField()
    job = StrictCharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    processed = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    succeeded = serializers.SerializerMethodField()

    def get_processed(self, run: JobRun) -> int | None:
        """Rows of the caller's account the run processed; null for a count about no account (the audit jobs')."""
        return self._shown(run).processed

    def get_error(self, run: JobRun) -> str:
        """The run's failures about the caller's account's keys and grants, and that it failed for a reason
        about no account (the reason itself is the operator's)."""
        return self._shown(run).error

    def get_succeeded(self, run: JobRun) -> bool:
        return self._shown(run).succeeded

    def _shown(self, run: JobRun) -> ShownRun:
        shown: dict[int, ShownRun] = self.context.get(SHOWN_RUNS, {})
        # Fail closed: a run nothing decided on shows its times only.
        return shown.get(run.pk) or ShownRun(run.pk, run.job, run.started_at, run.finished_at, None, "")
