"""Reading the audit trail the way the dashboard asks: one filter, resolved once, and keyset pages.

A `TrailQuery` is what a person typed, checked for shape (kmsconsole.console.views.audit_forms does that). It is
resolved against the caller's account into a `TrailFilter` (an alias becomes its key's ARN, a user or role name
its ARN), which narrows a queryset of events already confined to what the caller's account reads through the
query's scope and authorized (kmsconsole.api.reads.audit_events). Pages are newest first by (time, seq), with a
cursor on both: every filter has an index ending in (time, seq) (see AuditEvent.Meta), so a page is one index
range scan at any depth.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import uuid
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta

from django.db.models import Q, QuerySet

from keys.models import Alias, DeletedKey, key_arn
from keys.selectors import MULTI_REGION_KEY_ID
from kmsconsole.audit.authevents import AUTHENTICATION_EVENTS
from kmsconsole.audit.context_index import KEY_CHARS, VALUE_CHARS
from kmsconsole.audit.marks import notable_events
from kmsconsole.audit.models import AuditContextEntry, AuditEvent
from kmsconsole.audit.scope import Scope
from kmsconsole.audit.shown import decided_by_matches, filtered_by_key
from kmsconsole.core import errors
from kmsconsole.core.text import shortened
from kmsconsole.operations import OPERATIONS
from policies import arns
from policies.models import IamRole, IamUser

PAGE_SIZE = 50
# A key ARN as a filter takes it (the console's trail and the REST API's list alike), a multi-Region key's too:
# well formed as the KMS endpoint takes it (keys.selectors), it names no key here, so, as an unknown key's ARN, it
# matches no event rather than being refused as malformed.
KEY_ARN = re.compile(
    r"^arn:[\w-]+:kms:[\w-]*:(?P<account>\d{12}):key/"
    rf"(?P<key_id>[0-9a-fA-F-]{{36}}|{MULTI_REGION_KEY_ID.pattern})$",
    re.ASCII,
)
_ALIAS_ARN = re.compile(r"^arn:[\w-]+:kms:[\w-]*:(?P<account>\d{12}):(?P<alias>alias/.+)$", re.ASCII)
_ROLE_ARN = re.compile(
    r"^arn:(?P<partition>[\w-]+):iam::(?P<account>\d{12}):role/(?:.*/)?(?P<name>[^/]+)$", re.ASCII
)
# The text filters of the trail, with the longest each takes: the dashboard's form and the REST list take the same
# (`key` and `grant` are the dashboard's only: the REST list filters by `key_arn`, and has no grant filter).
TEXT_FILTER_CHARS = {
    "key": 2048,
    "principal": 2048,
    "operation": 64,
    "error_code": 64,
    "decided_by": 512,
    "context_key": KEY_CHARS,
    "context_value": 8192,
    "source_ip": 45,
    "request_id": 64,
    "notable": 128,
    "grant": 64,
}
# The account filter: ASCII digits only (\d would also take full-width and other Unicode digits).
ACCOUNT_ID = re.compile(r"\A[0-9]{12}\Z", re.ASCII)
ACCOUNT_ID_RULE = "An account id is 12 digits."
# An encryption context value is matched only under its key (the index is of pairs).
CONTEXT_VALUE_NEEDS_KEY = "Give the encryption context key the value belongs to."
# A grant id (grants.selectors.GRANT_ID_PATTERN): 64 lower-case hexadecimal characters.
GRANT_ID = re.compile(r"^[0-9a-f]{64}$", re.ASCII)
# The operations whose parameters or response name a grant by its id as part of its life: made, taken into effect
# by the worker, retired, revoked. Not ListGrants: its GrantId is a filter its caller typed, not an event of the
# grant, and lists are frequent (every grants tab asks one): the filter would read each of them.
GRANT_OPERATIONS = ("CreateGrant", "PropagateGrant", "RetireGrant", "RevokeGrant")
# What the trail records under a name: every operation, and the authentication events written outside one.
_RECORDED_NAMES = (*OPERATIONS, *AUTHENTICATION_EVENTS)
# Each by its name in lower case, and without its service prefix: "decrypt" and "kms:decrypt" are Decrypt,
# "listauditevents" is kmsconsole:ListAuditEvents, "consolesignin" kmsconsole:ConsoleSignIn (an unprefixed name
# comes first).
_OPERATION_NAMES = {
    **{name.split(":", 1)[1].lower(): name for name in _RECORDED_NAMES if ":" in name},
    **{f"kms:{name.lower()}": name for name in _RECORDED_NAMES if ":" not in name},
    **{name.lower(): name for name in _RECORDED_NAMES},
}
_CURSOR = re.compile(r"^(?P<micros>-?\d{1,20})\.(?P<seq>\d{1,20})$", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class FilterError(ValueError):
    """A page link whose position is not one (`Cursor.parse`): refused, with the filters, inside the read."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name
        self.message = message


@dataclass(frozen=True)
class TrailQuery:
    """The dashboard's filters as typed (already checked for shape). Empty strings mean "any"."""

    since: datetime | None = None
    until: datetime | None = None
    key: str = ""
    principal: str = ""
    # The key's account; on the key owner's side (where every key is the reader's), the caller's account.
    account: str = ""
    operation: str = ""
    decision: str = ""
    error_code: str = ""
    decided_by: str = ""
    context_key: str = ""
    context_value: str = ""
    source_ip: str = ""
    request_id: str = ""
    notable: str = ""
    # A grant id (well formed: `GRANT_ID`): the grant's own events and the requests it decided (`grant_events`).
    grant: str = ""
    # The side of the trail (kmsconsole.audit.scope): always recorded, the default too.
    scope: Scope = Scope.CALLER

    def as_params(self) -> dict[str, str]:
        """The filters that are set, and the scope, as recorded on the audit event of the read (and the export)
        itself."""
        params = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            if value:
                params[item.name] = str(value)
        return params


@dataclass(frozen=True)
class TrailFilter:
    """A TrailQuery resolved in the caller's account: what the query narrows by."""

    query: TrailQuery
    key_arn: str = ""
    principal_arn: str = ""
    # A role also stands for its sessions (arn:aws:sts::<account>:assumed-role/<name>/...).
    session_prefix: str = ""
    key_account_prefix: str = ""
    caller_account: str = ""
    notes: tuple[str, ...] = field(default=())
    # A filter names nothing in the reader's account (an alias or a user that does not exist): a well-formed query
    # that matches no event, answered as an allowed read with no rows and a note saying why.
    matches_nothing: bool = False
    # The reader's account: "decided by" matches what that account is shown (kmsconsole.audit.shown).
    account_id: str = ""

    @property
    def scope(self) -> Scope:
        return self.query.scope


def key_problem(value: str, account_id: str) -> str:
    """Why `value` cannot name a key for a reader of `account_id` (not a key id, key ARN, alias name or alias ARN;
    another account's alias, whose name a reader cannot look up); "" when it can. What the filter form refuses,
    inside the read's operation (kmsconsole.audit.dashboard.refused_query); `resolve` asks again."""
    if not value or KEY_ARN.match(value):
        return ""
    if match := _ALIAS_ARN.match(value):
        if match["account"] != account_id:
            return "Aliases of another account cannot be looked up; give the key's ARN."
        return ""
    if value.startswith("alias/") and len(value) > len("alias/"):
        return ""
    if MULTI_REGION_KEY_ID.fullmatch(value):
        return ""
    try:
        uuid.UUID(value)
    except ValueError:
        return "Give a key id, a key ARN, an alias name (alias/...) or an alias ARN."
    return ""


def source_ip_problem(value: str) -> str:
    """Why `value` cannot be a source IP filter (events record an address, never a network); "" when it can."""
    if value:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return "Give an IPv4 or IPv6 address, e.g. 10.0.0.1."
    return ""


def grant_events(grant_id: str, account_id: str, scope: Scope = Scope.CALLER) -> Q:
    """The events of the grant `grant_id` (a well-formed id) that a reader of `account_id` may find through
    `scope`: the operations of its life that name it by its id (CreateGrant's response; the worker's
    PropagateGrant, RetireGrant and RevokeGrant by their parameters) and the requests it decided ("decided by" names
    it; as the reader is shown it, so another account's grant is never found by its id: kmsconsole.audit.shown). A
    RetireGrant given only the grant's token (the KMS endpoint) records no id (the token is never recorded) and is
    not found. The console's trail narrows by it (`narrowed`); the REST API's list has no grant filter.

    Cost: no index holds the recorded GrantId, so the named part reads every grant-life event of the reader's side
    within the query's time range: it grows with the grants made, retired and revoked in that range, not with the
    trail's other events (ListGrants is left out for that, too)."""
    named = Q(request_parameters__GrantId=grant_id) | Q(response_elements__GrantId=grant_id)
    return (Q(operation__in=GRANT_OPERATIONS) & named) | decided_by_matches(
        f"grant {grant_id}", account_id, scope
    )


def operation_for(value: str) -> tuple[str, str]:
    """(operation name, note) for an operation as typed: any case, with or without a service prefix ("decrypt",
    "kms:Decrypt" are Decrypt). A name that is no operation is kept as typed (an event may record an operation
    this version does not know), with a note saying so and, when one is close, which was meant."""
    typed = value.strip().lower()
    found = _OPERATION_NAMES.get(typed)
    if found is not None:
        return found, ""
    bare = typed.split(":", 1)[1] if ":" in typed else typed
    close = difflib.get_close_matches(
        bare, [name for name in _OPERATION_NAMES if ":" not in name], n=1, cutoff=0.6
    )
    hint = f"; did you mean {_OPERATION_NAMES[close[0]]}?" if close else "."
    return value, f"There is no operation named {shortened(value, 64)}{hint}"


def _key_arn_for(value: str, account_id: str) -> tuple[str, str]:
    """(key ARN, note) for a key named by id, ARN, alias name or alias ARN (well formed: `key_problem`); ("", note)
    for an alias that does not exist."""
    if KEY_ARN.match(value):
        return value, ""
    alias_match = _ALIAS_ARN.match(value)
    alias_name = alias_match["alias"] if alias_match else value if value.startswith("alias/") else ""
    if alias_name:
        found = (
            Alias.objects.filter(account__account_id=account_id, name=alias_name)
            .select_related("key")
            .first()
        )
        if found is None:
            return _alias_in_the_trail(alias_name, account_id)
        arn = key_arn(account_id, str(found.key.key_id))
        return arn, f"{alias_name} points at {arn} now; events are matched by that key."
    # A key id needs no lookup: the key may have been deleted since, and its events still matter.
    if MULTI_REGION_KEY_ID.fullmatch(value):
        return key_arn(account_id, value), ""
    return key_arn(account_id, str(uuid.UUID(value))), ""


# The requests that point an alias at a key: their events are the alias's history once it is gone.
_POINTS_AN_ALIAS = ("CreateAlias", "UpdateAlias")


def _alias_in_the_trail(alias_name: str, account_id: str) -> tuple[str, str]:
    """(key ARN, note) for an alias that no longer exists (deleted, or gone with its key), from its history in
    the reader's own trail: the key the last allowed CreateAlias or UpdateAlias of that name in the account pointed
    it at (its events are matched), and whether that key was destroyed since. ("", note) when the trail has no
    such request. Only the account's own events are read (aliases are made by the account's own principals), with
    the read's own decision; never the alias or key tables of another account."""
    pointed = (
        AuditEvent.objects.filter(
            caller_account=account_id,
            operation__in=_POINTS_AN_ALIAS,
            decision=AuditEvent.Decision.ALLOWED,
        )
        # As each interface records the request: the KMS endpoint and the console in the API's member names, the
        # REST API's CreateAlias its body as sent.
        .filter(Q(request_parameters__AliasName=alias_name) | Q(request_parameters__alias_name=alias_name))
        .order_by("-seq")
        .only("operation", "time", "key_arn", "request_parameters")
        .first()
    )
    target = _pointed_at(pointed, account_id) if pointed is not None else ""
    if pointed is None or not target:
        return "", f"There is no alias {shortened(alias_name)} in account {account_id}: no event matches it."
    when = f"{pointed.time:%Y-%m-%d %H:%M} UTC"
    tombstone = (
        DeletedKey.objects.filter(key_id=target.rsplit("/", 1)[-1], account_id=account_id)
        .only("deleted_at")
        .first()
    )
    gone = f", a key destroyed on {tombstone.deleted_at:%Y-%m-%d %H:%M} UTC" if tombstone else ""
    return target, (
        f"There is no alias {shortened(alias_name)} in account {account_id} now. The audit trail shows that it "
        f"last pointed at {target}{gone} ({pointed.operation}, {when}); events are matched by that key."
    )


def _pointed_at(event: AuditEvent, account_id: str) -> str:
    """The key ARN an allowed CreateAlias or UpdateAlias pointed its alias at, in the account: CreateAlias's event
    is filed under that key; UpdateAlias's under the key the alias left, so its TargetKeyId says (a key id or a key
    ARN: an alias cannot point at an alias)."""
    if event.operation == "CreateAlias":
        return event.key_arn if event.key_arn.startswith(key_arn(account_id, "")) else ""
    params = event.request_parameters if isinstance(event.request_parameters, dict) else {}
    target = params.get("TargetKeyId", params.get("target_key_id"))
    if not isinstance(target, str):
        return ""
    if match := KEY_ARN.match(target):
        if match["account"] != account_id:
            return ""
        target = match["key_id"]
    try:
        # Keys made here have UUID ids (no multi-Region keys): an allowed request named one.
        return key_arn(account_id, str(uuid.UUID(target)))
    except ValueError:
        return ""


def _principal_for(value: str, account_id: str) -> tuple[str, str, str]:
    """(principal ARN, session prefix, note) for an ARN, or a user or role name of the caller's account; ("", "",
    note) for a name that is neither."""
    if value.startswith("arn:") or value.startswith("kmsconsole:") or value == "anonymous":
        match = _ROLE_ARN.match(value)
        if match is None:
            return value, "", ""
        prefix = f"arn:{match['partition']}:sts::{match['account']}:assumed-role/{match['name']}/"
        return value, prefix, ""
    user = IamUser.objects.filter(account__account_id=account_id, name=value).first()
    if user is not None:
        return arns.user_arn(account_id, user.path, user.name), "", ""
    role = IamRole.objects.filter(account__account_id=account_id, name=value).first()
    if role is not None:
        return (
            arns.role_arn(account_id, role.path, role.name),
            arns.assumed_role_arn(account_id, role.name, ""),
            "",
        )
    note = (
        f"There is no user or role named {value[:64]} in account {account_id}: no event matches it. "
        "Give an ARN for a principal that no longer exists."
    )
    return "", "", note


def resolve(query: TrailQuery, *, account_id: str) -> TrailFilter:
    """Resolve names into what events record, inside the read's operation. A filter of the wrong shape
    (`key_problem`) fails the read (ValidationException, audited as failed); a well-formed name that names nothing
    (an alias or a user that does not exist) is a query that matches no event, with a note saying why."""
    if problem := key_problem(query.key, account_id):
        raise errors.ValidationException(f"Key: {problem}")
    key, key_note = _key_arn_for(query.key, account_id) if query.key else ("", "")
    principal, sessions, principal_note = (
        _principal_for(query.principal, account_id) if query.principal else ("", "", "")
    )
    by_caller = query.scope is Scope.KEY_OWNER
    key_account = key_arn(query.account, "") if query.account and not by_caller else ""
    if query.grant and not GRANT_ID.match(query.grant):
        raise errors.ValidationException("Grant: a grant id is 64 hexadecimal characters (a-f, 0-9).")
    operation, operation_note = operation_for(query.operation) if query.operation else ("", "")
    if operation != query.operation:
        query = replace(query, operation=operation)
    return TrailFilter(
        query=query,
        key_arn=key,
        principal_arn=principal,
        session_prefix=sessions,
        key_account_prefix=key_account,
        caller_account=query.account if by_caller else "",
        notes=tuple(note for note in (key_note, principal_note, operation_note) if note),
        matches_nothing=bool(query.key and not key) or bool(query.principal and not principal),
        account_id=account_id,
    )


def narrowed(events: QuerySet[AuditEvent], trail: TrailFilter) -> QuerySet[AuditEvent]:
    """The events that match every filter that is set (the time range included)."""
    if trail.matches_nothing:
        return events.none()
    query = trail.query
    if query.since is not None:
        events = events.filter(time__gte=query.since)
    if query.until is not None:
        events = events.filter(time__lt=query.until)
    events = filtered_by_key(
        events,
        trail.account_id,
        query.scope,
        key_arn=trail.key_arn,
        key_account_prefix=trail.key_account_prefix,
    )
    if trail.principal_arn:
        matches = Q(caller_arn=trail.principal_arn)
        if trail.session_prefix:
            matches |= Q(caller_arn__startswith=trail.session_prefix)
        events = events.filter(matches)
    if trail.caller_account:
        events = events.filter(caller_account=trail.caller_account)
    exact = {
        "operation": query.operation,
        "decision": query.decision,
        "error_code": query.error_code,
        "source_ip": query.source_ip,
    }
    events = events.filter(**{name: value for name, value in exact.items() if value})
    if query.notable:
        events = events.filter(notable_events(query.notable))
    if query.decided_by:
        events = events.filter(decided_by_matches(query.decided_by, trail.account_id, query.scope))
    if query.request_id:
        events = events.filter(request_id__startswith=query.request_id)
    if query.grant:
        events = events.filter(grant_events(query.grant, trail.account_id, query.scope))
    if query.context_key:
        pairs = AuditContextEntry.objects.filter(key=query.context_key[:KEY_CHARS])
        if query.context_value:
            pairs = pairs.filter(value=query.context_value[:VALUE_CHARS])
        events = events.filter(pk__in=pairs.values("event_id"))
    return events


# --- Keyset pages -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """A position in the (time, seq) order: the page continues strictly before (or after) it."""

    time: datetime
    seq: int

    def __str__(self) -> str:
        delta = self.time - _EPOCH
        micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
        return f"{micros}.{self.seq}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        match = _CURSOR.match(text)
        if match is None:
            raise FilterError("cursor", "That page link is not valid any more; start from the newest events.")
        try:
            moment = _EPOCH + timedelta(microseconds=int(match["micros"]))
        except OverflowError:
            raise FilterError(
                "cursor", "That page link is not valid; start from the newest events."
            ) from None
        return cls(moment, int(match["seq"]))

    @classmethod
    def of(cls, event: AuditEvent) -> Cursor:
        return cls(event.time, event.seq)


@dataclass(frozen=True)
class Page:
    events: list[AuditEvent]
    older: Cursor | None  # the link to older events, if there are any
    newer: Cursor | None  # the link to newer events, if this is not the newest page


def page(
    events: QuerySet[AuditEvent],
    *,
    before: Cursor | None = None,
    after: Cursor | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """One page, newest first. `before`: the page of older events; `after`: the page of newer ones. The
    bound on time alone lets the index start at the cursor; the (time, seq) test settles ties in time."""
    if after is not None:
        newer_first = events.filter(
            Q(time__gt=after.time) | Q(time=after.time, seq__gt=after.seq), time__gte=after.time
        )
        rows = list(newer_first.order_by("time", "seq")[: size + 1])
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        return Page(rows, Cursor.of(rows[-1]) if rows else None, Cursor.of(rows[0]) if more_newer else None)
    if before is not None:
        events = events.filter(
            Q(time__lt=before.time) | Q(time=before.time, seq__lt=before.seq), time__lte=before.time
        )
    rows = list(events.order_by("-time", "-seq")[: size + 1])
    more_older = len(rows) > size
    rows = rows[:size]
    older = Cursor.of(rows[-1]) if more_older else None
    newer = Cursor.of(rows[0]) if before is not None and rows else None
    return Page(rows, older, newer)
