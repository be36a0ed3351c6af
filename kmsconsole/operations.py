"""The operation table, and `perform()`: the one door every operation goes through.

Each operation is declared once: its name, the IAM action it needs, how its key is resolved, whether grants may
allow it, and which request and response fields are secret. The KMS endpoint, the REST API, the console, the
CLI and the workers all call `perform()`, which audits the call (fail closed) and refuses to answer if the
service never reached an authorization decision, so no path can skip the engine.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kmsconsole.audit.recorder import AuditRecord, DeferredEvents, WouldBeAllowed, audited
from kmsconsole.core import errors
from kmsconsole.core.context import Caller, RequestMeta


class KeyResolution(enum.Enum):
    """How an operation finds the key it acts on."""

    NONE = "none"  # account-level: decided by identity policies alone
    KEY_ID_OR_ARN = "key-id-or-arn"  # management operations: key id or key ARN
    ANY_IDENTIFIER = "any-identifier"  # crypto operations and DescribeKey: id, ARN, alias name, alias ARN
    CIPHERTEXT = "ciphertext"  # Decrypt, ReEncrypt source: from the ciphertext blob (or KeyId)
    ALIAS = "alias"  # alias operations: the alias, then its key


class KeyStates(enum.Enum):
    """Which key states an operation works in (kms-spec §4.2); the others raise AWS's exception."""

    ANY = "any"  # DescribeKey, GetKeyPolicy, List*, PutKeyPolicy, DeleteAlias, RevokeGrant, ...
    NOT_PENDING_DELETION = "not-pending-deletion"  # management: PendingDeletion -> KMSInvalidStateException
    USABLE = "usable"  # cryptographic use: Disabled -> DisabledException, PendingDeletion -> KMSInvalidState
    PENDING_DELETION_ONLY = "pending-deletion-only"  # CancelKeyDeletion


@dataclass(frozen=True)
class Operation:
    name: str
    action: str
    key_resolution: KeyResolution
    grantable: bool = False
    read_only: bool = False
    key_states: KeyStates = KeyStates.ANY
    # Whether a key in another account may be named (by ARN): cryptographic operations, DescribeKey,
    # GetPublicKey, CreateGrant, ListGrants, RevokeGrant, RetireGrant, GetKeyRotationStatus (kms-spec §7.2).
    cross_account: bool = False
    # Secret members beyond what the KMS service model marks (blobs and sensitive members are always secret).
    secret_request_fields: frozenset[str] = frozenset()
    secret_response_fields: frozenset[str] = frozenset()
    # Only the operator at the server's shell may perform it: `perform()` refuses every other caller before the
    # service runs, whatever its policies say (root-key rotation).
    operator_only: bool = False
    # Its work commits in batches of its own, outside the operation's transaction (it may touch every row), and
    # its event is written on its own at the end (a re-seal). Only for work that is safe to stop halfway.
    commits_in_batches: bool = False
    # Whether a request of it is someone using the key rather than managing it: the cryptographic operations
    # (GetPublicKey too: its answer is used to encrypt or verify outside KMS) and CreateGrant (how integrated
    # services such as EBS take up a key). A refusal of one of them on a key pending deletion is what "something
    # still depends on this key" means (kmsconsole.audit.marks); a management call (ScheduleKeyDeletion again,
    # EnableKey, a rotation setting) is someone looking after the key, not depending on it.
    uses_key: bool = False

    @property
    def cacheable(self) -> bool:
        """The cryptographic operations: they only read, so on the AWS endpoint they are served from the process
        caches (`kmsconsole.generations`) and their event is written through the audit group commit, outside a
        transaction (`kmsconsole.audit.writer`)."""
        return self.read_only and self.grantable and self.key_states is KeyStates.USABLE


_GRANT_TOKENS = frozenset({"GrantTokens", "GrantToken"})

_ID = KeyResolution.KEY_ID_OR_ARN
_ANY_ID = KeyResolution.ANY_IDENTIFIER
_MANAGE = KeyStates.NOT_PENDING_DELETION
_USE = KeyStates.USABLE


def _crypto(name: str, resolution: KeyResolution = _ANY_ID) -> Operation:
    """A cryptographic operation: grantable, cross-account, needs an Enabled key, a use of the key."""
    return Operation(
        name,
        f"kms:{name}",
        resolution,
        grantable=True,
        read_only=True,
        key_states=_USE,
        cross_account=True,
        uses_key=True,
    )


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        # KMS operations (the AWS endpoint's X-Amz-Target names).
        Operation(
            "GenerateRandom",
            "kms:GenerateRandom",
            KeyResolution.NONE,
            read_only=True,
            secret_response_fields=frozenset({"Plaintext", "CiphertextForRecipient"}),
        ),
        # Key management.
        Operation("CreateKey", "kms:CreateKey", KeyResolution.NONE),
        Operation(
            "DescribeKey", "kms:DescribeKey", _ANY_ID, grantable=True, read_only=True, cross_account=True
        ),
        Operation("ListKeys", "kms:ListKeys", KeyResolution.NONE, read_only=True),
        Operation("EnableKey", "kms:EnableKey", _ID, key_states=_MANAGE),
        Operation("DisableKey", "kms:DisableKey", _ID, key_states=_MANAGE),
        Operation("UpdateKeyDescription", "kms:UpdateKeyDescription", _ID, key_states=_MANAGE),
        Operation("ScheduleKeyDeletion", "kms:ScheduleKeyDeletion", _ID, key_states=_MANAGE),
        Operation(
            "CancelKeyDeletion", "kms:CancelKeyDeletion", _ID, key_states=KeyStates.PENDING_DELETION_ONLY
        ),
        # Read from the audit trail (keys.services.usage); any key state, the caller's own keys only (kms-spec §1).
        Operation("GetKeyLastUsage", "kms:GetKeyLastUsage", _ID, read_only=True),
        # The service event when a deletion window ends (a worker destroys the key; AWS logs it as DeleteKey).
        Operation("DeleteKey", "kms:DeleteKey", _ID),
        # Key policies.
        Operation("GetKeyPolicy", "kms:GetKeyPolicy", _ID, read_only=True),
        Operation("PutKeyPolicy", "kms:PutKeyPolicy", _ID),
        Operation("ListKeyPolicies", "kms:ListKeyPolicies", _ID, read_only=True),
        # Aliases: IAM permission on the alias ARN and key-policy permission on the key(s).
        Operation("CreateAlias", "kms:CreateAlias", KeyResolution.ALIAS, key_states=_MANAGE),
        Operation("UpdateAlias", "kms:UpdateAlias", KeyResolution.ALIAS),
        Operation("DeleteAlias", "kms:DeleteAlias", KeyResolution.ALIAS),
        Operation("ListAliases", "kms:ListAliases", KeyResolution.NONE, read_only=True),
        # Custom key stores: this KMS has none; listing them is an IAM-only read of the account (an empty list).
        Operation(
            "DescribeCustomKeyStores", "kms:DescribeCustomKeyStores", KeyResolution.NONE, read_only=True
        ),
        # Tags.
        Operation("TagResource", "kms:TagResource", _ID, key_states=_MANAGE),
        Operation("UntagResource", "kms:UntagResource", _ID, key_states=_MANAGE),
        Operation("ListResourceTags", "kms:ListResourceTags", _ID, read_only=True),
        # Rotation.
        Operation("EnableKeyRotation", "kms:EnableKeyRotation", _ID, key_states=_USE),
        Operation("DisableKeyRotation", "kms:DisableKeyRotation", _ID, key_states=_USE),
        Operation(
            "GetKeyRotationStatus", "kms:GetKeyRotationStatus", _ID, read_only=True, cross_account=True
        ),
        Operation("RotateKeyOnDemand", "kms:RotateKeyOnDemand", _ID, key_states=_USE),
        Operation("ListKeyRotations", "kms:ListKeyRotations", _ID, read_only=True),
        Operation("RotateKey", "kms:RotateKey", _ID, key_states=_USE),  # the automatic rotation service event
        # Cryptographic operations.
        _crypto("Encrypt"),
        _crypto("Decrypt", KeyResolution.CIPHERTEXT),
        _crypto("ReEncrypt", KeyResolution.CIPHERTEXT),
        _crypto("GenerateDataKey"),
        _crypto("GenerateDataKeyWithoutPlaintext"),
        _crypto("GenerateDataKeyPair"),
        _crypto("GenerateDataKeyPairWithoutPlaintext"),
        _crypto("Sign"),
        _crypto("Verify"),
        _crypto("GenerateMac"),
        _crypto("VerifyMac"),
        _crypto("GetPublicKey"),
        _crypto("DeriveSharedSecret"),
        # ML-KEM keys (kms-spec §1): like DeriveSharedSecret, grantable, cross-account, Enabled keys only. The
        # shared secret (a sensitive blob) and the ciphertext (a blob) are secret by the service model.
        _crypto("Encapsulate"),
        _crypto("Decapsulate"),
        # Grants (kms-spec §8). RetireGrant is decided by the grant itself (grants.services.removal), not by a key
        # policy.
        Operation(
            "CreateGrant",
            "kms:CreateGrant",
            _ID,
            grantable=True,
            key_states=_USE,
            cross_account=True,
            uses_key=True,
            secret_response_fields=frozenset({"GrantToken"}),
        ),
        Operation("ListGrants", "kms:ListGrants", _ID, read_only=True, cross_account=True),
        Operation("ListRetirableGrants", "kms:ListRetirableGrants", KeyResolution.NONE, read_only=True),
        Operation("RetireGrant", "kms:RetireGrant", _ID, cross_account=True),
        Operation("RevokeGrant", "kms:RevokeGrant", _ID, cross_account=True),
        # The service event when a worker propagates a grant: it takes effect, or its delayed retirement completes.
        Operation("PropagateGrant", "kmsconsole:PropagateGrant", _ID),
        # The service event on a key whose policy or grants named a user or role that was deleted: the key policy
        # names its unique id instead, its grants to it are retired (policies.deletion).
        Operation("UnbindDeletedPrincipal", "kmsconsole:UnbindDeletedPrincipal", _ID),
        # Principal administration (the `manage.py iam` CLI, later the console and the REST API).
        Operation("iam:CreateAccount", "kmsconsole:CreateAccount", KeyResolution.NONE),
        Operation("iam:CreateUser", "iam:CreateUser", KeyResolution.NONE),
        Operation("iam:CreateRole", "iam:CreateRole", KeyResolution.NONE),
        Operation("iam:CreateGroup", "iam:CreateGroup", KeyResolution.NONE),
        Operation("iam:AddUserToGroup", "iam:AddUserToGroup", KeyResolution.NONE),
        Operation("iam:PutUserPolicy", "iam:PutUserPolicy", KeyResolution.NONE),
        Operation("iam:PutRolePolicy", "iam:PutRolePolicy", KeyResolution.NONE),
        Operation("iam:PutGroupPolicy", "iam:PutGroupPolicy", KeyResolution.NONE),
        Operation("iam:RemoveUserFromGroup", "iam:RemoveUserFromGroup", KeyResolution.NONE),
        Operation("iam:DeleteUserPolicy", "iam:DeleteUserPolicy", KeyResolution.NONE),
        Operation("iam:DeleteRolePolicy", "iam:DeleteRolePolicy", KeyResolution.NONE),
        Operation("iam:DeleteGroupPolicy", "iam:DeleteGroupPolicy", KeyResolution.NONE),
        # Deleting principals: refused (DeleteConflict) while the entity still has what AWS makes you remove first.
        Operation("iam:DeleteUser", "iam:DeleteUser", KeyResolution.NONE),
        Operation("iam:DeleteRole", "iam:DeleteRole", KeyResolution.NONE),
        Operation("iam:DeleteGroup", "iam:DeleteGroup", KeyResolution.NONE),
        Operation("kmsconsole:DeleteConsoleLogin", "kmsconsole:DeleteConsoleLogin", KeyResolution.NONE),
        # Reads of principals (the REST API): identity policies decide, on the entity's ARN.
        *(
            Operation(name, name, KeyResolution.NONE, read_only=True)
            for name in (
                "kmsconsole:ListAccounts",
                "iam:ListUsers",
                "iam:GetUser",
                "iam:ListRoles",
                "iam:GetRole",
                "iam:ListGroups",
                "iam:GetGroup",
                "iam:ListUserPolicies",
                "iam:GetUserPolicy",
                "iam:ListRolePolicies",
                "iam:GetRolePolicy",
                "iam:ListGroupPolicies",
                "iam:GetGroupPolicy",
                "iam:ListAccessKeys",
                "kmsconsole:ListApiTokens",
            )
        ),
        Operation(
            "iam:CreateAccessKey",
            "iam:CreateAccessKey",
            KeyResolution.NONE,
            secret_response_fields=frozenset({"SecretAccessKey"}),
        ),
        Operation(
            "kmsconsole:CreateConsoleLogin",
            "kmsconsole:CreateConsoleLogin",
            KeyResolution.NONE,
            secret_request_fields=frozenset({"Password"}),
            secret_response_fields=frozenset({"Password"}),
        ),
        Operation(
            "kmsconsole:RegisterIntegratedService", "kmsconsole:RegisterIntegratedService", KeyResolution.NONE
        ),
        # The product's own operations (the REST API and `manage.py api-token`), decided by identity policies
        # except where they act on a key: the version history reads its policy (kms:GetKeyPolicy); validating a
        # draft is a dry run of PutKeyPolicy (kms:PutKeyPolicy: it tells whether the principals it names exist).
        Operation("kmsconsole:ValidateKeyPolicy", "kms:PutKeyPolicy", _ID, read_only=True),
        Operation("kmsconsole:ListKeyPolicyVersions", "kms:GetKeyPolicy", _ID, read_only=True),
        # Checking a draft identity policy reads nothing stored: account-level, its own action.
        Operation(
            "kmsconsole:ValidateIdentityPolicy",
            "kmsconsole:ValidateIdentityPolicy",
            KeyResolution.NONE,
            read_only=True,
        ),
        # The access analyzer and the policy simulator (policies/analyzer/services.py): each needs its own action
        # in IAM and, on a key, the reads of what it shows as well (its policy, tags, grants, rotation status).
        Operation("kmsconsole:AnalyzeKeyAccess", "kmsconsole:AnalyzeKeyAccess", _ID, read_only=True),
        Operation("kmsconsole:SimulatePolicy", "kmsconsole:SimulatePolicy", _ANY_ID, read_only=True),
        Operation("kmsconsole:ListFindings", "kmsconsole:ListFindings", KeyResolution.NONE, read_only=True),
        Operation(
            "kmsconsole:ListAuditEvents", "kmsconsole:ListAuditEvents", KeyResolution.NONE, read_only=True
        ),
        Operation("kmsconsole:GetAuditEvent", "kmsconsole:GetAuditEvent", KeyResolution.NONE, read_only=True),
        # The audit dashboard: a download of the filtered trail, and a check of the chain asked for on demand
        # (or run by beat). Retention's archive-then-delete is the worker's own event.
        Operation(
            "kmsconsole:ExportAuditEvents", "kmsconsole:ExportAuditEvents", KeyResolution.NONE, read_only=True
        ),
        # Its work, a queued request or the shell's walk of every event (kmsconsole.audit.verification), is kept
        # even when its event cannot be written: a tampered chain head refuses new events, and the broken chain
        # must still be reported and shown on the dashboard. The walk holds no transaction open meanwhile.
        Operation(
            "kmsconsole:VerifyAuditChain",
            "kmsconsole:VerifyAuditChain",
            KeyResolution.NONE,
            read_only=True,
            commits_in_batches=True,
        ),
        Operation("kmsconsole:ArchiveAuditEvents", "kmsconsole:ArchiveAuditEvents", KeyResolution.NONE),
        # `manage.py audit reindex-context` and `reindex-key-owners` (kmsconsole.audit.maintenance): the
        # operator's alone, each committing in batches over the whole trail.
        Operation(
            "kmsconsole:ReindexAuditContext",
            "kmsconsole:ReindexAuditContext",
            KeyResolution.NONE,
            operator_only=True,
            commits_in_batches=True,
        ),
        Operation(
            "kmsconsole:ReindexAuditKeyOwners",
            "kmsconsole:ReindexAuditKeyOwners",
            KeyResolution.NONE,
            operator_only=True,
            commits_in_batches=True,
        ),
        Operation("kmsconsole:ListJobRuns", "kmsconsole:ListJobRuns", KeyResolution.NONE, read_only=True),
        Operation(
            "kmsconsole:CreateApiToken",
            "kmsconsole:CreateApiToken",
            KeyResolution.NONE,
            secret_response_fields=frozenset({"Token"}),
        ),
        Operation("kmsconsole:RevokeApiToken", "kmsconsole:RevokeApiToken", KeyResolution.NONE),
        # Root-key rotation (`manage.py rootkey`, kmsconsole.core.rootkey_rotation): the operator's alone. No
        # interface but the command offers them, and no identity policy (not even `kmsconsole:*`) reaches them.
        Operation(
            "kmsconsole:RotateRootKey", "kmsconsole:RotateRootKey", KeyResolution.NONE, operator_only=True
        ),
        Operation(
            "kmsconsole:ResealRootKeys",
            "kmsconsole:ResealRootKeys",
            KeyResolution.NONE,
            operator_only=True,
            commits_in_batches=True,
        ),
        Operation(
            "kmsconsole:RetireRootKeys", "kmsconsole:RetireRootKeys", KeyResolution.NONE, operator_only=True
        ),
        # `rootkey retire --end-unmovable` (the operator only): role sessions still under a root key being retired.
        Operation(
            "kmsconsole:EndRoleSessions", "kmsconsole:EndRoleSessions", KeyResolution.NONE, operator_only=True
        ),
        Operation("iam:UpdateAccessKey", "iam:UpdateAccessKey", KeyResolution.NONE),
        Operation("iam:DeleteAccessKey", "iam:DeleteAccessKey", KeyResolution.NONE),
        Operation(
            "sts:AssumeRole",
            "sts:AssumeRole",
            KeyResolution.NONE,
            secret_response_fields=frozenset({"SecretAccessKey", "SessionToken"}),
        ),
    )
}
# The operations whose refusal on a key pending deletion is a use of it (Operation.uses_key).
KEY_USE_OPERATIONS = frozenset(name for name, op in OPERATIONS.items() if op.uses_key)


OPERATOR_ONLY_REASON = (
    "only the operator at the server's shell may perform this operation; no policy allows it"
)


def require_operator(ctx: OperationContext) -> None:
    """Refuse (AccessDeniedException, the denial recorded) any caller but the operator, before any engine is asked:
    an identity policy allowing the action, even `kmsconsole:*` or `*`, does not count."""
    if not ctx.caller.is_operator:
        ctx.audit.authorized(allowed=False, reason=OPERATOR_ONLY_REASON, decided_by="operator-only")
        raise errors.AccessDeniedException(
            f"User: {ctx.caller.arn} is not authorized to perform: {ctx.operation.action} because "
            f"{OPERATOR_ONLY_REASON}"
        )


def operation(name: str) -> Operation:
    try:
        return OPERATIONS[name]
    except KeyError:
        raise errors.UnknownOperationException(f"Unknown operation {name[:64]}") from None


@dataclass(frozen=True)
class OperationContext:
    """What a service receives: the operation, who calls, over what, and the audit record it fills in."""

    operation: Operation
    caller: Caller
    meta: RequestMeta
    audit: AuditRecord
    # The request's GrantTokens (on operations that take them): a grant they name allows at once, before it has
    # propagated. Carried here so that every key check of the operation sees them.
    grant_tokens: tuple[str, ...] = ()
    # DryRun (the AWS endpoint's cryptographic and grant operations): the service makes every check, then answers
    # DryRunOperationException (`stop_if_dry_run`) instead of doing the work; it opens key material only where
    # the answer depends on it (DRY_RUN_NEEDS_MATERIAL).
    dry_run: bool = False
    # Decide only (the console, before the password of sudo mode): a change stops at its first allowed decision
    # (`stop_if_deciding_only`), nothing done, no event of its own; a refusal is recorded and answered as usual;
    # checks after that decision run after the password. Reads run. A change that returns instead fails closed
    # (`kmsconsole.console.dispatch.run`).
    decide_only: bool = False
    # What the operation's own decision read and its questions may reuse within this one request: the caller's
    # compiled identity policies (`policies.authorization.request_identity_policies`), so that a list asking many
    # questions reads them once. Never carried across requests.
    read_once: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def stop_if_dry_run(self) -> None:
        """A dry run ends here, where the operation would start (or, for DRY_RUN_NEEDS_MATERIAL, return) its work:
        every check has passed, so it answers as AWS does when the request would have succeeded."""
        if self.dry_run:
            raise errors.DryRunOperationException(DRY_RUN_MESSAGE)

    def stop_if_deciding_only(self) -> None:
        """Called by `authorize()` after each allowed decision: a change decided only ends there, before any work
        (every service authorizes before it changes anything)."""
        if self.decide_only and not self.operation.read_only:
            raise WouldBeAllowed(self.operation.name, self.audit.request_parameters)


DRY_RUN_MESSAGE = "The request would have succeeded, but the DryRun option is set."
# The operations whose dry run must open key material to tell whether the request would succeed: whether a
# ciphertext decrypts (AWS's DryRunModifiers IGNORE_CIPHERTEXT skips that), whether a MAC matches. Every other
# dry run stops before any material is unsealed (`keys.materials.open_material` refuses it).
DRY_RUN_NEEDS_MATERIAL = frozenset({"Decrypt", "ReEncrypt", "VerifyMac"})


@functools.cache
def secret_fields(op: Operation) -> tuple[frozenset[str], frozenset[str]]:
    from kmsconsole.awskms.model import is_modeled_operation, secret_members

    request, response = op.secret_request_fields | _GRANT_TOKENS, op.secret_response_fields
    if is_modeled_operation(op.name):
        modeled_request, modeled_response = secret_members(op.name)
        request, response = request | modeled_request, response | modeled_response
    return request, response


def redact(values: Mapping[str, Any] | None, secret: frozenset[str]) -> dict[str, Any] | None:
    """A copy fit for the audit trail: members named in `secret` (at any depth) and anything that is not plain
    JSON (bytes) are left out."""
    if values is None:
        return None
    return _redact_mapping(values, secret)


def _redact_mapping(values: Mapping[str, Any], secret: frozenset[str]) -> dict[str, Any]:
    kept = {}
    for name, value in values.items():
        if name in secret or not isinstance(name, str):
            continue
        cleaned = _redact_value(value, secret)
        if cleaned is not _DROPPED:
            kept[name] = cleaned
    return kept


_DROPPED = object()


def _redact_value(value: Any, secret: frozenset[str]) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return _redact_mapping(value, secret)
    if isinstance(value, list | tuple):
        return [item for item in (_redact_value(v, secret) for v in value) if item is not _DROPPED]
    return _DROPPED


def _grant_tokens(params: Mapping[str, Any]) -> tuple[str, ...]:
    tokens = params.get("GrantTokens")
    if isinstance(tokens, list | tuple):
        return tuple(token for token in tokens if isinstance(token, str))
    return ()


Result = TypeVar("Result", bound=Mapping[str, Any])


def perform(
    name: str,
    *,
    caller: Caller,
    meta: RequestMeta,
    params: Mapping[str, Any],
    service: Callable[[OperationContext], Result],
    record: AuditRecord | None = None,
    deferred: DeferredEvents | None = None,
) -> Result:
    """Run one operation through authorization and the audit trail. `service` returns the response elements.

    Pass `record` to read the decision afterwards (the KMS endpoint does, for X-Kms-Explain), and `deferred` to
    run it inside another operation's transaction with its event appended at the end of that one's work
    (`kmsconsole.audit.recorder.events_at_the_end`).
    """
    op = operation(name)
    secret_request, secret_response = secret_fields(op)
    if record is None:
        record = AuditRecord(operation=op.name, meta=meta)
    record.operation, record.caller = op.name, caller
    record.request_parameters = redact(params, secret_request)
    with audited(record, standalone=op.cacheable or op.commits_in_batches, deferred=deferred):
        context = OperationContext(
            operation=op, caller=caller, meta=meta, audit=record, grant_tokens=_grant_tokens(params)
        )
        if op.operator_only:
            require_operator(context)
        result = service(context)
        if not record.has_decision:
            # A service that returns without asking the engine is a side door; fail closed.
            raise errors.KMSInternalException("The operation was not authorized.")
        record.response_elements = redact(result, secret_response)
        if record.applied:
            record.response_elements = {**(record.response_elements or {}), **record.applied}
    return result
