"""The audit dashboard: the trail with filters, charts, the notable events and the chain's state
(kmsconsole:ListAuditEvents), one event explained (kmsconsole:GetAuditEvent), exports of the filtered events
(kmsconsole:ExportAuditEvents) and a verification of the chain on demand (kmsconsole:VerifyAuditChain).

Views parse, run one operation through `attempt()` and render (kmsconsole.audit.dashboard does the reading).
Every page works without JavaScript: the charts are drawn from the same numbers the tables beside them show.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST, require_safe

from kmsconsole.audit import dashboard, export
from kmsconsole.audit.destroyed import Destroyed
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.policy_history import KEY_POLICY_OPERATIONS, PolicyHistory
from kmsconsole.audit.scope import SCOPE_LABELS, Scope
from kmsconsole.audit.trail import Cursor, FilterError
from kmsconsole.audit.verification import chain_verification_request
from kmsconsole.console.dispatch import Outcome, attempt, console_caller, console_view
from kmsconsole.console.views.audit_forms import DEFAULT_RANGE, RANGES, TrailFilterForm
from kmsconsole.console.views.audit_links import EventLinks, event_links, scope_params, scope_url, trail_url
from kmsconsole.console.views.policy import comparable, diff_lines
from kmsconsole.core.pagination import RECORDED_CURSOR

# How much of a grant id the events table shows (the whole id is the cell's title).
GRANT_ID_SHOWN = 12
# "decided by" naming a grant (policies.engine, grants.services.removal): its id, and what follows it.
_DECIDED_BY_GRANT = re.compile(r"^grant (?P<id>[0-9a-f]{64})(?P<rest>.*)\Z", re.DOTALL)
REFUSED = "You are not allowed to read the audit trail (kmsconsole:ListAuditEvents)."


_STATUS = {"AccessDeniedException": 403, "NotFoundException": 404, "KMSInternalException": 503}


def _refusal(request: HttpRequest, outcome: Outcome[Any], heading: str) -> HttpResponse:
    """The service's refusal or error, in its words, with the status that fits it."""
    return render(
        request,
        "console/audit_refused.html",
        {"heading": heading, "error": outcome.error},
        status=_STATUS.get(outcome.code, 400),
    )


@dataclass(frozen=True)
class Row:
    event: AuditEvent
    links: EventLinks
    note: str = ""
    destroyed: Destroyed | None = None  # a notable row's key, destroyed since

    @property
    def principal_label(self) -> str:
        """The ARN without what every row repeats: user/alice, assumed-role/app/session."""
        return self.event.caller_arn.rsplit(":", 1)[-1]

    @property
    def key_label(self) -> str:
        return self.event.key_arn.rsplit("/", 1)[-1]

    @property
    def decided_by_label(self) -> str:
        """ "decided by" as the table shows it: a grant by the start of its id (the whole is the link's title), so
        its 64 characters do not squeeze the other columns; what follows the id ("as its retiring principal")
        stays."""
        decided_by = self.event.decided_by
        grant = _DECIDED_BY_GRANT.match(decided_by)
        if grant is None:
            return decided_by
        return f"grant {grant['id'][:GRANT_ID_SHOWN]}…{grant['rest']}"


BAR_CHARTS = (
    ("keys", "Top keys", "No event names a key."),
    ("principals", "Top principals", "No events."),
    ("reasons", "Refusals and failures by reason", "Nothing was refused and nothing failed."),
)


@dataclass(frozen=True)
class PagePosition:
    """A page link's position, parsed once per request: where the page continues, or why the link is not one."""

    before: Cursor | None = None
    after: Cursor | None = None
    problem: str = ""
    # The names a read records for the position (never the position itself, RECORDED_CURSOR stands in for it).
    recorded: tuple[str, ...] = ()

    @classmethod
    def of(cls, request: HttpRequest) -> PagePosition:
        before, after = request.GET.get("before", ""), request.GET.get("after", "")
        recorded = tuple(name for name, value in (("Before", before), ("After", after)) if value)
        try:
            return cls(
                Cursor.parse(before) if before else None, Cursor.parse(after) if after else None, "", recorded
            )
        except FilterError as error:
            return cls(problem=error.message, recorded=recorded)

    def as_recorded(self) -> dict[str, str]:
        """The position as a read records it: that the request continued a list, never where (the trail's readers
        are other principals)."""
        return dict.fromkeys(self.recorded, RECORDED_CURSOR)


def _page_context(
    request: HttpRequest, form: TrailFilterForm, result: dashboard.TrailDashboard
) -> dict[str, Any]:
    account_id = _account_id(request)
    params = form.link_params()
    page, charts = result.page, result.charts
    return {
        "rows": [Row(event, event_links(event, account_id, params)) for event in page.events],
        "older_url": trail_url(params, before=str(page.older)) if page.older else "",
        "newer_url": trail_url(params, after=str(page.newer)) if page.newer else "",
        "newest_url": "" if charts else trail_url(params),  # any page reached by a cursor
        "ready": True,
        "charts": charts,
        "chart_data": charts.data() if charts else None,
        "bar_charts": [
            (name, title, empty, [(bar, trail_url(params, **bar.filters)) for bar in getattr(charts, name)])
            for name, title, empty in BAR_CHARTS
        ]
        if charts
        else [],
        "notable": [
            (
                section,
                trail_url(params, **section.filters) if section.filters else "",
                [
                    Row(row.event, event_links(row.event, account_id, params), row.note, row.destroyed)
                    for row in section.rows
                ],
            )
            for section in result.notable
        ],
        "all_time_url": trail_url(params, range="all"),
        "chain": result.chain,
        "notes": result.filter.notes,
    }


def _refused_query(
    request: HttpRequest,
    form: TrailFilterForm,
    position: PagePosition,
    operation: str,
    params: Callable[[dict[str, str]], dict[str, Any]],
) -> Outcome[Any] | None:
    """A query refused for its shape (a filter the form refuses, a scope that is not one, a page link whose position
    is not one) fails inside its operation: decided first, through the scope asked for when it is one, so a caller
    who may not read is refused (AccessDeniedException), then failed with ValidationException naming every problem,
    as the REST API fails a bad filter. One event, whatever is wrong, recording what a well-formed read records
    (`params` places them: the form's fields as typed, each cut at a length, the scope, the position's
    placeholder). The outcome, or None for a well-formed query (whose read records itself). The scope's problem
    is added to the form, beside the switch."""
    problems = form.problems()
    if position.problem:
        problems.append(position.problem)
    if not problems:
        return None
    if form.scope_error:
        form.add_error("scope", form.scope_error)
    return attempt(
        request,
        operation,
        lambda ctx: dashboard.refused_query(ctx, scope=form.chosen_scope, problems=problems),
        params=params({**form.as_typed(), **position.as_recorded()}),
    )


def _is_htmx(request: HttpRequest) -> bool:
    # htmx swaps the results only; a history restore (or a plain browser) needs the whole page.
    return bool(request.headers.get("HX-Request") and not request.headers.get("HX-History-Restore-Request"))


def _render_trail(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    """The page, or for htmx only the results. htmx swaps only successful answers (its default response
    handling), so a refused query it asked about comes as a 200 whose results say every problem in words (the
    filters beside which a whole page shows them are not swapped), as the key list answers; the event records the
    refusal all the same."""
    if _is_htmx(request):
        response = render(request, "console/_partials/audit_results.html", {**context, "partial": True})
    else:
        response = render(request, "console/audit_list.html", context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response


@console_view
@require_safe
def audit_trail(request: HttpRequest) -> HttpResponse:
    form = TrailFilterForm(request.GET or None, account_id=_account_id(request))
    position = PagePosition.of(request)
    params = form.link_params()
    scope = form.chosen_scope
    context: dict[str, Any] = {
        "form": form,
        "scope": scope,
        "scopes": [
            (value, label, scope_url(params, value), value is scope) for value, label in SCOPE_LABELS.items()
        ],
        "owner_scope": scope is Scope.KEY_OWNER,
        "clear_url": scope_url(None, scope),
        "ranges": RANGES,
        # An invalid form keeps the range the person chose, like every other field.
        "time_range": form.time_range if form.is_valid() else request.GET.get("range") or DEFAULT_RANGE,
        "export_csv": trail_url(params, view="console:audit-export-csv"),
        "export_jsonl": trail_url(params, view="console:audit-export-jsonl"),
    }
    refused = _refused_query(request, form, position, "kmsconsole:ListAuditEvents", lambda q: {"Query": q})
    if refused is not None:
        if refused.code != "ValidationException":
            return _trail_refusal(request, refused, context)
        context["cursor_error"] = position.problem
        context["problems"] = form.problems()
        return _render_trail(request, context, status=400)
    now = timezone.now()
    query = form.query(now)
    before, after = position.before, position.after
    outcome = attempt(
        request,
        "kmsconsole:ListAuditEvents",
        lambda ctx: dashboard.trail_dashboard(ctx, query=query, now=now, before=before, after=after),
        params={"Query": {**query.as_params(), **position.as_recorded()}},
    )
    if not outcome.ok or outcome.value is None:
        return _trail_refusal(request, outcome, context)
    context.update(_page_context(request, form, outcome.value))
    return _render_trail(request, context)


def _trail_refusal(request: HttpRequest, outcome: Outcome[Any], context: dict[str, Any]) -> HttpResponse:
    """The read refused or failed: its page of refusal, or for htmx the results saying it."""
    if _is_htmx(request):
        return _render_trail(request, {**context, "refusal": outcome.error})
    return _refusal(request, outcome, "Audit trail")


def _account_id(request: HttpRequest) -> str:
    return console_caller(request).account_id  # type: ignore[union-attr]  # console_view checked it


@console_view
@require_safe
def audit_event(request: HttpRequest, event_id: Any) -> HttpResponse:
    outcome = attempt(
        request,
        "kmsconsole:GetAuditEvent",
        lambda ctx: dashboard.event_detail(ctx, event_id=str(event_id)),
        params={"EventId": str(event_id)},
        audit_response=lambda detail: {"Scope": detail.scope.value},
    )
    if not outcome.ok or outcome.value is None:
        return _refusal(request, outcome, "Audit event")
    detail = outcome.value
    account_id = _account_id(request)
    return render(
        request,
        "console/audit_detail.html",
        {
            "detail": detail,
            "event": detail.event,
            "explanation": detail.explanation,
            "owner_scope": detail.scope is Scope.KEY_OWNER,
            "scope_label": SCOPE_LABELS[detail.scope],
            "trail_url": scope_url(None, detail.scope),
            # Links to the trail stay on the side the event is seen from.
            "links": event_links(detail.event, account_id, scope_params(detail.scope), detail=detail),
            "request_parameters": _pretty(detail.event.request_parameters),
            "response_elements": _pretty(detail.event.response_elements),
            "policy": _policy_shown(detail.policy_history),
        },
    )


@dataclass(frozen=True)
class PolicyShown:
    """An event's policy document laid out for reading, and the diff against the previous recorded one."""

    history: PolicyHistory
    document: str | None
    previous_url: str
    diff: list[tuple[str, str]] | None

    @property
    def of_a_key(self) -> bool:
        return self.history.current.event.operation in KEY_POLICY_OPERATIONS


def _policy_shown(history: PolicyHistory | None) -> PolicyShown | None:
    if history is None:
        return None
    current, previous = history.current, history.previous
    document = comparable(current.document) if current.document is not None else None
    diff = None
    if previous is not None and previous.document is not None and current.document is not None:
        diff = diff_lines(
            previous.document,
            current.document,
            before_label=f"{previous.event.operation} #{previous.event.seq} "
            f"({previous.event.time:%Y-%m-%d %H:%M:%S} UTC)",
            after_label=f"{current.event.operation} #{current.event.seq} (this event)",
        )
    url = (
        reverse("console:audit-event", kwargs={"event_id": previous.event.event_id})
        if previous is not None
        else ""
    )
    return PolicyShown(history, document, url, diff)


def _pretty(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) if value else ""


_FORMATS = {
    "csv": ("text/csv; charset=utf-8", export.csv_lines),
    "jsonl": ("application/x-ndjson; charset=utf-8", export.jsonl_lines),
}


def _export(request: HttpRequest, fmt: str) -> HttpResponse:
    form = TrailFilterForm(request.GET or None, account_id=_account_id(request))
    # An export is the whole filtered range, so a page link's position is not used; one that is not a position is
    # still refused, as the trail refuses it.
    refused = _refused_query(
        request,
        form,
        PagePosition.of(request),
        "kmsconsole:ExportAuditEvents",
        lambda q: {"Format": fmt, "Filters": q},
    )
    if refused is not None:
        return _refusal(request, refused, "Export")
    query = form.query(timezone.now())
    outcome = attempt(
        request,
        "kmsconsole:ExportAuditEvents",
        lambda ctx: dashboard.export_events(ctx, query=query),
        params={"Format": fmt, "Filters": query.as_params()},
    )
    if not outcome.ok or outcome.value is None:
        return _refusal(request, outcome, "Export")
    rows: Iterator[dict[str, Any]] = outcome.value
    content_type, lines = _FORMATS[fmt]
    response = StreamingHttpResponse(export.batched(lines(rows)), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-events-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


@console_view
@require_safe
def audit_export_csv(request: HttpRequest) -> HttpResponse:
    return _export(request, "csv")


@console_view
@require_safe
def audit_export_jsonl(request: HttpRequest) -> HttpResponse:
    return _export(request, "jsonl")


@console_view
@require_POST
def audit_verify(request: HttpRequest) -> HttpResponse:
    outcome = attempt(
        request,
        "kmsconsole:VerifyAuditChain",
        lambda ctx: chain_verification_request(ctx=ctx),
        audit_response=lambda verification: {"VerificationId": verification.pk},
    )
    if not outcome.ok:
        return _refusal(request, outcome, "Verify the audit chain")
    messages.success(
        request,
        "Verification requested: a worker walks the whole chain; the result appears here when it is done.",
    )
    back = request.POST.get("next", "")
    return redirect(back if back.startswith(_audit_url()) else _audit_url())


def _audit_url() -> str:
    try:
        return reverse("console:audit")
    except NoReverseMatch:  # pragma: no cover - the route is this module's
        return "/"
