"""The two sides from which an account reads the audit trail.

Every event is stored once, as one link of the chain. An account reads it from one of two sides:

- `Scope.CALLER` (the default): the requests of the account's own principals, on any key (`caller_account`);
- `Scope.KEY_OWNER`: the requests of other accounts' principals (or of the operator acting in another account) on
  the account's keys, allowed or refused, as CloudTrail gives a key's owner a copy of a cross-account request.

The two are disjoint for a reader (the first needs the caller's account to be the reader's, the second needs it to
be another), so an event is seen through at most one of them, and shaped for that side by
`kmsconsole.audit.shown`.

The key owner's side is found through `AuditEvent.key_owner_account`, a column the recorder fills from the chained
`key_arn`, `caller_account` and, for an allowed ReEncrypt, the source key its chained response elements name
(`key_owner_account()`: the source's owner first, since it is its data that moves), and partial indexes cover. The
column is not chained (like `AuditContextEntry`, it is derived from chained fields and can be rebuilt:
kmsconsole.audit.derived, `manage.py audit reindex-key-owners`; `audit verify` reports a value that differs), so a
reader never trusts it alone: the key owner's query also requires the chained `key_arn` (or an allowed ReEncrypt's
chained `SourceKeyId`) to name one of the reader's keys and the chained `caller_account` to be another account
(`scope_events`, `scope_of`). A value edited in the database can therefore hide an event from its key owner until
the column is rebuilt, but never show it to an account that owns neither key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from django.db.models import Q, QuerySet

from keys.models import key_arn
from kmsconsole.audit.expressions import RE_ENCRYPT, SOURCE_KEY_ELEMENT
from kmsconsole.audit.models import AuditEvent

# A key ARN as the service writes it: arn:<partition>:kms:<region>:<account>:key/<id>.
_KEY_ARN = re.compile(r"^arn:[\w-]+:kms:[\w-]*:(?P<account>[0-9]{12}):key/", re.ASCII)


class Scope(StrEnum):
    CALLER = "caller"
    KEY_OWNER = "key-owner"

    @property
    def label(self) -> str:
        return SCOPE_LABELS[self]


SCOPE_LABELS = {
    Scope.CALLER: "Requests by this account",
    Scope.KEY_OWNER: "Requests by other accounts on this account's keys",
}
DEFAULT_SCOPE = Scope.CALLER


def parse_scope(value: str | None) -> Scope:
    """The scope a request names ("" or None: the default). Raises ValueError for anything else."""
    if not value:
        return DEFAULT_SCOPE
    return Scope(value)


def scope_problem(value: str | None) -> str:
    """Why `value` names no scope, in words that do not echo a long value; "" when it names one (or is empty: the
    default). A reader refuses such a read inside its operation, so the refusal is audited (as the REST API's
    serializer does, kmsconsole.api.serializers.AuditScopeQuery)."""
    try:
        parse_scope(value)
    except ValueError:
        named = value if len(value or "") <= 64 else f"{(value or '')[:64]}..."
        choices = ", ".join(scope.value for scope in Scope)
        return f"scope must be one of {choices}, not {named!r}."
    return ""


def source_key_arn(*, operation: str, response_elements: Any) -> str:
    """The source key of an allowed ReEncrypt, as its chained response elements name it (the endpoint's
    `SourceKeyId`, a key ARN); "" for every other event (a refused or failed ReEncrypt has no response elements:
    it is filed under the key whose check failed, keys.services.crypto)."""
    if operation != RE_ENCRYPT or not isinstance(response_elements, dict):
        return ""
    value = response_elements.get(SOURCE_KEY_ELEMENT)
    return value if isinstance(value, str) else ""


def _account_of(arn: str) -> str:
    match = _KEY_ARN.match(arn)
    return match["account"] if match is not None else ""


def key_owner_account(*, key_arn: str, caller_account: str, source_key_arn: str = "") -> str:
    """What the recorder stores as an event's `key_owner_account`: the account that owns a key of the event when
    that is not the caller's account, else "" (no key, or only the caller's own keys).

    An allowed ReEncrypt names two keys: the event's key (the destination) and the source its data left. The
    source's account comes first when it is not the caller's: it is that account's data that moved (into the
    caller's own key, or into a third account's). When both keys belong to two accounts other than the caller's,
    only the source's owner reads the allowed event (one column, one ordered index range per page); the
    destination's owner reads every refusal or failure on its key, which is filed under it."""
    caller_account = caller_account or ""
    for arn in (source_key_arn, key_arn):
        account = _account_of(arn)
        if account and account != caller_account:
            return account
    return ""


def event_key_owner(values: Mapping[str, Any]) -> str:
    """`key_owner_account` of an event, from its chained fields (the recorder's values, a walked row)."""
    return key_owner_account(
        key_arn=values["key_arn"],
        caller_account=values["caller_account"],
        source_key_arn=source_key_arn(
            operation=values["operation"], response_elements=values["response_elements"]
        ),
    )


def own_keys_prefix(account_id: str) -> str:
    """The beginning every key ARN of the account shares (arn:<partition>:kms:<region>:<account>:key/)."""
    return key_arn(account_id, "")


def _key_owner_side(account_id: str) -> Q:
    # key_owner_account finds the rows (its partial indexes); the chained fields decide: the event's key, or the
    # source an allowed ReEncrypt names, is the reader's, and the caller is of another account.
    prefix = own_keys_prefix(account_id)
    return (
        Q(key_owner_account=account_id)
        & (
            Q(key_arn__startswith=prefix)
            | Q(operation=RE_ENCRYPT, **{f"response_elements__{SOURCE_KEY_ELEMENT}__startswith": prefix})
        )
        & ~Q(caller_account=account_id)
    )


def scope_filter(account_id: str, scope: Scope) -> Q:
    """The events a reader of `account_id` sees through `scope`."""
    if scope is Scope.KEY_OWNER:
        return _key_owner_side(account_id)
    return Q(caller_account=account_id)


def scope_events(account_id: str, scope: Scope) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(scope_filter(account_id, scope))


def own_key_events(account_id: str) -> QuerySet[AuditEvent]:
    """Every event on the account's keys, whoever the caller (its own principals' through one scope, other
    accounts' through the other), by the chained key_arn."""
    return AuditEvent.objects.filter(key_arn__startswith=own_keys_prefix(account_id))


def either_scope(account_id: str) -> Q:
    """The events a reader of `account_id` sees through one scope or the other (an event's page)."""
    return scope_filter(account_id, Scope.CALLER) | scope_filter(account_id, Scope.KEY_OWNER)


def scope_of(event: AuditEvent, account_id: str) -> Scope | None:
    """The scope through which a reader of `account_id` sees `event` (None: neither), as `scope_filter` decides."""
    if event.caller_account == account_id:
        return Scope.CALLER
    prefix = own_keys_prefix(account_id)
    source = source_key_arn(operation=event.operation, response_elements=event.response_elements)
    if event.key_owner_account == account_id and (
        event.key_arn.startswith(prefix) or source.startswith(prefix)
    ):
        return Scope.KEY_OWNER
    return None
