"""Who would gain or lose access under a draft key policy, for the policy editor's review step and the simulator
(templates/console/_partials/access_diff.html).

The comparison runs as kmsconsole:AnalyzeKeyAccess (policies.analyzer.services.key_policy_compare). A caller whose
identity policies do not allow that action, or who may not read the key's policy, tags and grants
(`keys.services.access.ACCESS_READS`), is told so, without the attempt (which would leave a refusal in the audit
trail on every review).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from keys.models import Key
from keys.services.access import ACCESS_READS, may_read_rules_of
from kmsconsole.audit.recorder import AuditRecord
from kmsconsole.console.dispatch import attempt, console_caller, request_meta
from kmsconsole.core.context import Caller
from kmsconsole.operations import OPERATIONS, OperationContext
from policies.analyzer.services import PolicyComparison, key_policy_compare
from policies.authorization import would_allow

ANALYZE = "kmsconsole:AnalyzeKeyAccess"


def _may_read_what_it_shows(request: HttpRequest, caller: Caller, key: Key) -> bool:
    """The comparison also needs reading the key's policy, tags and grants (policies.analyzer.services._gate)."""
    meta = request_meta(request)
    question = OperationContext(
        operation=OPERATIONS[ANALYZE],
        caller=caller,
        meta=meta,
        audit=AuditRecord(operation=ANALYZE, meta=meta),
    )
    return may_read_rules_of(question, key.arn, reads=ACCESS_READS)


def access_diff_context(request: HttpRequest, key: Key, draft: str) -> dict[str, Any]:
    """{"permitted", "error", "gains", "losses", "changes", "sections"} for the access_diff partial."""
    context: dict[str, Any] = {"permitted": True, "error": "", "gains": [], "losses": [], "changes": []}
    caller = console_caller(request)
    if (
        caller is None
        or not would_allow(caller, ANALYZE, key.arn)
        or not _may_read_what_it_shows(request, caller, key)
    ):
        return {**context, "permitted": False}
    key_id = str(key.key_id)
    outcome = attempt(
        request,
        ANALYZE,
        lambda ctx: key_policy_compare(ctx=ctx, key_id=key_id, policy=draft),
        params={"KeyId": key_id, "Policy": draft},
        audit_response=_counts,
    )
    if not outcome.ok or outcome.value is None:
        return {**context, "error": outcome.error}
    comparison = outcome.value
    changes = [change for change in comparison.changes if change.direction == "changes"]
    return {
        **context,
        "gains": comparison.gains,
        "losses": comparison.losses,
        "changes": changes,
        "sections": [
            ("Gain access", comparison.gains, "gains"),
            ("Lose access", comparison.losses, "losses"),
            ("Allowed under other conditions", changes, "changes"),
        ],
    }


def _counts(comparison: PolicyComparison) -> dict[str, int]:
    return {"gains": len(comparison.gains), "losses": len(comparison.losses)}
