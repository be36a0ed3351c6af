"""Restoring an earlier key policy version, bound to the principals the version meant.

A version names users and roles by ARN, and a user or role deleted and created again has the same ARN. Deleting a
principal rewrites the *current* policy of every key naming it (`policies.deletion`), but not the history: an
older version still names the ARN, and restoring it as written would give the new principal of that name what the
version gave the old one. AWS binds a policy to its principals' unique ids when it is saved; here each version
records them (`KeyPolicyVersion.principal_ids`, written by every PutKeyPolicy, CreateKey, deletion rewrite and
restore), and a restore (`restore_plan`) names, instead of an ARN whose principal's unique id is not the recorded
one any more (deleted, or deleted and recreated), the recorded unique id, as the deletion would have: the engine
never matches a unique id. The review of a restore (the console's page, the REST API's answer) says so, naming
the ARN.

A version written before versions recorded unique ids has none (`principal_ids` None): a restore of it cannot tell
a recreated principal from the one meant, so it keeps the ARN and the review warns about each ARN whose principal
was created after the version (one created before it is the principal the version named).

**Who is told what.** The notes tell the history of principals, and only the restore's own caller hears them: the
review (`restore_preview`, run as a read of the history, kms:GetKeyPolicy) gives the plan only to a caller whose
PutKeyPolicy on the key would be allowed, decided as that request would be and recorded nowhere but the page's
own event (`keys.services.key_policy.may_put_key_policy`); a reader sees the version as saved. Even then, another
account's principals are that account's business: their notes say only that the principal named by the ARN is no
longer (or may not be) the one the version named, never its unique id, whether it was deleted or recreated, nor
when it was created; only the operator hears those for every account. (The restored document names the unique id
it writes, as a deletion's rewrite names it in every account's key policies.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from keys.models import Key, KeyPolicyVersion
from keys.selectors import key_tags
from keys.services.access import expect_operation, key_for
from keys.services.key_policy import (
    DEFAULT_POLICY_NAME,
    lock_principals_of,
    may_put_key_policy,
    put_condition_values,
    store_key_policy,
    validate_key_policy,
)
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies import engine
from policies.deletion import DeletedPrincipal, policy_without
from policies.principal_locks import NamedPrincipals


@dataclass(frozen=True)
class RestorePlan:
    """What restoring a version writes: `document` (the version's text, with `rebound` ARNs replaced by the
    unique ids the version recorded for them), and `notes`, in words naming each ARN concerned: those rebound,
    and those whose principal may not be the one the version meant. `rebound_shown` is `rebound` as the caller
    may see it: another account's unique ids are None, but for the operator."""

    version: KeyPolicyVersion
    document: str
    rebound: dict[str, str]
    notes: tuple[str, ...]
    rebound_shown: dict[str, str | None] = field(default_factory=dict)

    @property
    def verbatim(self) -> bool:
        return self.document == self.version.document


def restore_plan(
    version: KeyPolicyVersion, named: NamedPrincipals, *, own_account: str | None
) -> RestorePlan:
    """The plan for restoring `version`, given the principals its ARNs name now (`lock_principals_of` on its
    document: locked by a restore, looked up without a lock by its review). `own_account`: the key's account,
    whose principals the notes tell in full (unique ids, deleted or recreated, creation times); the others' only
    as the module says. None: the operator, told everything."""
    number = version.version
    recorded = version.principal_ids
    document = version.document
    rebound: dict[str, str] = {}
    shown: dict[str, str | None] = {}
    notes: list[str] = []
    for arn, current in named.ids.items():
        told = own_account is None or _account_of(arn) == own_account
        if recorded is None:
            created = named.created.get(arn)
            if created is None:
                continue
            if not told:  # whenever it exists: when it was created is its account's business
                notes.append(
                    f"Version {number} was saved before versions recorded the unique ids of the principals they "
                    f"name, and {arn} is another account's principal: this cannot tell whether the principal named "
                    f"{arn} now is the one the version meant. Restoring the version gives it what the version "
                    f"gives {arn}."
                )
            elif created > version.created_at:
                notes.append(
                    f"Version {number} was saved before versions recorded the unique ids of the principals they "
                    f"name, and {arn} names a principal created after it ({created:%Y-%m-%d %H:%M} UTC): this "
                    f"cannot tell whether it is the principal the version meant. Restoring the version gives "
                    f"that principal what the version gives {arn}."
                )
            continue
        meant = recorded.get(arn)
        if meant is None:
            if current is not None:
                notes.append(
                    f"{arn} named no principal when version {number} was saved. Restoring the version gives "
                    f"the principal that has that name now what the version gives {arn}."
                    if told
                    else f"The principal named {arn} is not one version {number} named. Restoring the version "
                    f"gives it what the version gives {arn}."
                )
            continue
        if current == meant:
            continue
        rewritten = policy_without(document, DeletedPrincipal(arn, meant))
        if rewritten is None:  # named only outside Principal/NotPrincipal: nothing to rebind
            continue
        document = rewritten
        rebound[arn] = meant
        shown[arn] = meant if told else None
        if not told:
            notes.append(
                f"The principal named {arn} is no longer the one version {number} named: the restored policy names "
                f"it by the unique id of the one it named, which matches no one."
            )
            continue
        since = (
            "was deleted since, and another principal of that name created"
            if current is not None
            else "has been deleted since"
        )
        notes.append(
            f"The principal {arn} named when version {number} was saved {since}: the restored policy names its "
            f"unique id {meant} instead, which matches no one, as the deletion leaves a policy naming it."
        )
    return RestorePlan(version, document, rebound, tuple(notes), shown)


def _account_of(arn: str) -> str | None:
    parsed = engine.parse_principal_arn(arn)
    return parsed.account_id if parsed is not None else None


def policy_version_get(
    ctx: OperationContext,
    *,
    key_id: str,
    version: int,
    condition_values: Mapping[str, Any] | None = None,
) -> KeyPolicyVersion:
    """Version `version` of the key's policy, once the caller may make the request of `ctx` on the key (reading
    the history, or a PutKeyPolicy restoring it, with its `condition_values`), its row checked: a restore makes
    this document the key policy again, so never one edited outside the service (`kmsconsole.core.rowmac`)."""
    key = key_for(ctx, key_id, condition_values=condition_values)
    found = KeyPolicyVersion.objects.filter(key=key, version=version).select_related("key__account").first()
    if found is None:
        raise errors.NotFoundException(
            f"Version {version} of the policy of key {key_id[:128]} does not exist."
        )
    found.check_row()
    return found


@dataclass(frozen=True)
class RestorePreview:
    """The review of a restore: the version, and the plan of its restore (`plan`) for a caller who may restore it;
    None for one who may only read it, who sees the version as saved."""

    version: KeyPolicyVersion
    plan: RestorePlan | None


def restore_preview(ctx: OperationContext, *, key_id: str, version: int) -> RestorePreview:
    """What restoring the version would write and why (the review of a restore, a read of the history), looked up
    without a lock, and only when the caller's PutKeyPolicy request on the key would be allowed (the module's
    "Who is told what"): a reader of the policy gets the version and no principal is looked up for it."""
    found = policy_version_get(ctx, key_id=key_id, version=version)
    if not may_put_key_policy(ctx, found.key):
        return RestorePreview(found, None)
    named = lock_principals_of(found.document, lock=False)
    return RestorePreview(found, restore_plan(found, named, own_account=_own_account(ctx, found.key)))


def _own_account(ctx: OperationContext, key: Key) -> str | None:
    """The account whose principals a restore's notes tell in full: the key's; every account's for the operator."""
    return None if ctx.caller.is_operator else key.account.account_id


@dataclass(frozen=True)
class RestoredPolicy:
    """A restore done: the key, the version it restored (`plan`) and the new version it wrote."""

    key: Key
    plan: RestorePlan
    written: KeyPolicyVersion


def key_policy_restore(
    *, ctx: OperationContext, key_id: str, version: int, bypass_lockout: bool = False
) -> RestoredPolicy:
    """Make an earlier version the key's policy again, as a new version: a PutKeyPolicy of the version's document,
    with each ARN whose principal changed since named by the unique id the version recorded (`restore_plan`).

    The version is read once the caller may PutKeyPolicy on the key, as it is (a refused caller looks up no
    principal); the principals it names are then locked, then the key (the lock order of
    `policies.principal_locks`: a deletion racing the restore either rewrites what it wrote or is seen), and the
    put is decided again on the locked key, with the document to write, as any PutKeyPolicy."""
    expect_operation(ctx, "PutKeyPolicy")
    put_values = put_condition_values(DEFAULT_POLICY_NAME, bypass_lockout)
    found = policy_version_get(ctx, key_id=key_id, version=version, condition_values=put_values)
    named = lock_principals_of(found.document)
    plan = restore_plan(found, named, own_account=_own_account(ctx, found.key))
    key = key_for(ctx, key_id, lock=True, condition_values=put_values)
    principal_ids = validate_key_policy(
        ctx,
        document=plan.document,
        key=key,
        bypass_lockout=bypass_lockout,
        resource_tags=key_tags(key),
        named=named,
        stored=True,  # the unique ids the version keeps or the plan wrote: they match no one
    )
    written = store_key_policy(
        ctx, key, document=plan.document, bypassed=bypass_lockout, principal_ids=principal_ids
    )
    return RestoredPolicy(key, plan, written)
