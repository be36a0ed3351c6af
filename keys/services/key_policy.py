"""Key policies: GetKeyPolicy, PutKeyPolicy, ListKeyPolicies, and the validation CreateKey shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from keys.models import Key, KeyPolicyVersion
from keys.selectors import key_tags
from keys.services.access import SELF_GRANTED_USE, key_for, request_condition_values
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies import engine
from policies.authorization import ensure_no_lockout, gained_uses
from policies.principal_locks import existing_locked

DEFAULT_POLICY_NAME = "default"
RAM_POLICY_NAME = "AWS_RAM"


def _existence(arns: Sequence[str], *, lock: bool) -> list[bool]:
    """For each principal ARN a key policy names, whether it exists here: users and roles (an assumed role's role)
    are looked up, one query each whatever exists; accounts, federated users and identity providers are accepted
    as AWS accepts them; a group, or what is no principal ARN, never. With `lock` the users and roles named are
    locked to the end of the transaction (`policies.principal_locks`), so a deletion of one running meanwhile
    either sees the new policy and rewrites it, or is seen to have removed the principal (the policy is then
    refused)."""
    parsed = [engine.parse_principal_arn(arn) for arn in arns]
    locked = iter(existing_locked([named for named in parsed if named is not None], lock=lock))
    return [named is not None and _exists(named, next(locked)) for named in parsed]


_LOOKED_UP = frozenset(
    {engine.PrincipalKind.USER, engine.PrincipalKind.ROLE, engine.PrincipalKind.ASSUMED_ROLE}
)


def _exists(named: engine.PrincipalArn, found: bool) -> bool:
    return found if named.kind in _LOOKED_UP else named.kind is not engine.PrincipalKind.GROUP


def _principals_exist(arns: Sequence[str], *, lock: bool = True) -> bool:
    """Whether every principal a key policy names exists here (`_existence`; locked unless `lock` is False)."""
    return all(_existence(arns, lock=lock))


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
    check no longer lists which of many exist. Each ARN is looked up once, whatever exists."""
    unique = list(dict.fromkeys(arns))
    exists = dict(zip(unique, _existence(unique, lock=False), strict=True))
    named = {arn for arn in unique if _told_by_name(ctx, arn)}
    return MissingPrincipals(
        here=frozenset(arn for arn in named if not exists[arn]),
        elsewhere=any(not exists[arn] for arn in unique if arn not in named),
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
) -> None:
    """Refuse a key policy that does not parse, names principals that do not exist, or would lock the caller out
    of `key` (unless BypassPolicyLockoutSafetyCheck), whose tags are `resource_tags` (a key being created is not
    saved yet). The engine gives the messages, in AWS's words."""
    try:
        parsed = engine.parse_key_policy(document)
        compiled = engine.compile_key_policy(document)
    except engine.EngineError as exc:
        raise errors.error_for_code(exc.code, exc.message) from None
    if not _principals_exist(list(parsed.named_principals())):
        raise errors.MalformedPolicyDocumentException(engine.INVALID_PRINCIPALS_MESSAGE)
    if not bypass_lockout:
        check_no_lockout(ctx, new_policy=compiled, key=key, resource_tags=resource_tags)


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
    ctx: OperationContext, key: Key, *, document: str, bypassed: bool
) -> KeyPolicyVersion:
    latest = key.policy_versions.order_by("-version").values_list("version", flat=True).first() or 0
    return KeyPolicyVersion.objects.create(
        key=key,
        version=latest + 1,
        document=document,
        created_by=ctx.caller.arn,
        bypassed_lockout_check=bypassed,
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
    key = key_for(
        ctx,
        key_id,
        lock=True,
        condition_values=put_condition_values(policy_name, bypass_lockout),
    )
    _check_policy_name(policy_name)
    validate_key_policy(
        ctx, document=policy, key=key, bypass_lockout=bypass_lockout, resource_tags=key_tags(key)
    )
    if gained_uses(
        ctx,
        before=engine.compile_key_policy(key.policy),
        after=engine.compile_key_policy(policy),
        key_arn=key.arn,
        actions=engine.use_actions(key.key_spec, key.key_usage),
    ):
        ctx.audit.notable = SELF_GRANTED_USE
    key.policy = policy
    key.save(update_fields=["policy"])
    record_policy_version(ctx, key, document=policy, bypassed=bypass_lockout)
    return key


def key_policy_list(*, ctx: OperationContext, key_id: str) -> tuple[Key, list[str]]:
    key = key_for(ctx, key_id)
    return key, [DEFAULT_POLICY_NAME]
