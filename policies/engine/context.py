"""The request context: who asks, for what action, on which resource, and every condition-key value.

Build it with ``RequestContext.build(...)``, which derives the global keys from the caller and the request:
``aws:PrincipalArn``, ``aws:PrincipalAccount``, ``aws:PrincipalType``, ``aws:username`` (IAM users),
``aws:userid``, ``aws:PrincipalTag/<k>``, ``aws:ResourceTag/<k>``, ``aws:RequestTag/<k>``, ``aws:TagKeys``,
``aws:SourceIp``, ``aws:CurrentTime``, ``aws:EpochTime``, ``aws:SecureTransport``, ``kms:CallerAccount`` (for
requests on a key), ``kms:EncryptionContext:<k>`` and ``kms:EncryptionContextKeys`` (from a non-empty encryption
context). KMS keys the operation populates (``kms:KeySpec``, ``kms:RequestAlias``, ``kms:GrantOperations``, ...,
spec §7.6) come in ``condition_values``; list values become tuples. The principal-derived keys always come from
the caller and cannot be overridden.

``values`` maps lower-cased key names to values. Two request keys differing only in case (two encryption-context
keys ``Dept`` and ``dept``, say) merge into one multivalued entry, which a single-valued operator matches if any
value matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from .grants import GrantRequest, Pairs, fold_encryption_context
from .principals import Caller
from .values import ContextValue, Scalar

# Actions with no key resource: only identity policies decide them (pass key_policy=None to evaluate()).
ACCOUNT_LEVEL_ACTIONS = frozenset(
    {
        "kms:CreateKey",
        "kms:GenerateRandom",
        "kms:ListKeys",
        "kms:ListAliases",
        "kms:ListRetirableGrants",
        "kms:CreateCustomKeyStore",
        "kms:DescribeCustomKeyStores",
        "kms:UpdateCustomKeyStore",
        "kms:DeleteCustomKeyStore",
        "kms:ConnectCustomKeyStore",
        "kms:DisconnectCustomKeyStore",
    }
)

# The KMS condition keys the product's operations populate (spec §7.6), for reference and validation helpers.
KMS_CONDITION_KEYS = (
    "kms:BypassPolicyLockoutSafetyCheck",
    "kms:CallerAccount",
    "kms:EncryptionAlgorithm",
    "kms:EncryptionContext:",
    "kms:EncryptionContextKeys",
    "kms:GrantConstraintType",
    "kms:GrantIsForAWSResource",
    "kms:GrantOperations",
    "kms:GranteePrincipal",
    "kms:KeyAgreementAlgorithm",
    "kms:KeyOrigin",
    "kms:KeySpec",
    "kms:KeyUsage",
    "kms:MacAlgorithm",
    "kms:PolicyName",
    "kms:ReEncryptOnSameKey",
    "kms:RequestAlias",
    "kms:ResourceAliases",
    "kms:RetiringPrincipal",
    "kms:RotationPeriodInDays",
    "kms:ScheduleKeyDeletionPendingWindowInDays",
    "kms:SigningAlgorithm",
    "kms:ViaService",
)

_PROTECTED_KEYS = frozenset(
    {
        "aws:principalarn",
        "aws:principalaccount",
        "aws:principaltype",
        "aws:username",
        "aws:userid",
        "aws:principalservicename",
    }
)
_PROTECTED_PREFIXES = ("aws:principaltag/",)

InputValue = Scalar | Iterable[Scalar]


def _normalize(value: InputValue) -> ContextValue:
    if isinstance(value, str | bool | int | float | datetime | bytes):
        return value
    return tuple(value)


class _Lowered(dict[str, ContextValue]):
    """A values dict whose keys ``build`` has already lower-cased."""


def _put(values: dict[str, ContextValue], key: str, value: ContextValue) -> None:
    lowered = key.lower()
    existing = values.get(lowered)
    if existing is None:
        values[lowered] = value
        return
    merged = (existing if isinstance(existing, tuple) else (existing,)) + (
        value if isinstance(value, tuple) else (value,)
    )
    values[lowered] = merged


@dataclass(frozen=True)
class RequestContext:
    """Everything evaluate() needs about one request. Prefer ``RequestContext.build``."""

    caller: Caller
    action: str
    resource: str = "*"
    resource_account: str | None = None
    values: Mapping[str, ContextValue] = field(default_factory=dict, hash=False)
    encryption_context: Mapping[str, str] | None = field(default=None, hash=False)
    new_grant: GrantRequest | None = None
    action_lower: str = field(init=False, compare=False, repr=False)
    action_name: str = field(init=False, compare=False, repr=False)
    same_account: bool = field(init=False, compare=False, repr=False)
    encryption_context_pairs: Pairs = field(init=False, compare=False, repr=False)
    encryption_context_size: int = field(init=False, compare=False, repr=False)
    # The engine reads condition values from this private dict (faster than the read-only ``values`` view).
    lookup: dict[str, ContextValue] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        values = self.values
        lowered = (
            values if type(values) is _Lowered else {key.lower(): value for key, value in values.items()}
        )
        object.__setattr__(self, "lookup", lowered)
        object.__setattr__(self, "values", MappingProxyType(lowered))
        context = dict(self.encryption_context or {})
        if self.encryption_context is not None:
            object.__setattr__(self, "encryption_context", MappingProxyType(context))
        object.__setattr__(self, "action_lower", self.action.lower())
        object.__setattr__(self, "action_name", self.action.split(":", 1)[-1])
        same = self.resource_account is None or self.caller.account_id == self.resource_account
        object.__setattr__(self, "same_account", same)
        object.__setattr__(self, "encryption_context_pairs", fold_encryption_context(context))
        object.__setattr__(self, "encryption_context_size", len(context))

    @property
    def is_account_level(self) -> bool:
        return self.resource == "*"

    def with_action(self, action: str, resource: str | None = None) -> RequestContext:
        """The same request context for another action (and optionally another resource)."""
        return RequestContext(
            caller=self.caller,
            action=action,
            resource=self.resource if resource is None else resource,
            resource_account=self.resource_account,
            values=self.values,
            encryption_context=self.encryption_context,
            new_grant=self.new_grant,
        )

    @classmethod
    def build(
        cls,
        *,
        caller: Caller,
        action: str,
        resource: str = "*",
        resource_account: str | None = None,
        source_ip: str | None = None,
        now: datetime | None = None,
        secure_transport: bool | None = None,
        encryption_context: Mapping[str, str] | None = None,
        resource_tags: Mapping[str, str] | None = None,
        request_tags: Mapping[str, str] | None = None,
        tag_keys: Iterable[str] | None = None,
        condition_values: Mapping[str, InputValue] | None = None,
        new_grant: GrantRequest | None = None,
    ) -> RequestContext:
        """Build a context, deriving the global condition keys (see the module docstring).

        ``resource`` is the key ARN (alias ARN for IAM checks of alias operations, ``"*"`` for account-level
        actions); ``resource_account`` the account owning it (derived from an ARN resource when omitted).
        ``now`` defaults to the current UTC time. ``tag_keys`` defaults to the keys of ``request_tags``.
        """
        if resource_account is None and resource.startswith("arn:"):
            parts = resource.split(":", 5)
            if len(parts) == 6 and parts[4]:
                resource_account = parts[4]
        values: dict[str, ContextValue] = _Lowered()
        for key, value in (condition_values or {}).items():
            lowered = key.lower()
            if lowered in _PROTECTED_KEYS or lowered.startswith(_PROTECTED_PREFIXES):
                continue
            _put(values, lowered, _normalize(value))

        current = now if now is not None else datetime.now(UTC)
        if current.tzinfo is None:
            current = current.replace(tzinfo=UTC)
        values["aws:currenttime"] = current
        values["aws:epochtime"] = int(current.timestamp())
        if source_ip is not None:
            values["aws:sourceip"] = source_ip
        if secure_transport is not None:
            values["aws:securetransport"] = secure_transport
        if resource != "*" and caller.account_id:
            values.setdefault("kms:calleraccount", caller.account_id)
        if encryption_context:
            for ec_key, ec_value in encryption_context.items():
                _put(values, f"kms:encryptioncontext:{ec_key}", ec_value)
            values["kms:encryptioncontextkeys"] = tuple(encryption_context)
        for tag_key, tag_value in (resource_tags or {}).items():
            _put(values, f"aws:resourcetag/{tag_key}", tag_value)
        for tag_key, tag_value in (request_tags or {}).items():
            _put(values, f"aws:requesttag/{tag_key}", tag_value)
        keys = tuple(tag_keys) if tag_keys is not None else tuple(request_tags or ())
        if keys:
            values["aws:tagkeys"] = keys

        _add_principal_keys(values, caller)
        return cls(
            caller=caller,
            action=action,
            resource=resource,
            resource_account=resource_account,
            values=values,
            encryption_context=encryption_context,
            new_grant=new_grant,
        )


def _add_principal_keys(values: dict[str, ContextValue], caller: Caller) -> None:
    # build() has already dropped any principal key that came in condition_values.
    if caller.is_service:
        values["aws:principalservicename"] = caller.arn
        return
    principal_arn = caller.principal_arn
    if principal_arn:
        values["aws:principalarn"] = principal_arn
    if caller.account_id:
        values["aws:principalaccount"] = caller.account_id
    values["aws:principaltype"] = caller.principal_type_value
    if caller.is_user and caller.username:
        values["aws:username"] = caller.username
    if caller.userid:
        values["aws:userid"] = caller.userid
    for tag_key, tag_value in caller.tags.items():
        _put(values, f"aws:principaltag/{tag_key}", tag_value)
