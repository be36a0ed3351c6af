"""Key lifecycle: CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey, UpdateKeyDescription."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from keys.crypto import CryptoError, KeySpec, KeyUsage, validate_spec_and_usage
from keys.default_policies import default_key_policy
from keys.materials import create_material
from keys.models import Key, KeyState, Tag
from keys.services.access import (
    DESCRIBE_KEY,
    KeyQuestions,
    key_for,
    request_allowed,
)
from keys.services.custom_key_stores import CUSTOM_KEY_STORE_NOT_FOUND
from keys.services.deletion import PENDING_WINDOW_MAX_DAYS, PENDING_WINDOW_MIN_DAYS
from keys.services.key_policy import record_policy_version, validate_key_policy
from keys.tag_rules import tags_from_request
from kmsconsole.core import errors
from kmsconsole.core.pagination import page
from kmsconsole.operations import OperationContext
from policies.authorization import authorize
from policies.selectors import account_get

SUPPORTED_ORIGINS = ("AWS_KMS",)
# The origins of a key in a custom key store (a CloudHSM or an external key store), which this KMS does not offer.
CUSTOM_KEY_STORE_ORIGINS = ("AWS_CLOUDHSM", "EXTERNAL_KEY_STORE")
# ListKeys' Limit when none is given (the model allows 1-1000).
LIST_KEYS_DEFAULT_LIMIT = 100
# CreateKey with both KeySpec and the deprecated CustomerMasterKeySpec.
BOTH_SPECS_MESSAGE = (
    "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. "
    "CustomerMasterKeySpec is deprecated."
)
# CreateKey's and UpdateKeyDescription's Description: 0-8192 characters.
DESCRIPTION_MAX_LENGTH = 8192


def _check_enum(member: str, value: str | None, allowed: type[KeySpec] | type[KeyUsage]) -> None:
    """The KMS endpoint's model refuses an unknown enum value before the service runs; other callers (the REST
    API) get the same ValidationException here."""
    values = [item.value for item in allowed]
    if value and value not in values:
        raise errors.ValidationException(
            f"1 validation error detected: Value '{value[:64]}' at '{member}' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(values)}]"
        )


def _spec_and_usage(key_spec: str | None, key_usage: str | None) -> tuple[str, str]:
    _check_enum("keySpec", key_spec, KeySpec)
    _check_enum("keyUsage", key_usage, KeyUsage)
    try:
        usage = validate_spec_and_usage(
            KeySpec(key_spec) if key_spec else None, KeyUsage(key_usage) if key_usage else None
        )
    except CryptoError as exc:
        raise errors.error_for_code(exc.code, exc.message) from None
    return key_spec or KeySpec.SYMMETRIC_DEFAULT.value, usage.value


def key_create(
    *,
    ctx: OperationContext,
    description: str = "",
    key_spec: str | None = None,
    key_usage: str | None = None,
    customer_master_key_spec: str | None = None,
    origin: str = "AWS_KMS",
    policy: str | None = None,
    tags: Sequence[Mapping[str, str]] = (),
    bypass_lockout: bool = False,
    custom_key_store_id: str | None = None,
    xks_key_id: str | None = None,
    multi_region: bool = False,
) -> Key:
    """Create a key with fresh material, the given (or the default) key policy, and tags.

    kms:CreateKey is an IAM-only action; tags also need kms:TagResource (kms-spec §1, §9.2). `customer_master_key_spec`
    is the deprecated name of `key_spec` (the KMS endpoint's CustomerMasterKeySpec). A request for a feature this KMS
    lacks (an origin other than AWS_KMS, a custom key store, an external key, a multi-Region key), or that names its
    key spec under both names, is refused after authorization, in `_refuse_after_authorization`. The key spec and
    usage are checked before it (KeySpec being the spec when both names are sent): their values are the request's
    kms:KeySpec and kms:KeyUsage conditions, so a pair that does not fit is refused before authorization.
    """
    errors.check_length("description", description, maximum=DESCRIPTION_MAX_LENGTH)
    spec, usage = _spec_and_usage(key_spec if key_spec is not None else customer_master_key_spec, key_usage)
    tag_map = tags_from_request(tags)
    conditions = {
        "kms:KeySpec": spec,
        "kms:KeyUsage": usage,
        "kms:KeyOrigin": origin,
        "kms:BypassPolicyLockoutSafetyCheck": bypass_lockout,
        "kms:MultiRegion": multi_region,
    }
    authorize(ctx, resource="*", request_tags=tag_map, condition_values=conditions)
    if tag_map:
        authorize(
            ctx, resource="*", action="kms:TagResource", request_tags=tag_map, condition_values=conditions
        )
    _refuse_after_authorization(
        both_specs=key_spec is not None and customer_master_key_spec is not None,
        origin=origin,
        custom_key_store_id=custom_key_store_id,
        xks_key_id=xks_key_id,
        multi_region=multi_region,
    )
    account = account_get(ctx.caller.account_id)
    key = Key(account=account, description=description, key_spec=spec, key_usage=usage, origin=origin)
    document = policy if policy is not None else default_key_policy(account.account_id)
    # The default policy names the account only. A given one's users and roles are locked (no key row is held:
    # the key is new), so a deletion of one either rewrites this key once it commits or refuses the policy.
    principal_ids: dict[str, str | None] = {}
    if policy is not None:
        principal_ids = validate_key_policy(
            ctx,
            document=policy,
            key=key,
            bypass_lockout=bypass_lockout,
            resource_tags=tag_map,
        )
    key.policy = document
    key.save()
    ctx.audit.key_arn = key.arn
    create_material(key)
    Tag.objects.bulk_create(Tag(key=key, tag_key=name, tag_value=value) for name, value in tag_map.items())
    if tag_map:
        key.seal()  # the key's MAC covers its tags (nobody else sees the new key before the commit)
    record_policy_version(ctx, key, document=document, bypassed=bypass_lockout, principal_ids=principal_ids)
    return key


def _refuse_after_authorization(
    *,
    both_specs: bool,
    origin: str,
    custom_key_store_id: str | None,
    xks_key_id: str | None,
    multi_region: bool,
) -> None:
    """CreateKey's members that ask for a feature this KMS lacks, or that contradict each other (KeySpec with the
    deprecated CustomerMasterKeySpec), decided here only, in this order.

    After authorization: none is a shape error (the model accepts every one), AWS's own order is not documented,
    and kms-spec §4.2's suggested order puts semantic checks after authorize. So a caller without kms:CreateKey
    is AccessDeniedException whatever it asks for (learning nothing of what this KMS offers), every refusal's
    event carries its decision, and the kms:KeyOrigin and kms:MultiRegion conditions see the request's values.
    The Origin first: a key in a custom key store (Origin AWS_CLOUDHSM or EXTERNAL_KEY_STORE, which is what
    CustomKeyStoreId and XksKeyId go with) is one missing feature with one answer, whatever else is sent.
    """
    if origin in CUSTOM_KEY_STORE_ORIGINS:
        raise errors.UnsupportedOperationException(
            f"Origin {origin} (a KMS key in a custom key store) is not supported by this KMS: it has no custom "
            "key stores."
        )
    if origin not in SUPPORTED_ORIGINS:
        raise errors.UnsupportedOperationException(f"Origin {origin} is not supported by this KMS.")
    if both_specs:
        # AWS's words (nsmithuk/local-kms answers them; GruCloud's AWS provider avoids them by sending KeySpec
        # alone), even when the two name the same spec.
        raise errors.ValidationException(BOTH_SPECS_MESSAGE)
    if xks_key_id is not None:
        # "Not valid for KMS keys with any other Origin value" (the model's CreateKey.XksKeyId). AWS's exact error
        # is not on record: ValidationException, the one AWS uses for a member that does not fit the request.
        raise errors.ValidationException(
            "XksKeyId is valid only for a KMS key in an external key store (Origin EXTERNAL_KEY_STORE)."
        )
    if custom_key_store_id is not None:
        # The store named cannot exist: AWS's answer for a store that does not.
        raise errors.CustomKeyStoreNotFoundException(CUSTOM_KEY_STORE_NOT_FOUND)
    if multi_region:
        raise errors.UnsupportedOperationException("Multi-Region keys are not supported by this KMS.")


def key_describe(*, ctx: OperationContext, key_id: str) -> Key:
    return key_for(ctx, key_id)


def key_describable(ctx: OperationContext, key: Key) -> bool:
    """Whether a DescribeKey request by the caller on `key` would be allowed (`request_allowed`): what a page showing
    the key's description, state and aliases beside another operation's answer must ask first."""
    return request_allowed(ctx, key, DESCRIBE_KEY)


# The changes a key's page offers (its General configuration tab), by the IAM action each request needs.
KEY_PAGE_ACTIONS = (
    "kms:EnableKey",
    "kms:DisableKey",
    "kms:UpdateKeyDescription",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
)
_WINDOW_CONDITION = "kms:ScheduleKeyDeletionPendingWindowInDays"


def key_actions_allowed(ctx: OperationContext, key: Key) -> frozenset[str]:
    """Those of KEY_PAGE_ACTIONS a request by the caller on `key` would be allowed: what a page showing the key
    (inside its DescribeKey) may offer, so that it offers nothing the engine would refuse, and asks no password
    for it. Decided as `key_describable` decides DescribeKey, by the engine as each request would be and recorded
    nowhere (`KeyQuestions.allows`: none of these actions can be allowed by a grant); the page's own event is the
    only record. A ScheduleKeyDeletion request carries its waiting period, which a policy may test: it is offered
    when some period the form accepts would be allowed."""
    questions = KeyQuestions(ctx)
    allowed = {action for action in KEY_PAGE_ACTIONS if action != "kms:ScheduleKeyDeletion"}
    allowed = {action for action in allowed if questions.allows(key, action)}
    windows = range(PENDING_WINDOW_MAX_DAYS, PENDING_WINDOW_MIN_DAYS - 1, -1)
    if any(
        questions.allows(key, "kms:ScheduleKeyDeletion", condition_values={_WINDOW_CONDITION: days})
        for days in windows
    ):
        allowed.add("kms:ScheduleKeyDeletion")
    return frozenset(allowed)


def key_list(*, ctx: OperationContext, limit: int, marker: str | None) -> tuple[list[Key], str | None]:
    """Every key of the caller's account, whatever its state (kms:ListKeys is IAM-only)."""
    authorize(ctx, resource="*")
    account_id = ctx.caller.account_id
    keys, next_marker = page(
        Key.objects.filter(account__account_id=account_id).select_related("account"),
        scope=f"ListKeys:{account_id}",
        limit=limit,
        marker=marker,
    )
    return list(keys), next_marker


def key_enable(*, ctx: OperationContext, key_id: str) -> Key:
    key = key_for(ctx, key_id, lock=True)
    if key.state != KeyState.ENABLED:
        key.state = KeyState.ENABLED
        key.save(update_fields=["state"])
    return key


def key_disable(*, ctx: OperationContext, key_id: str) -> Key:
    key = key_for(ctx, key_id, lock=True)
    if key.state != KeyState.DISABLED:
        key.state = KeyState.DISABLED
        key.save(update_fields=["state"])
    return key


def key_update_description(*, ctx: OperationContext, key_id: str, description: str) -> Key:
    errors.check_length("description", description, maximum=DESCRIPTION_MAX_LENGTH)
    key = key_for(ctx, key_id, lock=True)
    key.description = description
    key.save(update_fields=["description"])
    return key
