"""Deleting users, roles and groups: what refuses a deletion, and what a deleted user or role leaves behind.

- **Conflicts** (`deletion_blockers`): as IAM's DeleteUser, DeleteRole and DeleteGroup, a deletion never removes
  something the admin did not ask to remove. A user with access keys, a console login (IAM's login profile),
  inline policies or group memberships is refused with DeleteConflict (409) and AWS's words; so is a group with
  members or inline policies, and a role with inline policies. A role's sessions are not a conflict: they end with
  it (AWS refuses a deleted role's sessions). Nor are a user's API tokens: they are revoked with it (only their
  owner can revoke them otherwise, so a departing user's long-lived token would block its deletion forever).
- **No inheritance** (`unbind_deleted_principal`): key policies and grants name principals by ARN, and a new user
  or role of the same name has the same ARN. So, in the deleting transaction, every key policy (of any account)
  that names the deleted user or role (or, for a role, one of its sessions) gets a new version naming its unique
  id instead, as AWS shows a deleted principal (AIDA…, AROA…): the engine never matches a unique id, and
  PutKeyPolicy refuses one. Grants to it are retired; grants it could retire lose that (their retiring principal
  becomes the unique id). Each key so changed gets an `UnbindDeletedPrincipal` service event in its own account's
  trail; the deleting caller's event names none of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from grants.models import Grant, IntegratedService
from keys.models import Key
from keys.services.key_policy import principal_ids_of, record_policy_version
from kmsconsole.audit.policy_history import REWRITTEN_KEY_POLICY, UNBIND_OPERATION
from kmsconsole.audit.recorder import DeferredEvents, NothingToDo
from kmsconsole.core import errors
from kmsconsole.core.context import RequestMeta, operator_caller
from kmsconsole.operations import OperationContext, perform
from policies import arns, engine
from policies.authorization import authorize
from policies.models import AccessKey, IamGroup, IamRole, IamUser, IdentityPolicy

# IAM's DeleteConflict messages (HTTP 409).
ACCESS_KEYS_FIRST = "Cannot delete entity, must delete access keys first."
LOGIN_PROFILE_FIRST = "Cannot delete entity, must delete login profile first."
POLICIES_FIRST = "Cannot delete entity, must delete policies first."
USERS_FROM_GROUP_FIRST = "Cannot delete entity, must remove users from group first."

UNBIND_EVENT = UNBIND_OPERATION
UNBIND_WORKER = "principal-deletion"


@dataclass(frozen=True)
class Blocker:
    """One kind of thing that must go before the entity can: `what` names it for the interfaces ("access-keys",
    "console-logins", "policies", "groups", "members"), `items` lists them (ids or names)."""

    what: str
    message: str
    items: tuple[str, ...]


def _blocker(what: str, message: str, items: Iterable[str]) -> list[Blocker]:
    listed = tuple(items)
    return [Blocker(what, message, listed)] if listed else []


def deletion_blockers(entity: IamUser | IamRole | IamGroup) -> list[Blocker]:
    """What refuses the entity's deletion, in the order the conflict is reported (the first one's message)."""
    policies = IdentityPolicy.objects.filter(**{_owner_field(entity): entity}).order_by("name", "pk")
    policy_names = policies.values_list("name", flat=True)
    if isinstance(entity, IamGroup):
        members = entity.members.order_by("name", "pk").values_list("name", flat=True)
        return [
            *_blocker("members", USERS_FROM_GROUP_FIRST, members),
            *_blocker("policies", POLICIES_FIRST, policy_names),
        ]
    if isinstance(entity, IamRole):
        return _blocker("policies", POLICIES_FIRST, policy_names)
    keys = (
        AccessKey.objects.filter(user=entity)
        .order_by("created_at", "pk")
        .values_list("access_key_id", flat=True)
    )
    logins = entity.console_logins.select_related("login").order_by("login__username")
    return [
        *_blocker("access-keys", ACCESS_KEYS_FIRST, keys),
        *_blocker("console-logins", LOGIN_PROFILE_FIRST, (link.login.get_username() for link in logins)),
        *_blocker("policies", POLICIES_FIRST, policy_names),
        *_blocker(
            "groups",
            USERS_FROM_GROUP_FIRST,
            entity.groups.order_by("name", "pk").values_list("name", flat=True),
        ),
    ]


def _owner_field(entity: IamUser | IamRole | IamGroup) -> str:
    return {IamUser: "user", IamRole: "role", IamGroup: "group"}[type(entity)]


# Unbinding a deleted user or role from key policies, grants and integrated services.


@dataclass(frozen=True)
class DeletedPrincipal:
    """The ARNs a deleted user or role was named by: its own, and (a role) the prefix of its sessions' ARNs."""

    arn: str
    unique_id: str
    session_prefix: str = ""

    @property
    def account_id(self) -> str:
        return self.arn.split(":")[4]

    @classmethod
    def of(cls, entity: IamUser | IamRole) -> DeletedPrincipal:
        if isinstance(entity, IamRole):
            prefix = arns.assumed_role_arn(entity.account.account_id, entity.name, "")
            return cls(entity.arn, entity.unique_id, prefix)
        return cls(entity.arn, entity.unique_id)

    def names(self, value: object) -> bool:
        return isinstance(value, str) and (
            value == self.arn or (bool(self.session_prefix) and value.startswith(self.session_prefix))
        )

    def matching(self, field: str) -> Q:
        """Rows whose `field` (a principal ARN column) may name this principal: a superset on SQLite, whose LIKE
        ignores ASCII case (role APP's sessions match role app's prefix), so each row is re-checked with
        `names()` before it is changed."""
        found = Q(**{field: self.arn})
        if self.session_prefix:
            found |= Q(**{f"{field}__startswith": self.session_prefix})
        return found


# A JSON string token: in valid JSON a double quote outside a string starts one, so scanning left to right finds
# every string (keys and values) of the document, each with its escapes as written.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _structurally_without(data: Any, principal: DeletedPrincipal) -> bool:
    """Replace, in the parsed policy `data`, every Principal/NotPrincipal "AWS" entry that names `principal` by its
    unique id (a deleted role and its sessions all become one id: named once). True when anything changed."""
    statements = data.get("Statement") if isinstance(data, dict) else None
    changed = False
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict):
            continue
        for element in ("Principal", "NotPrincipal"):
            block = statement.get(element)
            if not isinstance(block, dict) or "AWS" not in block:
                continue
            values = block["AWS"]
            listed = values if isinstance(values, list) else [values]
            replaced = [principal.unique_id if principal.names(value) else value for value in listed]
            if replaced != listed:
                unique = list(dict.fromkeys(replaced))
                block["AWS"] = unique if isinstance(values, list) else unique[0]
                changed = True
    return changed


def _substituted(document: str, principal: DeletedPrincipal) -> str:
    """The stored text with each string token that names `principal` (however escaped) replaced by its quoted
    unique id, and nothing else touched: layout, key order and the spelling of every other string are kept."""

    def replace(match: re.Match[str]) -> str:
        try:
            value = json.loads(match.group())
        except ValueError:
            return match.group()
        return json.dumps(principal.unique_id) if principal.names(value) else match.group()

    return _JSON_STRING.sub(replace, document)


def policy_without(document: str, principal: DeletedPrincipal) -> str | None:
    """The key policy with every Principal/NotPrincipal entry that names `principal` replaced by its unique id, or
    None when it names it nowhere. Conditions are left as written (AWS replaces principals only).

    The stored text is kept, only the principal's string tokens replaced, when that gives exactly the structural
    result; otherwise (the ARN also in a Condition or a Resource, or a role and its session in one list, which
    become one entry) the policy is written compactly (`ensure_ascii=False`, no spaces), never longer than the
    original's content. Re-indenting or escaping could grow a policy near the size limit past it, and a stored
    policy that does not compile breaks every request on its key."""
    try:
        data = json.loads(document)
    except ValueError:
        return None
    if not _structurally_without(data, principal):
        return None
    substituted = _substituted(document, principal)
    try:
        if json.loads(substituted) == data:
            return substituted
    except ValueError:
        pass
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _candidate_keys(principal: DeletedPrincipal) -> list[int]:
    """Keys whose policy may name the principal (the text has its ARN, or any JSON escape, which could spell it
    otherwise: those are parsed too), or with a grant to or retirable by it. Locked, in key order, with those
    grants, in grant order, all before the first is changed, and long before the deletion's audit events take the
    chain head at the end (a PutKeyPolicy holds its key, then the head; a RevokeGrant its grant, then the head).
    Read only once the principal's row is locked (`policies.services.entity_deletion._entity_delete`): a CreateGrant,
    PutKeyPolicy or CreateKey naming it, which locks the principal before its key (`policies.principal_locks`),
    either committed before (and is seen here) or waits for the deletion and finds the principal gone."""
    spelled = Q(policy__contains=principal.arn) | Q(policy__contains="\\")
    if principal.session_prefix:
        spelled |= Q(policy__contains=principal.session_prefix)
    named = Grant.objects.filter(
        principal.matching("grantee_principal") | principal.matching("retiring_principal")
    )
    keys = list(
        Key.objects.select_for_update(of=("self",))
        .filter(spelled | Q(pk__in=named.values("key_id")))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    # The grants too, in order, before the first event takes the chain head: a RevokeGrant or RetireGrant locks
    # its grant row, then the head; taking the head first, then one of those rows, could deadlock with it.
    list(named.select_for_update(of=("self",)).order_by("pk").values_list("pk", flat=True))
    return keys


def unbind_deleted_principal(
    ctx: OperationContext, entity: IamUser | IamRole, events: DeferredEvents
) -> list[str]:
    """Unbind the user or role (about to be deleted in this transaction) from every key policy and grant that
    names it, one service event per changed key in its owner's trail (kept in `events`, appended once the
    deletion's work is done: `kmsconsole.audit.recorder.events_at_the_end`), and from the integrated services it
    may act as. Returns the names of those integrated services (the operator's, recorded on the caller's
    event)."""
    principal = DeletedPrincipal.of(entity)
    # Every row this changes is locked before the first write (`policies.principal_locks`, lock order): the keys
    # and their grants, then the integrated services naming the principal; the writes (which take generation
    # rows) come after, the caller's own (the account's IAM generation row) after these, the audit head last.
    keys = _candidate_keys(principal)
    services = _integrated_services_naming(principal)
    for key_pk in keys:
        _unbind_key(ctx, key_pk, principal, events)
    return _unbind_integrated_services(principal, services)


def _unbind_key(
    ctx: OperationContext, key_pk: int, principal: DeletedPrincipal, events: DeferredEvents
) -> None:
    key = Key.objects.select_related("account").get(pk=key_pk)
    key_arn = key.arn

    def apply(event: OperationContext) -> dict[str, Any]:
        event.audit.key_arn = key_arn
        key.check_row()  # a row changed outside is never blessed by the new version
        authorize(event, resource=key_arn)  # the service itself: recorded as the operator
        elements: dict[str, Any] = {"KeyId": key_arn}
        document = policy_without(key.policy, principal)
        if document is not None:
            _check_stored_policy(document, key, principal)
            key.policy = document
            key.save(update_fields=["policy"])  # bumps the key's generation (database trigger)
            # Not a caller's PutKeyPolicy: nobody is locked out who was not named by the deleted principal.
            version = record_policy_version(
                event, key, document=document, bypassed=False, principal_ids=principal_ids_of(document)
            )
            elements["PolicyVersion"] = version.version
            # The document itself, so the trail holds every policy the key had: the next PutKeyPolicy's diff is
            # against this one (kmsconsole.audit.policy_history).
            elements[REWRITTEN_KEY_POLICY] = document
        grants = Grant.objects.select_related("key").filter(key=key)
        # The query only narrows: SQLite's LIKE (`__startswith`) ignores ASCII case, so role APP's sessions
        # match role app's prefix. Each grant is re-checked here, exactly, before it is changed.
        retired = [
            grant_id
            for grant_id, grantee in grants.filter(principal.matching("grantee_principal"))
            .order_by("pk")
            .values_list("grant_id", "grantee_principal")
            if principal.names(grantee)
        ]
        grants.filter(grant_id__in=retired).delete()
        rebound = []
        for grant in grants.filter(principal.matching("retiring_principal")).order_by("pk"):
            if not principal.names(grant.retiring_principal):
                continue
            grant.check_row()
            grant.retiring_principal = principal.unique_id
            grant.save(update_fields=["retiring_principal"])
            rebound.append(grant.grant_id)
        if document is None and not retired and not rebound:
            raise NothingToDo  # a candidate by its text only: it names the principal nowhere
        if retired:
            elements["RetiredGrantIds"] = retired
        if rebound:
            elements["RetiringPrincipalRemovedGrantIds"] = rebound
        return elements

    try:
        perform(
            UNBIND_EVENT,
            caller=operator_caller(key.account.account_id, UNBIND_WORKER),
            # The deleting request's id ties the events together; its address and agent are the other
            # account's business, not the key owner's.
            meta=RequestMeta(
                interface="worker", request_id=ctx.meta.request_id, user_agent="kmsconsole principal deletion"
            ),
            params={"KeyId": key_arn, "DeletedPrincipal": principal.arn, "PrincipalId": principal.unique_id},
            service=apply,
            deferred=events,
        )
    except NothingToDo:
        return


def _check_stored_policy(document: str, key: Key, principal: DeletedPrincipal) -> None:
    """Refuse the deletion (nothing is written: the whole transaction fails) rather than store a key policy that
    does not compile or is past the size limit, which would fail every request on the key, its owner's
    PutKeyPolicy included. A valid policy never gets there (the rewrite only shortens it); an already broken one
    does. Another account's key is not named to the deleting caller."""
    try:
        engine.compile_key_policy(document)
    except engine.EngineError as exc:
        # Another account's key, and what is wrong with its policy, are that account's business.
        mine = key.account.account_id == principal.account_id
        where, why = (key.arn, f": {exc.message}") if mine else ("a key of another account", ".")
        raise errors.DeleteConflictException(
            f"Cannot delete entity, the policy of {where} names it and cannot name its unique id instead{why}"
        ) from None


def _integrated_services_naming(principal: DeletedPrincipal) -> list[IntegratedService]:
    """The integrated services bound to the principal, their rows locked in primary key order.

    Only the rows that name it: locking every service's row made two deletions that share nothing wait for each
    other, and deadlock when one of them held its account's IAM generation row. They are found by reading every
    row without a lock (a handful; `principals` is a JSON list, which the SQL of both databases cannot match
    exactly), then locked and checked again. A registration naming the principal locks the principal's row first
    (`policies.principal_locks`), so it either committed before this read or waits and then finds it gone."""
    naming = [
        pk
        for pk, bound in IntegratedService.objects.values_list("pk", "principals")
        if isinstance(bound, list) and any(principal.names(value) for value in bound)
    ]
    locked = IntegratedService.objects.select_for_update().filter(pk__in=naming).order_by("pk")
    return [service for service in locked if any(principal.names(value) for value in service.principals)]


def _unbind_integrated_services(principal: DeletedPrincipal, services: list[IntegratedService]) -> list[str]:
    """Each integrated service bound to the deleted principal's ARN (`_integrated_services_naming`) keeps its
    unique id instead: a new principal of that name cannot act as the service (only the operator binds principals
    to services)."""
    for service in services:
        service.check_row()
        service.principals = [
            principal.unique_id if principal.names(value) else value for value in service.principals
        ]
        service.save(update_fields=["principals"])
    return [service.name for service in services]
