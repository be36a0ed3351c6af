"""Key policies: GetKeyPolicy, PutKeyPolicy, ListKeyPolicies, and the validation CreateKey shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from keys.models import Key, KeyPolicyVersion
from keys.selectors import key_tags
from keys.services.access import (
    KeyQuestions,
    key_for,
    key_for_write_naming,
    request_condition_values,
)
from kmsconsole.audit.marks import SELF_GRANTED_USE
from kmsconsole.core import errors
from kmsconsole.core.text import listed
from kmsconsole.operations import OperationContext
from policies import engine
from policies.authorization import ensure_no_lockout, gained_uses
from policies.principal_locks import ROW_KINDS, NamedPrincipals, lock_named

DEFAULT_POLICY_NAME = "default"
RAM_POLICY_NAME = "AWS_RAM"


def _missing(arns: Sequence[str]) -> set[str]:
    """Those of the principal ARNs that name no principal here, looked up without a lock in one query per kind (a
    draft's check, which writes nothing)."""
    named = lock_named(arns, lock=False)
    return {arn for arn in arns if not _principals_exist([arn], named)}


@dataclass(frozen=True)
class MissingPrincipals:
    """The principals a draft key policy names that do not exist, as much as its author is told
    (`missing_principals`)."""

    # ARNs of the caller's own account (of any account, for the operator).
    here: frozenset[str]
    # Whether a principal of another account is missing; never which one.
    elsewhere: bool


def missing_principals(ctx: OperationContext, arns: Sequence[str]) -> MissingPrincipals:
    """Which principals of a draft do not exist, for the policy editor (a check that writes nothing: no lock).

    A missing principal of the caller's own account is named, so the editor can mark it; of another account's,
    the editor learns only that one of them is missing, in AWS's words (MalformedPolicyDocumentException, "Policy
    contains a statement with one or more invalid principals.", which names none). That AWS refuses a principal
    that does not exist in another account is inherent (a PutKeyPolicy naming only it tells as much), but one
    check no longer lists which of many exist. One query per kind of principal, whatever exists."""
    unique = list(dict.fromkeys(arns))
    missing = _missing(unique)
    named = {arn for arn in unique if _told_by_name(ctx, arn)}
    return MissingPrincipals(
        here=frozenset(arn for arn in named if arn in missing),
        elsewhere=any(arn in missing for arn in unique if arn not in named),
    )


def missing_principal_message(arns: Sequence[str], where: str = "") -> str:
    """AWS's refusal of a policy naming a principal that does not exist, with the principals named ("X does not
    exist", "X and Y do not exist") and `where` (e.g. which statement): what the console may tell about principals
    of the caller's own account (`missing_principals`); the KMS endpoint keeps AWS's words, which name none."""
    place = f" ({where})" if where else ""
    verb = "does" if len(arns) == 1 else "do"
    return f"{engine.INVALID_PRINCIPALS_MESSAGE} {listed(arns)} {verb} not exist{place}."


def missing_principal_messages(missing: MissingPrincipals) -> list[str]:
    """What the console says of `missing` in one place: the caller's own account's missing principals named in
    one sentence, and AWS's words alone (naming none) when one of another account is missing too, as the key
    policy editor marks it (`kmsconsole.console.policy_check`)."""
    named = [missing_principal_message(sorted(missing.here))] if missing.here else []
    return named + ([engine.INVALID_PRINCIPALS_MESSAGE] if missing.elsewhere else [])


def parsed_for_write(document: str, *, stored: bool = False) -> engine.Policy:
    """The policy parsed as a write checks it (`stored`: a restored version, which may keep a deleted principal's
    unique id, as the version does); the engine's error in AWS's words."""
    try:
        return engine.parse_policy(document, engine.PolicyKind.KEY, stored=stored)
    except engine.EngineError as exc:
        raise errors.error_for_code(exc.code, exc.message) from None


def lock_principals_of(document: str, *, lock: bool = True) -> NamedPrincipals:
    """The users and roles the key policy `document` names, looked up and (unless `lock` is False) locked, before
    a writer locks its key (`policies.principal_locks`: principals first). A document that does not parse names
    nobody here: the write refuses it later, once its caller is known to be allowed to hear why."""
    try:
        parsed = engine.parse_policy(document, engine.PolicyKind.KEY, stored=True)
    except engine.EngineError:
        return NamedPrincipals()
    return lock_named(parsed.named_principals(), lock=lock)


def principal_ids_of(document: str) -> dict[str, str | None]:
    """What a version of the stored policy `document` records (`KeyPolicyVersion.principal_ids`), looked up
    without a lock: for a policy written by the service itself (a principal's deletion rewriting it), whose other
    principals it does not check. A principal deleted meanwhile rewrites the key after this transaction commits
    (its deletion waits for the key's row), so what is recorded here was true when this version was written."""
    arns = engine.parse_policy(document, engine.PolicyKind.KEY, stored=True).named_principals()
    return lock_named(arns, lock=False).unique_ids(arns)


def _principals_exist(arns: Sequence[str], named: NamedPrincipals, *, unique_ids: bool = False) -> bool:
    """Whether every principal a key policy names exists here, as `named` found them (`lock_principals_of`). A
    deleted principal's unique id passes only when `unique_ids` (a restored version keeps it; it matches no
    caller)."""
    arns = [arn for arn in arns if not (unique_ids and engine.is_unique_id(arn))]
    parsed = [engine.parse_principal_arn(arn) for arn in arns]
    if any(one is None for one in parsed):
        return False
    named_all = [one for one in parsed if one is not None]
    found = named.existing(named_all)
    return all(
        exists
        if one.kind in ROW_KINDS
        # Accounts, federated users and identity providers are accepted as AWS accepts them.
        else one.kind is not engine.PrincipalKind.GROUP
        for one, exists in zip(named_all, found, strict=True)
    )


def _told_by_name(ctx: OperationContext, arn: str) -> bool:
    """Whether a missing `arn` may be named to the caller: one of its own account, anything for the operator, and
    what is no principal ARN at all (no account's state decides that)."""
    parsed = engine.parse_principal_arn(arn)
    return parsed is None or ctx.caller.is_operator or parsed.account_id == ctx.caller.account_id


def validate_key_policy(
    ctx: OperationContext,
    *,
    document: str,
    key: Key,
    bypass_lockout: bool,
    resource_tags: Mapping[str, str] | None = None,
    named: NamedPrincipals | None = None,
    lock: bool = True,
    stored: bool = False,
) -> dict[str, str | None]:
    """Refuse a key policy that does not parse, names principals that do not exist, or would lock the caller out
    of `key` (unless BypassPolicyLockoutSafetyCheck), whose tags are `resource_tags` (a key being created is not
    saved yet). The engine gives the messages, in AWS's words. Returns what the version of this document records
    (`KeyPolicyVersion.principal_ids`).

    `named`: the principals looked up before `key` was locked (`lock_principals_of`); without it they are looked
    up here, and locked unless `lock` is False (a check that writes nothing), which only a transaction that holds
    no key row may do. `stored`: the document is a version being restored, which may name a deleted principal's
    unique id."""
    parsed = parsed_for_write(document, stored=stored)
    try:
        compiled = engine.compile_key_policy(document)
    except engine.EngineError as exc:
        raise errors.error_for_code(exc.code, exc.message) from None
    arns = list(parsed.named_principals())
    if named is None:
        named = lock_named(arns, lock=lock)
    if not _principals_exist(arns, named, unique_ids=stored):
        raise errors.MalformedPolicyDocumentException(engine.INVALID_PRINCIPALS_MESSAGE)
    if not bypass_lockout:
        check_no_lockout(ctx, new_policy=compiled, key=key, resource_tags=resource_tags)
    return named.unique_ids(arns)


def check_no_lockout(
    ctx: OperationContext,
    *,
    new_policy: engine.CompiledPolicy,
    key: Key,
    resource_tags: Mapping[str, str] | None,
) -> None:
    """Refuse a policy under which the caller could not put the next one: a PutKeyPolicy request of the default
    policy, without the bypass, on the key, decided as that request would be (the key's own condition values:
    spec, usage, origin, aliases; the request's; the key's tags), so a statement conditioned on any of them counts
    as that request would find it."""
    ensure_no_lockout(
        ctx,
        new_policy=new_policy,
        key_arn=key.arn,
        resource_tags=resource_tags,
        condition_values=request_condition_values(
            ctx, key, condition_values=put_condition_values(DEFAULT_POLICY_NAME, False)
        ),
    )


def record_policy_version(
    ctx: OperationContext,
    key: Key,
    *,
    document: str,
    bypassed: bool,
    principal_ids: Mapping[str, str | None],
) -> KeyPolicyVersion:
    """The key's next policy version: `document`, and the unique ids of the users and roles it names as written
    (`KeyPolicyVersion.principal_ids`, what `validate_key_policy` returned)."""
    latest = key.policy_versions.order_by("-version").values_list("version", flat=True).first() or 0
    return KeyPolicyVersion.objects.create(
        key=key,
        version=latest + 1,
        document=document,
        created_by=ctx.caller.arn,
        bypassed_lockout_check=bypassed,
        principal_ids=dict(principal_ids),
    )


def _check_policy_name(policy_name: str) -> None:
    if policy_name == RAM_POLICY_NAME:
        raise errors.NotFoundException("No such policy exists for this key: AWS_RAM")
    if policy_name != DEFAULT_POLICY_NAME:
        raise errors.NotFoundException(f"No such policy exists for this key: {policy_name[:128]}")


def key_policy_get(
    *, ctx: OperationContext, key_id: str, policy_name: str = DEFAULT_POLICY_NAME
) -> tuple[Key, str]:
    key = key_for(ctx, key_id, condition_values={"kms:PolicyName": policy_name})
    _check_policy_name(policy_name)
    return key, key.policy


def put_condition_values(policy_name: str, bypass_lockout: bool) -> dict[str, object]:
    """The condition values of a PutKeyPolicy request (and of its dry run, the check of a draft)."""
    return {"kms:PolicyName": policy_name, "kms:BypassPolicyLockoutSafetyCheck": bypass_lockout}


def may_put_key_policy(ctx: OperationContext, key: Key) -> bool:
    """Whether the caller's PutKeyPolicy request on `key` (already resolved and checked by the current operation),
    without the bypass, would be allowed: decided by the engine as that request would be, and recorded nowhere
    (the current operation's event keeps its own decision). What a read may show only to who may change the
    policy asks first: the live check of a draft, the review of a restore."""
    try:
        return KeyQuestions(ctx).allows(
            key, "kms:PutKeyPolicy", condition_values=put_condition_values(DEFAULT_POLICY_NAME, False)
        )
    except errors.KmsError:  # e.g. a claimed integrated service the caller may not act as
        return False


def key_for_policy_check(ctx: OperationContext, key_id: str) -> Key:
    """The key a draft policy is checked against (kmsconsole:ValidateKeyPolicy), once a PutKeyPolicy request of
    the caller without the bypass would be allowed on it: the check is that request's dry run, and tells as much
    (whether the principals it names exist, which ones in the caller's own account: `missing_principals`; whether
    the caller would lock itself out)."""
    return key_for(ctx, key_id, condition_values=put_condition_values(DEFAULT_POLICY_NAME, False))


def key_policy_put(
    *,
    ctx: OperationContext,
    key_id: str,
    policy: str,
    policy_name: str = DEFAULT_POLICY_NAME,
    bypass_lockout: bool = False,
) -> Key:
    """Replace the key's policy, keeping the old one in the history."""
    if policy_name == RAM_POLICY_NAME:
        raise errors.ValidationException("The AWS_RAM policy can only be managed by the RAM service")
    # Authorized first, then the named principals' rows before the key's (`policies.principal_locks`); nothing is
    # told of them until the caller is allowed on the locked key too (validate_key_policy, below).
    key, named = key_for_write_naming(
        ctx,
        key_id,
        lambda: lock_principals_of(policy),
        condition_values=put_condition_values(policy_name, bypass_lockout),
    )
    _check_policy_name(policy_name)
    principal_ids = validate_key_policy(
        ctx,
        document=policy,
        key=key,
        bypass_lockout=bypass_lockout,
        resource_tags=key_tags(key),
        named=named,
    )
    store_key_policy(ctx, key, document=policy, bypassed=bypass_lockout, principal_ids=principal_ids)
    return key


def store_key_policy(
    ctx: OperationContext,
    key: Key,
    *,
    document: str,
    bypassed: bool,
    principal_ids: Mapping[str, str | None],
) -> KeyPolicyVersion:
    """Make the validated `document` the policy of the locked `key`, as a new version; a change by which the
    caller gains use of the key is marked notable."""
    if gained_uses(
        ctx,
        before=engine.compile_key_policy(key.policy),
        after=engine.compile_key_policy(document),
        key_arn=key.arn,
        actions=engine.use_actions(key.key_spec, key.key_usage),
    ):
        ctx.audit.notable = SELF_GRANTED_USE
    key.policy = document
    key.save(update_fields=["policy"])
    return record_policy_version(ctx, key, document=document, bypassed=bypassed, principal_ids=principal_ids)


def key_policy_list(*, ctx: OperationContext, key_id: str) -> tuple[Key, list[str]]:
    key = key_for(ctx, key_id)
    return key, [DEFAULT_POLICY_NAME]
