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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keys.models import Key, KeyPolicyVersion
from keys.selectors import key_tags
from keys.services.access import expect_operation, key_for
from keys.services.key_policy import (
    DEFAULT_POLICY_NAME,
    lock_principals_of,
    put_condition_values,
    store_key_policy,
    validate_key_policy,
)
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies.deletion import DeletedPrincipal, policy_without
from policies.principal_locks import NamedPrincipals


@dataclass(frozen=True)
class RestorePlan:
    """What restoring a version writes: `document` (the version's text, with `rebound` ARNs replaced by the
    unique ids the version recorded for them), and `notes`, in words naming each ARN concerned: those rebound,
    and those whose principal may not be the one the version meant."""

    version: KeyPolicyVersion
    document: str
    rebound: dict[str, str]
    notes: tuple[str, ...]

    @property
    def verbatim(self) -> bool:
        return self.document == self.version.document


def restore_plan(version: KeyPolicyVersion, named: NamedPrincipals) -> RestorePlan:
    """The plan for restoring `version`, given the principals its ARNs name now (`lock_principals_of` on its
    document: locked by a restore, looked up without a lock by its review)."""
    number = version.version
    recorded = version.principal_ids
    document = version.document
    rebound: dict[str, str] = {}
    notes: list[str] = []
    for arn, current in named.ids.items():
        if recorded is None:
            created = named.created.get(arn)
            if created is not None and created > version.created_at:
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
                )
            continue
        if current == meant:
            continue
        rewritten = policy_without(document, DeletedPrincipal(arn, meant))
        if rewritten is None:  # named only outside Principal/NotPrincipal: nothing to rebind
            continue
        document = rewritten
        rebound[arn] = meant
        since = (
            "was deleted since, and another principal of that name created"
            if current is not None
            else "has been deleted since"
        )
        notes.append(
            f"The principal {arn} named when version {number} was saved {since}: the restored policy names its "
            f"unique id {meant} instead, which matches no one, as the deletion leaves a policy naming it."
        )
    return RestorePlan(version, document, rebound, tuple(notes))


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


def restore_preview(ctx: OperationContext, *, key_id: str, version: int) -> RestorePlan:
    """What restoring the version would write and why (the review of a restore), looked up without a lock."""
    found = policy_version_get(ctx, key_id=key_id, version=version)
    return restore_plan(found, lock_principals_of(found.document, lock=False))


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
    plan = restore_plan(found, named)
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
