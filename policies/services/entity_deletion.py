"""DeleteUser, DeleteRole and DeleteGroup: what goes with the entity, what blocks it, and what the deleting
caller's audit event says was removed."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from kmsconsole.api.models import ApiToken
from kmsconsole.audit.recorder import events_at_the_end
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies.deletion import deletion_blockers, unbind_deleted_principal
from policies.models import Account, IamRole, IamUser, RoleSession
from policies.selectors import Entity
from policies.services.entity_checks import _KINDS, locked_and_checked
from policies.services.lookups import entity_describe


@dataclass(frozen=True)
class DeletedEntity:
    """What DeleteUser, DeleteRole or DeleteGroup removed, for the deleting caller's own audit event: the entity,
    the sessions of a role that ended with it, and the integrated services it could act as. Never the keys of
    other accounts whose policies named it (each of those has its own event in its owner's trail)."""

    kind: str
    name: str
    arn: str
    unique_id: str
    sessions_ended: int = 0
    integrated_services: tuple[str, ...] = ()
    api_tokens_revoked: int = 0

    def audit_elements(self) -> dict[str, object]:
        noun = self.kind.capitalize()
        elements: dict[str, object] = {f"{noun}Name": self.name, f"{noun}Id": self.unique_id, "Arn": self.arn}
        if self.kind == "role":
            elements["RoleSessionsEnded"] = self.sessions_ended
        if self.kind == "user":
            elements["ApiTokensRevoked"] = self.api_tokens_revoked  # a number: never a token's id or prefix
        if self.integrated_services:
            elements["IntegratedServicesUnbound"] = list(self.integrated_services)
        return elements


def _entity_delete(ctx: OperationContext, entity: Entity) -> DeletedEntity:
    """Delete an entity the caller was authorized on, in the operation's one transaction: refused with AWS's
    DeleteConflict while anything of `deletion_blockers` is left; a role's sessions (and their temporary keys)
    end with it, as do a user's API tokens (the live ones counted); a user or role is unbound from every key
    policy, grant and integrated service naming it first."""
    entity = locked_and_checked(entity)  # orders concurrent membership and policy changes of the entity
    blockers = deletion_blockers(entity)
    if blockers:
        raise errors.DeleteConflictException(blockers[0].message)
    kind = _KINDS[type(entity)]
    # Counted now, deleted last (below): no session or token is added meanwhile, as AssumeRole and
    # CreateApiToken lock the entity's row first (`held_for_a_child`), which this transaction holds.
    sessions = RoleSession.objects.filter(role=entity) if isinstance(entity, IamRole) else None
    ended = sessions.count() if sessions is not None else 0
    tokens = ApiToken.objects.filter(principal=entity) if isinstance(entity, IamUser) else None
    revoked = (
        tokens.filter(revoked_at__isnull=True, expires_at__gt=timezone.now()).count()
        if tokens is not None
        else 0
    )
    # The lock order of `policies.principal_locks`: the keys, grants and integrated services naming the entity
    # are locked (by the unbinding) before anything here writes the account's IAM generation row (deleting a
    # session, a session's access key or the entity bumps it), and the unbinding's events go on the chain once
    # everything else is written: the head is the last lock this transaction takes, as it is every other
    # change's (a CreateUser in the account holds the generation row while it waits for the head; another
    # deletion in the account holds a key this one rewrites while it waits for the generation row).
    with events_at_the_end() as events:
        services = (
            unbind_deleted_principal(ctx, entity, events) if isinstance(entity, IamUser | IamRole) else []
        )
        deleted = DeletedEntity(
            kind, entity.name, entity.arn, entity.unique_id, ended, tuple(services), revoked
        )
        if sessions is not None:
            sessions.delete()  # their access keys with them: refused at once (the credentials cache is bumped)
        if tokens is not None:
            tokens.delete()  # refused from now on: a token is looked up by its row at every request
        entity.delete()
    return deleted


def user_delete(*, ctx: OperationContext, account: Account, user_name: str) -> DeletedEntity:
    """iam:DeleteUser on the user: refused while it has access keys, a console login, inline policies or group
    memberships; its API tokens are revoked with it."""
    return _entity_delete(ctx, entity_describe(ctx=ctx, account=account, kind="user", name=user_name))


def role_delete(*, ctx: OperationContext, account: Account, role_name: str) -> DeletedEntity:
    """iam:DeleteRole on the role: refused while it has inline policies; its sessions end with it."""
    return _entity_delete(ctx, entity_describe(ctx=ctx, account=account, kind="role", name=role_name))


def group_delete(*, ctx: OperationContext, account: Account, group_name: str) -> DeletedEntity:
    """iam:DeleteGroup on the group: refused while it has members or inline policies."""
    return _entity_delete(ctx, entity_describe(ctx=ctx, account=account, kind="group", name=group_name))
