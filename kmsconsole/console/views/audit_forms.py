"""The audit dashboard's filter form: what a person may type, checked for shape before anything is read. The
names it resolves (aliases, user and role names) are resolved by the read itself (kmsconsole.audit.trail)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django import forms
from django.http import QueryDict

from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.scope import DEFAULT_SCOPE, Scope, parse_scope, scope_problem
from kmsconsole.audit.trail import (
    ACCOUNT_ID,
    ACCOUNT_ID_RULE,
    CONTEXT_VALUE_NEEDS_KEY,
    GRANT_ID,
    TEXT_FILTER_CHARS,
    TrailQuery,
    key_problem,
    source_ip_problem,
)
from kmsconsole.core.text import SHOWN_CHARS, recorded, shortened
from kmsconsole.operations import OPERATIONS

# (value, label, span): the time ranges offered; "custom" uses the two dates.
RANGES: tuple[tuple[str, str, timedelta | None], ...] = (
    ("1h", "Last hour", timedelta(hours=1)),
    ("24h", "Last 24 hours", timedelta(hours=24)),
    ("7d", "Last 7 days", timedelta(days=7)),
    ("30d", "Last 30 days", timedelta(days=30)),
    ("90d", "Last 90 days", timedelta(days=90)),
    ("all", "All time", None),
    ("custom", "Between the dates below", None),
)
DEFAULT_RANGE = "24h"
_SPANS = {value: span for value, _, span in RANGES}
# A choice that is not offered is refused without its value (Django's message repeats it, whatever its length).
_NOT_OFFERED = {"invalid_choice": "Select one of the offered choices."}
_DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]
# The filters that are text to match exactly (or, for the request id, its beginning), with their labels (their
# lengths are the trail's, which the REST list takes too: TEXT_FILTER_CHARS).
_TEXT = {
    "key": ("Key", "Key id, key ARN, alias name or alias ARN."),
    "principal": (
        "Principal",
        "An ARN, or a user or role name of your account (a role includes its sessions).",
    ),
    "operation": ("Operation", "Any case, with or without kms: (decrypt, kms:Decrypt)."),
    "error_code": ("Error code", "e.g. AccessDeniedException"),
    "decided_by": ("Decided by", "The statement or grant, as events record it."),
    "context_key": ("Encryption context key", ""),
    "context_value": ("Encryption context value", "Needs the key."),
    "source_ip": ("Source IP", ""),
    "request_id": ("Request id", "The whole id or its beginning."),
    "notable": ("Notable", ""),
    "grant": ("Grant id", "Its CreateGrant, RetireGrant and RevokeGrant, and the requests it allowed."),
}


def _datetime(label: str) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        required=False,
        input_formats=_DATETIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="UTC",
    )


class TrailFilterForm(forms.Form):
    # The side of the trail (kmsconsole.audit.scope): chosen with the page's switch, kept by a hidden field. Taken
    # as it comes: a bad one (`scope_error`) fails the read inside its operation, audited, with the other filters
    # kept for the switch's links.
    scope = forms.CharField(required=False, strip=False, widget=forms.HiddenInput)
    range = forms.ChoiceField(
        label="Time range",
        choices=[(v, label) for v, label, _ in RANGES],
        required=False,
        error_messages=_NOT_OFFERED,
    )
    since = _datetime("From")
    until = _datetime("Until")
    account = forms.RegexField(
        label="Key's account",
        regex=ACCOUNT_ID,
        required=False,
        help_text="The 12-digit account that owns the key.",
        error_messages={"invalid": ACCOUNT_ID_RULE},
    )
    decision = forms.ChoiceField(
        label="Decision",
        choices=[("", "Any"), *AuditEvent.Decision.choices],
        required=False,
        error_messages=_NOT_OFFERED,
    )

    def __init__(self, *args: Any, account_id: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The reader's account: a key filter naming another account's alias is refused for its shape.
        self.account_id = account_id
        for name, (label, hint) in _TEXT.items():
            self.fields[name] = forms.CharField(
                label=label, help_text=hint, max_length=TEXT_FILTER_CHARS[name], required=False, strip=True
            )
        self.fields["operation"].widget.attrs["list"] = "audit-operations"
        if self.data.get("scope") == Scope.KEY_OWNER.value:
            # Every key on the key owner's side is the reader's: the account to narrow by is the caller's.
            self.fields["account"].label = "Caller's account"
            self.fields["account"].help_text = "The 12-digit account whose principals made the requests."
            self.fields["principal"].help_text = "A principal's ARN (a role's includes its sessions)."

    operation_names = sorted(OPERATIONS)

    def clean_key(self) -> str:
        value: str = self.cleaned_data["key"]
        if problem := key_problem(value, self.account_id):
            raise forms.ValidationError(problem)
        return value

    def clean_grant(self) -> str:
        value: str = self.cleaned_data["grant"]
        if value and not GRANT_ID.match(value):
            raise forms.ValidationError("A grant id is 64 hexadecimal characters (a-f, 0-9).")
        return value

    def clean_source_ip(self) -> str:
        value: str = self.cleaned_data["source_ip"]
        if problem := source_ip_problem(value):
            raise forms.ValidationError(problem)
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        # Dates typed in mean "between these dates", whatever the range menu says.
        if data.get("since") or data.get("until"):
            data["range"] = "custom"
        data["range"] = data.get("range") or DEFAULT_RANGE
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            self.add_error("until", "Until must be after From.")
        if data.get("context_value") and not data.get("context_key"):
            self.add_error("context_key", CONTEXT_VALUE_NEEDS_KEY)
        return data

    @property
    def asked_scope(self) -> str:
        """The scope as the request names it ("" for none)."""
        return str(self.data.get("scope", "")) if self.is_bound else ""

    @property
    def scope_error(self) -> str:
        """Why the scope asked for is not one; "" when it is (or none is asked for, the default)."""
        return scope_problem(self.asked_scope)

    def problems(self) -> list[str]:
        """Every reason the filters are refused, each as the page shows it beside its field (the scope's beside the
        switch), at most SHOWN_CHARS long (no value is repeated at length), for the refused read's audit event; []
        for filters that are well formed."""
        found = [self.scope_error] if self.scope_error else []
        for name, field_errors in self.errors.items():
            if name == "scope" and self.scope_error:
                continue  # already said
            field = self.fields.get(name)
            label = f"{field.label}: " if field is not None and field.label else ""
            found.append(label + " ".join(field_errors))
        return [shortened(problem, SHOWN_CHARS) for problem in found]

    @property
    def chosen_scope(self) -> Scope:
        """The scope asked for; the default when none is, or the value is not one (then the read fails, audited,
        and the error is shown beside the switch)."""
        return DEFAULT_SCOPE if self.scope_error else parse_scope(self.asked_scope)

    def as_typed(self) -> dict[str, Any]:
        """The filters as the request gives them, for the event of a refused read: the form's own fields only
        (nothing else the URL carries), as typed, and the scope as asked or the default, as a well-formed read
        records `TrailQuery.as_params()`. A field the form refused (and a scope that is not one) is recorded cut
        at SHOWN_CHARS (`kmsconsole.core.text.recorded`: nothing but the request line bounds it); a field it took
        is recorded whole, as a well-formed read records it (its own max_length bounds it)."""
        if not self.is_bound:
            return {"scope": DEFAULT_SCOPE.value}
        refused = set(self.errors) | ({"scope"} if self.scope_error else set())
        recorded_fields: dict[str, Any] = {}
        for name in self.fields:
            value = str(self.data.get(name, ""))
            if value:
                recorded_fields[name] = recorded(value) if name in refused else value
        recorded_fields["scope"] = recorded_fields.get("scope") or DEFAULT_SCOPE.value
        return recorded_fields

    @property
    def time_range(self) -> str:
        return str(self.cleaned_data.get("range") or DEFAULT_RANGE) if self.is_bound else DEFAULT_RANGE

    def query(self, now: datetime) -> TrailQuery:
        """The filters as the read takes them; the range menu becomes a since/until pair."""
        data = self.cleaned_data if self.is_bound else {}
        chosen = self.time_range
        since, until = data.get("since"), data.get("until")
        if chosen != "custom":
            span = _SPANS.get(chosen)
            since, until = (now - span if span else None), None
        return TrailQuery(
            since=since.astimezone(UTC) if since else None,
            until=until.astimezone(UTC) if until else None,
            account=data.get("account", ""),
            decision=data.get("decision", ""),
            scope=self.chosen_scope,
            **{name: data.get(name, "") for name in _TEXT},
        )

    def link_params(self) -> QueryDict:
        """The filters as a URL query, for links that keep them (pages, exports, a narrower filter)."""
        params = QueryDict(mutable=True)
        if not self.is_bound or not self.is_valid():
            return params
        for name, value in self.cleaned_data.items():
            if name in ("since", "until"):
                value = value.strftime("%Y-%m-%dT%H:%M") if value else ""
            if name == "scope":
                value = "" if self.chosen_scope is DEFAULT_SCOPE else self.chosen_scope.value
            if value and not (name == "range" and value == DEFAULT_RANGE):
                params[name] = value
        if self.time_range != "custom":
            params.pop("since", None)
            params.pop("until", None)
        return params

    @property
    def narrowing_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ("key", "principal", "account", "operation", "decision", "error_code")]

    @property
    def more_in_use(self) -> bool:
        """Whether the folded filters hold a value or an error (then they show unfolded)."""
        return any(field.value() or field.errors for field in self.more_fields)

    @property
    def more_fields(self) -> list[forms.BoundField]:
        return [
            self[name]
            for name in (
                "decided_by",
                "grant",
                "context_key",
                "context_value",
                "source_ip",
                "request_id",
                "notable",
            )
        ]
