"""The policy simulator page: a form (principal, action, key, encryption context, grant tokens, source IP, time,
transport, draft key or identity policy); the engine's decision with its explanation in plain words and its trace,
and with a draft key policy, who would gain or lose access. kmsconsole:SimulatePolicy (read-only, so a POST renders
the answer rather than redirecting); GET ?principal=&action=&key= fills the form in (links from the key's access
matrix)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from kmsconsole.console.access_diff import access_diff_context
from kmsconsole.console.dispatch import attempt, console_view
from kmsconsole.console.views.key_tabs import failure_status
from kmsconsole.console.views.simulator_forms import SimulationForm
from policies.analyzer import services
from policies.analyzer.simulator import Simulation

TEMPLATE = "console/policy_simulate.html"
PREFILLED = ("principal", "action", "key")


def _page(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    return render(
        request, TEMPLATE, {"result": None, "error": "", "access_diff": None, **context}, status=status
    )


@console_view
@require_http_methods(["GET", "HEAD", "POST"])
def simulator(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        initial = {name: request.GET[name][:2048] for name in PREFILLED if request.GET.get(name)}
        return _page(request, {"form": SimulationForm(initial=initial)})
    form = SimulationForm(request.POST)
    if not form.is_valid():
        return _page(request, {"form": form}, status=400)
    outcome = attempt(
        request,
        "kmsconsole:SimulatePolicy",
        lambda ctx: services.policy_simulate(ctx=ctx, **form.service_arguments()),
        params=form.audit_parameters(),
        audit_response=lambda simulation: {"Decision": "allowed" if simulation.allowed else "denied"},
    )
    if not outcome.ok or outcome.value is None:
        return _page(request, {"form": form, "error": outcome.error}, status=failure_status(outcome.code))
    result: Simulation = outcome.value
    draft = result.request.draft_key_policy
    access_diff = access_diff_context(request, result.request.key, draft) if draft is not None else None
    return _page(
        request, {"form": form, "result": result, "data": result.to_dict(), "access_diff": access_diff}
    )
