"""Findings: what a person should know about a policy before trusting it, each with a severity and a fix.

``key_policy_findings(policy, *, account_id, key_spec="SYMMETRIC_DEFAULT", key_usage="ENCRYPT_DECRYPT",
key_arn=None) -> tuple[Finding, ...]`` looks at a key policy (parsed ``Policy`` or ``CompiledPolicy``) for:

* ``public-access`` (high): an Allow for everyone (``"*"`` or ``NotPrincipal``) without a condition that narrows
  who can call (``kms:CallerAccount``, ``aws:PrincipalAccount``, ``kms:ViaService``, ``aws:SourceVpc``, ...);
* ``cross-account-access`` (medium): the same for principals of another account;
* ``no-root-access`` (high): the account root may not change the policy, so IAM policies cannot help and the key
  becomes unmanageable if the principals it names are deleted;
* ``admins-can-self-grant`` (medium): principals that may change the policy or create grants but are not allowed
  the key's use: they can give themselves use ("key administrators can grant themselves use of this key");
* ``admins-can-delete`` (low): principals other than the account root may schedule the key's deletion;
* ``full-access-to-non-root`` (medium): every KMS action for principals other than an account root;
* ``statement-without-effect`` (low): a statement with no Action or no Resource.

``identity_policy_findings(policy)`` looks at an identity policy for ``identity-full-kms-access`` (every KMS action
on every key without a condition).

Who may do what is decided with the engine's own matching: ``CompiledStatement.covers_action`` (wildcards,
``NotAction``) and ``principal_match`` (``Principal``, ``NotPrincipal``, accounts), against a caller built from each
principal the policy names. Conditions are not evaluated (there is no request): an Allow with conditions counts as
"possibly allowed", a Deny with conditions as "possibly not applying", which errs toward reporting.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from .compiled import CompiledPolicy, CompiledStatement, compile_policy
from .conditions import Family
from .document import Policy, PolicyKind, Statement
from .principals import DIRECT, Caller, PrincipalKind, account_root_arn, parse_principal_arn


class Severity(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


_SEVERITY_ORDER = {Severity.HIGH: 0, Severity.MEDIUM: 1, Severity.LOW: 2}


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding. ``detail`` names the statement (Sid or number) and the principals; ``fix`` says what to do."""

    id: str
    severity: Severity
    title: str
    detail: str
    fix: str
    statement_index: int | None = None
    sid: str | None = None
    principals: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "severity": str(self.severity),
            "title": self.title,
            "detail": self.detail,
            "fix": self.fix,
            "statement_index": self.statement_index,
            "sid": self.sid,
            "principals": list(self.principals),
        }


# Every KMS action that acts on a key (account-level actions such as kms:CreateKey are not granted by key policies).
KEY_ACTIONS = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:CreateGrant",
    "kms:Decapsulate",
    "kms:Decrypt",
    "kms:DeleteAlias",
    "kms:DeleteImportedKeyMaterial",
    "kms:DeriveSharedSecret",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:Encapsulate",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateMac",
    "kms:GetKeyLastUsage",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:GetParametersForImport",
    "kms:GetPublicKey",
    "kms:ImportKeyMaterial",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:ReplicateKey",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:Sign",
    "kms:SynchronizeMultiRegionKey",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
    "kms:UpdatePrimaryRegion",
    "kms:Verify",
    "kms:VerifyMac",
)

# What "using the key" means, by key usage (symmetric encryption keys also make data keys).
USE_ACTIONS_BY_USAGE: dict[str, tuple[str, ...]] = {
    "ENCRYPT_DECRYPT": ("kms:Encrypt", "kms:Decrypt"),
    "SIGN_VERIFY": ("kms:Sign", "kms:Verify"),
    "GENERATE_VERIFY_MAC": ("kms:GenerateMac", "kms:VerifyMac"),
    "KEY_AGREEMENT": ("kms:DeriveSharedSecret",),
    "ENCAPSULATE_DECAPSULATE": ("kms:Decapsulate",),
}
_SYMMETRIC_EXTRA_USE = ("kms:GenerateDataKey",)

# Actions that let a principal give itself any other permission on the key.
SELF_GRANT_ACTIONS = ("kms:PutKeyPolicy", "kms:CreateGrant")
DELETE_ACTION = "kms:ScheduleKeyDeletion"

# Condition keys that narrow who (or through what) a request can come from, when tested positively.
NARROWING_KEYS = frozenset(
    {
        "kms:calleraccount",
        "kms:viaservice",
        "aws:principalaccount",
        "aws:principalarn",
        "aws:principalorgid",
        "aws:principalorgpaths",
        "aws:sourceaccount",
        "aws:sourcearn",
        "aws:sourceip",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "aws:userid",
        "aws:username",
    }
)
# Keys only a registered integrated service can set: a statement conditioned on them is not usable directly.
_SERVICE_ONLY_KEYS = frozenset({"kms:grantisforawsresource", "kms:viaservice"})
_SESSION_NAME = "policy-findings"


class _Level(IntEnum):
    NONE = 0
    CONDITIONAL = 1
    FULL = 2


def _compiled(policy: Policy | CompiledPolicy) -> CompiledPolicy:
    return policy if isinstance(policy, CompiledPolicy) else compile_policy(policy)


def _caller_for(principal: str) -> Caller | None:
    """A caller a Principal element naming ``principal`` would match (a session for a role)."""
    parsed = parse_principal_arn(principal)
    if parsed is None:
        return None
    if parsed.kind is PrincipalKind.ACCOUNT:
        return Caller.root(parsed.account_id, partition=parsed.partition)
    if parsed.kind is PrincipalKind.USER:
        return Caller.user(principal)
    if parsed.kind is PrincipalKind.ROLE:
        session = (
            f"arn:{parsed.partition}:sts::{parsed.account_id}:assumed-role/{parsed.name}/{_SESSION_NAME}"
        )
        return Caller.assumed_role(session, role_arn=principal)
    if parsed.kind is PrincipalKind.ASSUMED_ROLE:
        return Caller.assumed_role(principal)
    if parsed.kind is PrincipalKind.FEDERATED_USER:
        return Caller.federated_user(principal)
    return None


def _on_key(statement: CompiledStatement, key_arn: str | None, *, unknown: bool) -> bool:
    if statement.any_resource:
        return True
    if key_arn is None:
        return unknown
    return statement.resource_matches(key_arn, {})


def _access(
    policy: CompiledPolicy, caller: Caller, action: str, key_arn: str | None
) -> tuple[_Level, CompiledStatement | None]:
    """How far the key policy by itself lets ``caller`` do ``action`` on the key, and the statement that does."""
    denies, allows = policy.statements_for(action.lower())
    for statement in denies:
        applies = statement.principal_match(caller) and not statement.conditions
        if applies and _on_key(statement, key_arn, unknown=False):
            return _Level.NONE, statement
    found: tuple[_Level, CompiledStatement | None] = (_Level.NONE, None)
    for statement in allows:
        if not (statement.principal_match(caller) & DIRECT) or not _on_key(statement, key_arn, unknown=True):
            continue
        if not statement.conditions:
            return _Level.FULL, statement
        if found[0] is _Level.NONE:
            found = (_Level.CONDITIONAL, statement)
    return found


def _usable_directly(level: _Level, statement: CompiledStatement | None) -> bool:
    """Allowed, and not only through a condition that only an integrated service can meet."""
    if level is _Level.FULL:
        return True
    if level is _Level.NONE or statement is None:
        return False
    return not any(condition.clause.key_lower in _SERVICE_ONLY_KEYS for condition in statement.conditions)


def _label(statement: Statement) -> str:
    return f"statement {statement.label}"


def _list(items: Iterable[str]) -> str:
    values = list(items)
    if len(values) <= 1:
        return "".join(values)
    return ", ".join(values[:-1]) + " and " + values[-1]


def _principal_text(statement: Statement) -> str:
    if statement.not_principal is not None:
        block = statement.not_principal
        listed = [*block.aws, *block.service, *block.federated]
        return f"everyone (*) except {_list(listed)}" if listed else "everyone (*)"
    principal = statement.principal
    if principal is None or principal.everyone or "*" in principal.aws:
        return "everyone (*)"
    return _list([*principal.aws, *principal.service, *principal.federated])


def _action_text(statement: Statement) -> str:
    if statement.not_action is not None:
        return f"every action except {_list(statement.not_action)}"
    return _list(statement.action or ())


def _narrowed(statement: CompiledStatement) -> bool:
    for condition in statement.conditions:
        clause = condition.clause
        spec = clause.operator.spec
        if clause.key_lower in NARROWING_KEYS and not spec.negated and spec.family is not Family.NULL:
            return True
    return False


def _is_everyone(statement: Statement) -> bool:
    if statement.not_principal is not None:
        return True
    block = statement.principal
    return block is not None and (block.everyone or "*" in block.aws)


def _other_accounts(statement: Statement, account_id: str) -> tuple[str, ...]:
    block = statement.principal
    if block is None:
        return ()
    named: list[str] = []
    for value in block.aws:
        parsed = parse_principal_arn(value)
        if parsed is not None and parsed.account_id != account_id:
            named.append(value)
    return tuple(named)


def use_actions(key_spec: str, key_usage: str) -> tuple[str, ...]:
    """The actions that use a key of this spec and usage (what key users are there for)."""
    actions = USE_ACTIONS_BY_USAGE.get(key_usage, USE_ACTIONS_BY_USAGE["ENCRYPT_DECRYPT"])
    if key_spec == "SYMMETRIC_DEFAULT":
        actions = actions + _SYMMETRIC_EXTRA_USE
    return actions


def _external_access(compiled: CompiledPolicy, account_id: str) -> list[Finding]:
    findings: list[Finding] = []
    for statement in compiled.statements:
        source = statement.source
        if not statement.allow or statement.inert or _narrowed(statement):
            continue
        actions = _action_text(source)
        if _is_everyone(source):
            findings.append(
                Finding(
                    id="public-access",
                    severity=Severity.HIGH,
                    title="Anyone can use this access",
                    detail=(
                        f"The {_label(source)} allows {_principal_text(source)} to call {actions} with no "
                        "condition limiting which accounts or networks the requests come from."
                    ),
                    fix=(
                        "Name the principals that need access instead of *, or add a condition such as "
                        '"StringEquals": {"kms:CallerAccount": "' + account_id + '"}, kms:ViaService, '
                        "aws:PrincipalOrgID or aws:SourceVpc."
                    ),
                    statement_index=source.index,
                    sid=source.sid,
                    principals=("*",),
                )
            )
            continue
        others = _other_accounts(source, account_id)
        if others:
            findings.append(
                Finding(
                    id="cross-account-access",
                    severity=Severity.MEDIUM,
                    title="Another account has access",
                    detail=(
                        f"The {_label(source)} allows {_list(others)}, outside account {account_id}, to call "
                        f"{actions} with no narrowing condition. That account's administrators decide which of "
                        "its users and roles get this access."
                    ),
                    fix=(
                        "If the access is intended, limit it with a condition such as kms:ViaService (only "
                        "through a named AWS service) or aws:PrincipalArn (only named roles); otherwise remove "
                        "these principals."
                    ),
                    statement_index=source.index,
                    sid=source.sid,
                    principals=others,
                )
            )
    return findings


def _root_access(compiled: CompiledPolicy, account_id: str, key_arn: str | None) -> list[Finding]:
    root = Caller.root(account_id)
    level, _ = _access(compiled, root, "kms:PutKeyPolicy", key_arn)
    if level is not _Level.NONE:
        return []
    root_arn = account_root_arn(account_id)
    named = any(
        statement.allow and bool(statement.principal_match(root) & DIRECT) and not statement.inert
        for statement in compiled.statements
    )
    detail = (
        f"The account root ({root_arn}) is named, but no statement lets it change this policy (kms:PutKeyPolicy)."
        if named
        else f"No statement allows the account root ({root_arn})."
    )
    return [
        Finding(
            id="no-root-access",
            severity=Severity.HIGH,
            title="The account cannot manage this key",
            detail=(
                f"{detail} IAM policies in the account cannot give anyone access to this key, and if the "
                "principals this policy names are deleted, no one can manage the key any more."
            ),
            fix=(
                'Keep a statement that allows "kms:*" to {"AWS": "' + root_arn + '"} (the "Enable IAM User '
                'Permissions" statement of the default policy), and control access with IAM policies.'
            ),
            principals=(root_arn,),
        )
    ]


class _Group:
    """Principals that share a finding through one statement."""

    def __init__(self, statement: Statement) -> None:
        self.statement = statement
        self.principals: list[str] = []
        self.actions: dict[str, None] = {}
        self.missing: dict[str, None] = {}


def _named_callers(compiled: CompiledPolicy) -> list[tuple[str, Caller]]:
    """The users, roles and sessions the policy names (account principals are left to the other checks)."""
    callers: list[tuple[str, Caller]] = []
    for arn in compiled.policy.named_principals():
        parsed = parse_principal_arn(arn)
        if parsed is None or parsed.kind is PrincipalKind.ACCOUNT:
            continue
        caller = _caller_for(arn)
        if caller is not None:
            callers.append((arn, caller))
    return callers


def _self_grant(
    compiled: CompiledPolicy, callers: Sequence[tuple[str, Caller]], uses: Sequence[str], key_arn: str | None
) -> list[Finding]:
    groups: dict[int, _Group] = {}
    for arn, caller in callers:
        powers: list[tuple[str, CompiledStatement]] = []
        for action in SELF_GRANT_ACTIONS:
            level, statement = _access(compiled, caller, action, key_arn)
            if statement is not None and _usable_directly(level, statement):
                powers.append((action, statement))
        if not powers:
            continue
        missing = [action for action in uses if _access(compiled, caller, action, key_arn)[0] is _Level.NONE]
        if not missing:
            continue
        source = powers[0][1].source
        group = groups.setdefault(source.index, _Group(source))
        group.principals.append(arn)
        group.actions.update(dict.fromkeys(action for action, _ in powers))
        group.missing.update(dict.fromkeys(missing))
    findings = []
    for group in groups.values():
        source = group.statement
        findings.append(
            Finding(
                id="admins-can-self-grant",
                severity=Severity.MEDIUM,
                title="Key administrators can grant themselves use of this key",
                detail=(
                    f"The {_label(source)} lets {_list(group.principals)} call {_list(group.actions)}, but "
                    f"this policy does not allow them {_list(group.missing)}. With those permissions they can "
                    "create a grant for themselves, or change this policy, and use the key after all."
                ),
                fix=(
                    "If they must not use the key, give them only the administrative actions they need: "
                    "kms:Create* and kms:Put* include kms:CreateGrant and kms:PutKeyPolicy. Limit "
                    'kms:CreateGrant with "Bool": {"kms:GrantIsForAWSResource": "true"}, and keep '
                    "kms:PutKeyPolicy for people trusted with the key's use too."
                ),
                statement_index=source.index,
                sid=source.sid,
                principals=tuple(group.principals),
            )
        )
    return findings


def _deleters(
    compiled: CompiledPolicy, callers: Sequence[tuple[str, Caller]], key_arn: str | None
) -> list[Finding]:
    groups: dict[int, _Group] = {}
    for arn, caller in callers:
        level, statement = _access(compiled, caller, DELETE_ACTION, key_arn)
        # Everyone and kms:* have findings of their own.
        if level is _Level.NONE or statement is None or _is_everyone(statement.source):
            continue
        if _covers_every_kms_action(statement):
            continue
        groups.setdefault(statement.index, _Group(statement.source)).principals.append(arn)
    return [
        Finding(
            id="admins-can-delete",
            severity=Severity.LOW,
            title="Administrators can delete this key",
            detail=(
                f"The {_label(group.statement)} lets {_list(group.principals)} schedule the deletion of this "
                "key (kms:ScheduleKeyDeletion). Once deleted, everything encrypted under it is lost."
            ),
            fix=(
                # Said where the finding is shown (the key policy editor, the findings list, the API): the
                # create-key wizard's "Allow key administrators to delete this key" box is not there, and the
                # policy's people view changes who, not which actions.
                "Remove kms:ScheduleKeyDeletion from this statement's Action list (in the console: the key "
                "policy's JSON document), so that deletion needs the account root or a break-glass role, or "
                "require MFA with the condition aws:MultiFactorAuthPresent."
            ),
            statement_index=group.statement.index,
            sid=group.statement.sid,
            principals=tuple(group.principals),
        )
        for group in groups.values()
    ]


def _covers_every_kms_action(statement: CompiledStatement) -> bool:
    return all(statement.covers_action(action.lower()) for action in KEY_ACTIONS)


def _full_access(compiled: CompiledPolicy, key_arn: str | None) -> list[Finding]:
    findings: list[Finding] = []
    for statement in compiled.statements:
        source = statement.source
        if not statement.allow or not _on_key(statement, key_arn, unknown=True):
            continue
        if not _covers_every_kms_action(statement):
            continue
        if _is_everyone(source) or source.principal is None:
            non_root: tuple[str, ...] = ("*",)
            who = _principal_text(source)
        else:
            block = source.principal
            non_root = tuple(
                value
                for value in (*block.aws, *block.service, *block.federated)
                if (parsed := parse_principal_arn(value)) is None or parsed.kind is not PrincipalKind.ACCOUNT
            )
            who = _list(non_root)
        if not non_root:
            continue
        findings.append(
            Finding(
                id="full-access-to-non-root",
                severity=Severity.MEDIUM,
                title="Every KMS action is allowed to principals other than the account",
                detail=(
                    f"The {_label(source)} allows {who} every KMS action on this key (kms:*), "
                    "including changing its policy, creating grants and scheduling its deletion."
                ),
                fix=(
                    "Give these principals only the actions they need (for example the key user actions, or the "
                    "key administrator actions without kms:PutKeyPolicy); keep kms:* for the account root."
                ),
                statement_index=source.index,
                sid=source.sid,
                principals=non_root,
            )
        )
    return findings


def _inert(policy: Policy) -> list[Finding]:
    findings: list[Finding] = []
    for statement in policy.statements:
        if not statement.inert:
            continue
        missing = "Action" if statement.action is None and statement.not_action is None else "Resource"
        findings.append(
            Finding(
                id="statement-without-effect",
                severity=Severity.LOW,
                title="A statement has no effect",
                detail=f"The {_label(statement)} has no {missing} (or Not{missing}), so it never applies.",
                fix=f'Add "{missing}" to the statement, or remove the statement.',
                statement_index=statement.index,
                sid=statement.sid,
            )
        )
    return findings


def _ordered(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(
        sorted(
            findings,
            key=lambda finding: (
                _SEVERITY_ORDER[finding.severity],
                -1 if finding.statement_index is None else finding.statement_index,
            ),
        )
    )


def key_policy_findings(
    policy: Policy | CompiledPolicy,
    *,
    account_id: str,
    key_spec: str = "SYMMETRIC_DEFAULT",
    key_usage: str = "ENCRYPT_DECRYPT",
    key_arn: str | None = None,
) -> tuple[Finding, ...]:
    """The findings for a key policy of a key in ``account_id``, most severe first."""
    compiled = _compiled(policy)
    if compiled.kind is not PolicyKind.KEY:
        raise TypeError("key_policy_findings needs a key policy")
    callers = _named_callers(compiled)
    return _ordered(
        [
            *_external_access(compiled, account_id),
            *_root_access(compiled, account_id, key_arn),
            *_self_grant(compiled, callers, use_actions(key_spec, key_usage), key_arn),
            *_full_access(compiled, key_arn),
            *_deleters(compiled, callers, key_arn),
            *_inert(compiled.policy),
        ]
    )


def identity_policy_findings(policy: Policy | CompiledPolicy) -> tuple[Finding, ...]:
    """The findings for an identity (IAM) policy, most severe first."""
    compiled = _compiled(policy)
    if compiled.kind is not PolicyKind.IDENTITY:
        raise TypeError("identity_policy_findings needs an identity policy")
    findings: list[Finding] = []
    for statement in compiled.statements:
        source = statement.source
        if not statement.allow or not statement.any_resource or statement.conditions:
            continue
        if not _covers_every_kms_action(statement):
            continue
        findings.append(
            Finding(
                id="identity-full-kms-access",
                severity=Severity.MEDIUM,
                title="Every KMS action on every key",
                detail=(
                    f"The {_label(source)} allows {_action_text(source)} on every resource. On every key whose "
                    "key policy lets IAM policies count (the default key policy does), this principal can use, "
                    "re-grant, re-write the policy of and delete the key."
                ),
                fix=(
                    "List the actions this principal needs, and name the keys in Resource (key ARNs), or "
                    "add a condition such as aws:ResourceTag/<tag> or kms:ResourceAliases."
                ),
                statement_index=source.index,
                sid=source.sid,
            )
        )
    return _ordered(findings)
