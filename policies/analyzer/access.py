"""A key's access matrix, and what a draft key policy would change in it.

The actions are the KMS actions of the operation table that act on a key and apply to the key's type (a
symmetric key has no Sign, an HMAC key no Encrypt, only symmetric keys rotate); alias operations (decided on the
alias ARN too), RetireGrant (decided by the grant itself) and the service's own events are left out.

The key is seen as a request on it sees it (``keys.selectors.key_condition_values`` and ``key_tags``, its grants
as ``grants.selectors.engine_grant`` makes them, including grants whose delayed removal has not happened yet,
which still allow), and each principal as ``principals.store_principals`` builds it. A principal of another
account is refused every action whose operation does not work across accounts (``local_actions``), as the real
request is (NotFoundException), whatever the policies say.

A key owner (``owner_key_access``, ``owner_key_access_diff``) is analysed with only its own account's principals
and "*" as the store has them; each other account the key policy or grants name is one synthetic principal
(``policies/analyzer/shown.py``), never that account's real principals or identity policies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from grants.models import Grant
from grants.selectors import engine_grant
from grants.services.key_operations import key_type
from keys.crypto import OPERATION_KEY_USAGE
from keys.crypto.specs import DATA_KEY_OPERATIONS
from keys.models import Key
from keys.selectors import key_condition_values, key_tags
from kmsconsole.core import errors
from kmsconsole.operations import OPERATIONS, KeyResolution
from policies import engine
from policies.analyzer.shown import account_principal, by_account, named_accounts
from policies.engine.analysis import AccessAnalyzer
from policies.engine.matrix import AccessChange, AccessMatrix, KeyTarget, Principal, access_matrix, compare

# Operations that are not a principal's request on a key, or are decided elsewhere.
NOT_ANALYSED = frozenset({"DeleteKey", "RotateKey", "RetireGrant"})
# ReEncrypt is authorized as two actions, one on each key.
EXPANDED = {"ReEncrypt": ("kms:ReEncryptFrom", "kms:ReEncryptTo")}
ROTATION_OPERATIONS = frozenset(
    {
        "EnableKeyRotation",
        "DisableKeyRotation",
        "GetKeyRotationStatus",
        "RotateKeyOnDemand",
        "ListKeyRotations",
    }
)
ASYMMETRIC_ONLY = frozenset({"GetPublicKey"})


def _key_operations() -> list[tuple[str, tuple[str, ...]]]:
    found = []
    for op in OPERATIONS.values():
        if not op.action.startswith("kms:") or op.name in NOT_ANALYSED:
            continue
        if op.key_resolution in (KeyResolution.NONE, KeyResolution.ALIAS) or op.name.startswith(
            "kmsconsole:"
        ):
            continue
        found.append((op.name, EXPANDED.get(op.name, (op.action,))))
    return found


def _applies(operation: str, key: Key) -> bool:
    usage = OPERATION_KEY_USAGE.get(operation)
    if usage is not None:
        symmetric_only = operation in DATA_KEY_OPERATIONS
        return key.key_usage == usage and (not symmetric_only or key.key_spec == "SYMMETRIC_DEFAULT")
    if operation in ROTATION_OPERATIONS:
        return key.key_spec == "SYMMETRIC_DEFAULT"
    if operation in ASYMMETRIC_ONLY:
        return key_type(key) == "ASYMMETRIC"
    return True


def all_key_actions() -> tuple[str, ...]:
    """Every KMS action the analysis and the simulator know, whatever the key type."""
    return tuple(dict.fromkeys(action for _, actions in _key_operations() for action in actions))


def key_actions(key: Key) -> tuple[str, ...]:
    """The KMS actions that apply to this key's type, in the operation table's order."""
    return tuple(
        dict.fromkeys(
            action for name, actions in _key_operations() if _applies(name, key) for action in actions
        )
    )


def action_applies(action: str, key: Key) -> bool:
    return action in key_actions(key)


def local_actions() -> frozenset[str]:
    """The actions (lower case) of the operations that do not work across accounts (the operation table's
    ``cross_account``, kms-spec §7.2): another account's request for one is answered NotFoundException."""
    return frozenset(
        action.lower()
        for name, actions in _key_operations()
        if not OPERATIONS[name].cross_account
        for action in actions
    )


def key_grants(key: Key, grantees: Sequence[str] | None = None) -> list[engine.Grant]:
    """The grants a request on the key would consult (optionally only those of some grantees)."""
    rows = Grant.objects.filter(key=key)
    if grantees is not None:
        rows = rows.filter(grantee_principal__in=list(grantees))
    return [engine_grant(row, key.arn) for row in rows.order_by("created_at", "pk")]


def grant_names(key: Key) -> dict[str, str]:
    return {
        grant_id: name for grant_id, name in Grant.objects.filter(key=key).values_list("grant_id", "name")
    }


def compiled_policy(document: str) -> engine.CompiledPolicy:
    """A key policy, compiled by the engine; its errors as the service layer's (MalformedPolicyDocument...)."""
    try:
        return engine.compile_key_policy(document)
    except engine.EngineError as exc:
        raise errors.error_for_code(exc.code, exc.message) from None


def key_target(key: Key, *, policy: str | None = None) -> KeyTarget:
    """The key as a request sees it; `policy` (a draft) replaces its policy."""
    return KeyTarget(
        arn=key.arn,
        account_id=key.account.account_id,
        policy=compiled_policy(key.policy if policy is None else policy),
        grants=tuple(key_grants(key)),
        tags=key_tags(key),
        values=key_condition_values(key, request_alias=None),
        local_actions=local_actions(),
    )


def key_access(
    key: Key,
    principals: Sequence[Principal],
    *,
    policy: str | None = None,
    analyzer: AccessAnalyzer | None = None,
) -> AccessMatrix:
    """Every principal's verdict for every action that applies to the key (under `policy` when given)."""
    return access_matrix(key_target(key, policy=policy), principals, key_actions(key), analyzer=analyzer)


def key_access_diff(
    key: Key,
    principals: Sequence[Principal],
    draft: str,
    *,
    shown: Callable[[AccessMatrix], AccessMatrix] | None = None,
) -> tuple[AccessChange, ...]:
    """Who would gain or lose which action if `draft` became the key's policy (each matrix as `shown` makes it)."""
    draft_policy = compiled_policy(draft)
    target = key_target(key)
    analyzer = AccessAnalyzer()
    actions = key_actions(key)
    before = access_matrix(target, principals, actions, analyzer=analyzer)
    after = access_matrix(target.with_policy(draft_policy), principals, actions, analyzer=analyzer)
    if shown is not None:
        before, after = shown(before), shown(after)
    return compare(before, after)


def _owner_matrix(
    target: KeyTarget,
    principals: Sequence[Principal],
    actions: tuple[str, ...],
    analyzer: AccessAnalyzer,
    accounts: Mapping[str, tuple[str, ...]],
    account_analyzer: AccessAnalyzer,
) -> AccessMatrix:
    own = [principal for principal in principals if not principal.subject.external_to(target.account_id)]
    anyone = [principal for principal in principals if principal.subject.kind == "anyone"]
    whole = [account_principal(account, named) for account, named in accounts.items()]
    mine = access_matrix(target, [*own, *anyone], actions, analyzer=analyzer)
    theirs = access_matrix(target, whole, actions, analyzer=account_analyzer)
    subjects = sorted(
        [*(subject for subject in mine.subjects if subject.kind != "anyone"), *theirs.subjects],
        key=lambda subject: subject.account_id,
    ) + [subject for subject in mine.subjects if subject.kind == "anyone"]
    return AccessMatrix(
        target.arn, target.account_id, actions, tuple(subjects), {**mine.cells, **theirs.cells}
    )


def owner_key_access(
    key: Key,
    principals: Sequence[Principal],
    *,
    analyzer: AccessAnalyzer | None = None,
    account_analyzer: AccessAnalyzer | None = None,
) -> AccessMatrix:
    """The matrix as the key's account is shown it: `principals` of that account and "*" (others are ignored),
    and each other account the key policy and grants name as a whole (``shown.by_account``)."""
    target = key_target(key)
    accounts = named_accounts(target.account_id, [target.policy], target.grants)
    matrix = _owner_matrix(
        target,
        principals,
        key_actions(key),
        analyzer or AccessAnalyzer(),
        accounts,
        account_analyzer or AccessAnalyzer(principal_unknown=True),
    )
    return by_account(matrix)


def owner_key_access_diff(key: Key, principals: Sequence[Principal], draft: str) -> tuple[AccessChange, ...]:
    """``key_access_diff`` as the key's account is shown it: each account the current or the draft policy (or a
    grant) names, as a whole, in both matrices."""
    draft_policy = compiled_policy(draft)
    target = key_target(key)
    accounts = named_accounts(target.account_id, [target.policy, draft_policy], target.grants)
    analyzer, account_analyzer = AccessAnalyzer(), AccessAnalyzer(principal_unknown=True)
    actions = key_actions(key)
    before = _owner_matrix(target, principals, actions, analyzer, accounts, account_analyzer)
    after = _owner_matrix(
        target.with_policy(draft_policy), principals, actions, analyzer, accounts, account_analyzer
    )
    return compare(by_account(before, keep_empty=True), by_account(after, keep_empty=True))
