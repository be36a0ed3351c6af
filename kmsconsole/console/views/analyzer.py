"""The access analyzer's pages: the findings of every key (kmsconsole:ListFindings), and a key's who-can-do-what
matrix with its findings (kmsconsole:AnalyzeKeyAccess, beside the key policy tab).

Reads only, each one `attempt()` of the service the REST API calls (policies/analyzer/services.py). A refusal or a
bad filter is the page with the reason in words and the status that fits it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from keys.services import lifecycle
from kmsconsole.console.dispatch import attempt, console_view
from kmsconsole.console.keytabs import key_tab_context
from kmsconsole.console.views.key_tabs import failure_status, key_params
from kmsconsole.operations import OperationContext
from policies.analyzer import services
from policies.engine.analysis import Access
from policies.engine.matrix import NOT_ACROSS_ACCOUNTS

SEVERITY_CHOICES = (("", "Any severity"), *((value, value.capitalize()) for value in services.SEVERITIES))
# What a matrix cell shows (its full text is in the list below the matrix).
MARKS = {Access.ALLOWED: "yes", Access.CONDITIONAL: "if…", Access.DENIED: "—"}


@console_view
@require_safe
def finding_list(request: HttpRequest) -> HttpResponse:
    """GET ?severity=&after=: the findings of a page of the account's keys, most severe first."""
    severity = request.GET.get("severity", "")
    after = request.GET.get("after", "")
    outcome = attempt(
        request,
        "kmsconsole:ListFindings",
        lambda ctx: services.findings_list(ctx=ctx, severity=severity or None, after=after or None),
        params={"Query": {"severity": severity, "after": after}},
        audit_response=lambda page: {"Findings": len(page.findings), "KeysAnalysed": page.keys_analysed},
    )
    context: dict[str, Any] = {
        "severity": severity,
        "severity_choices": SEVERITY_CHOICES,
        "page": outcome.value,
        "error": outcome.error,
        "first_page": not after,
    }
    status = 200 if outcome.ok else failure_status(outcome.code)
    return render(request, "console/finding_list.html", context, status=status)


def _rows(report: services.KeyAccessReport) -> list[dict[str, Any]]:
    """Each principal's matrix cells, and the actions it may perform grouped by how (one line per route)."""
    rows = []
    for subject, verdicts in report.matrix.rows():
        cells = [
            {"action": action, "verdict": verdict, "mark": MARKS[verdict.access]}
            for action, verdict in zip(report.matrix.actions, verdicts, strict=True)
        ]
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for cell in cells:
            verdict = cell["verdict"]
            # Refusals are not listed, but for the actions another account can never request on the key: a policy
            # that seems to allow them does not, and the line says why.
            if verdict.access is Access.DENIED and verdict.explanation != NOT_ACROSS_ACCOUNTS:
                continue
            text = verdict.describe(report.grant_names)
            group = groups.setdefault(
                (verdict.access.value, text),
                {"access": verdict.access.value, "text": text, "exact": verdict.exact, "actions": []},
            )
            group["actions"].append(cell["action"])
        granted = sum(
            len(group["actions"]) for group in groups.values() if group["access"] != Access.DENIED.value
        )
        rows.append({"subject": subject, "cells": cells, "groups": list(groups.values()), "granted": granted})
    return rows


@console_view
@require_safe
def key_access(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """GET: who can perform each action on the key, by which route, and the key's findings."""
    key_id_text = str(key_id)

    def work(ctx: OperationContext) -> tuple[services.KeyAccessReport, bool]:
        report = services.key_access_analyze(ctx=ctx, key_id=key_id_text)
        return report, lifecycle.key_describable(ctx, report.key)

    outcome = attempt(request, "kmsconsole:AnalyzeKeyAccess", work, params=key_params(key_id_text))
    context: dict[str, Any] = {**key_tab_context(key_id_text, "policy"), "key": None, "error": outcome.error}
    if not outcome.ok or outcome.value is None:
        return render(request, "console/key_access.html", context, status=failure_status(outcome.code))
    report, key_described = outcome.value
    context.update(
        key=report.key,
        key_described=key_described,
        actions=[action.removeprefix("kms:") for action in report.matrix.actions],
        rows=_rows(report),
        findings=report.findings,
        marks=MARKS,
    )
    return render(request, "console/key_access.html", context)
