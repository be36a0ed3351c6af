"""Links from audit events to the rest of the console: the event's page, its key, its principal, the key policy
version and grant that decided, and the trail narrowed to any of them.

Pages of other areas are reversed safely: a link appears once its page exists (they land separately), and only
for the caller's own account, whose pages the console shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.http import QueryDict
from django.urls import NoReverseMatch, reverse

from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.scope import DEFAULT_SCOPE, Scope
from policies.engine import MISSING_ALLOW_LABELS

if TYPE_CHECKING:
    from kmsconsole.audit.dashboard import EventDetail

_PRINCIPAL = re.compile(
    r"^arn:[\w-]+:(?:iam|sts)::(?P<account>\d{12}):(?P<kind>user|role|assumed-role)/(?:(?P<path>.*)/)?(?P<name>[^/]+)$",
    re.ASCII,
)


def console_url(view_name: str, *args: Any, **kwargs: Any) -> str:
    """The URL of a console page, or "" while that page does not exist yet."""
    try:
        return reverse(view_name, args=args or None, kwargs=kwargs or None)
    except NoReverseMatch:
        return ""


def trail_url(params: QueryDict | None, view: str = "console:audit", **changes: str) -> str:
    """A dashboard URL (or an export's) with the current filters, some of them changed."""
    query = params.copy() if params is not None else QueryDict(mutable=True)
    for cursor in ("before", "after"):
        query.pop(cursor, None)
    if "range" in changes:  # a new range replaces the dates of a custom one
        query.pop("since", None)
        query.pop("until", None)
    for name, value in changes.items():
        query[name] = value
    base = console_url(view)
    encoded = query.urlencode()
    return f"{base}?{encoded}" if encoded else base


# What a switch to the other side of the trail keeps: the time range (the other filters name the other side's
# principals, statements and errors).
_KEPT_ACROSS_SCOPES = ("range", "since", "until")


def scope_url(params: QueryDict | None, scope: Scope) -> str:
    """The dashboard on `scope`'s side, over the same time range."""
    kept = QueryDict(mutable=True)
    for name in _KEPT_ACROSS_SCOPES:
        if params is not None and params.get(name):
            kept[name] = params[name]
    if scope is not DEFAULT_SCOPE:
        kept["scope"] = scope.value
    return trail_url(kept)


def scope_params(scope: Scope) -> QueryDict:
    """The dashboard's parameters that only choose `scope` (links from an event's page stay on its side)."""
    params = QueryDict(mutable=True)
    if scope is not DEFAULT_SCOPE:
        params["scope"] = scope.value
    return params


def principal_url(arn: str, account_id: str) -> str:
    """The console page of a user or role of the caller's account (a role session: its role)."""
    match = _PRINCIPAL.match(arn)
    if match is None or match["account"] != account_id:
        return ""
    if match["kind"] == "user":
        return console_url("console:user", account_id=account_id, name=match["name"])
    # arn:aws:sts::<account>:assumed-role/<role>/<session>: the role is the part before the session.
    name = match["name"] if match["kind"] == "role" else (match["path"] or "").rsplit("/", 1)[-1]
    return console_url("console:role", account_id=account_id, name=name) if name else ""


def key_url(arn: str, account_id: str) -> str:
    if ":key/" not in arn or arn.split(":")[4] != account_id:
        return ""
    return console_url("console:key", arn.rsplit("/", 1)[-1])


@dataclass(frozen=True)
class EventLinks:
    detail: str
    key: str = ""
    principal: str = ""
    key_filter: str = ""
    principal_filter: str = ""
    request_filter: str = ""
    decided_by_filter: str = ""
    grant: str = ""
    grant_history: str = ""
    decided_under: str = ""
    set_by_request: str = ""


def policy_version_url(key_id: str, version: int) -> str:
    return console_url("console:key-policy-version", key_id, version) or (
        f"{url}?version={version}" if (url := console_url("console:key-policy-versions", key_id)) else ""
    )


def decided_by_filters(event: AuditEvent) -> dict[str, str]:
    """The filters of "other events it decided": its `decided_by`, and its outcome when it was allowed or refused (a
    statement or grant decides only allows, or only refusals: policies.engine.Decision.decided_by; the decision
    keeps out the events recorded before that rule, whose refusals could name an Allow that did not count). What a
    refusal was missing is narrowed to the event's key: the same want on another key is another story."""
    filters = {"decided_by": event.decided_by}
    if event.decision in (AuditEvent.Decision.ALLOWED, AuditEvent.Decision.DENIED):
        filters["decision"] = event.decision
    if event.decided_by in MISSING_ALLOW_LABELS and event.key_arn:
        filters["key"] = event.key_arn
    return filters


def event_links(
    event: AuditEvent, account_id: str, params: QueryDict | None, *, detail: EventDetail | None = None
) -> EventLinks:
    """The links of an event: on the dashboard, its filters narrowed further (the event is in their time range);
    on the event's own page (`detail`), over the whole trail, which contains the event however old it is."""
    key_id = event.key_arn.rsplit("/", 1)[-1] if ":key/" in event.key_arn else ""
    around = {"range": "all"} if detail is not None else {}
    grant, grant_history, decided_under, set_by_request = "", "", "", ""
    if detail is not None and detail.grant_id:
        # The key's grants list it while it lives; its history in the trail stays after it is retired or revoked.
        grant_history = trail_url(params, grant=detail.grant_id, **around)
        if detail.grant_exists:
            grant = console_url("console:key-grants", key_id)
    if detail is not None and key_id and detail.key is not None and detail.key.exists:
        if detail.policy is not None and detail.policy.decided_under is not None:
            decided_under = policy_version_url(key_id, detail.policy.decided_under.version)
        if detail.policy is not None and detail.policy.set_by_request is not None:
            set_by_request = policy_version_url(key_id, detail.policy.set_by_request.version)
    return EventLinks(
        detail=console_url("console:audit-event", event.event_id),
        key=key_url(event.key_arn, account_id)
        if detail is None or (detail.key and detail.key.exists)
        else "",
        principal=principal_url(event.caller_arn, account_id),
        key_filter=trail_url(params, key=event.key_arn, **around) if event.key_arn else "",
        principal_filter=trail_url(params, principal=event.caller_arn, **around),
        request_filter=trail_url(params, request_id=event.request_id, range="all")
        if event.request_id
        else "",
        decided_by_filter=trail_url(params, **decided_by_filters(event), **around)
        if event.decided_by
        else "",
        grant=grant,
        grant_history=grant_history,
        decided_under=decided_under,
        set_by_request=set_by_request,
    )
