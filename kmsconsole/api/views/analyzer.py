"""The access analyzer and the policy simulator: who can do what on a key, what a draft key policy would change,
the findings of every key, and one simulated request (policies/analyzer/services.py)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kmsconsole.api import analyzer_serializers as a
from kmsconsole.api.dispatch import body, run, validated
from kmsconsole.api.views.base import recorded_query
from kmsconsole.core.text import SHOWN_CHARS
from kmsconsole.operations import OperationContext
from policies.analyzer import services
from policies.analyzer.findings import KeyFinding
from policies.engine.matrix import AccessChange

TAG = ["access analyzer"]


def _findings(found: list[KeyFinding]) -> list[dict[str, Any]]:
    return [item.to_dict() for item in found]


def _report(report: services.KeyAccessReport) -> dict[str, Any]:
    matrix = report.matrix
    principals = [
        {
            "arn": subject.arn,
            "kind": subject.kind,
            "account_id": subject.account_id,
            "label": subject.label,
            "access": [
                {"action": action, **verdict.to_dict()}
                for action, verdict in zip(matrix.actions, verdicts, strict=True)
            ],
        }
        for subject, verdicts in matrix.rows()
    ]
    data = {
        "key_id": str(report.key.key_id),
        "key_arn": report.key.arn,
        "actions": list(matrix.actions),
        "principals": principals,
        "findings": _findings(report.findings),
    }
    return dict(a.KeyAccessOutput(data).data)


def _change(change: AccessChange) -> dict[str, Any]:
    return {
        "principal": change.subject.arn,
        "label": change.subject.label,
        "action": change.action,
        "direction": change.direction,
        "before": change.before.describe(),
        "after": change.after.describe(),
    }


def _comparison(comparison: services.PolicyComparison) -> dict[str, Any]:
    by_direction: dict[str, list[dict[str, Any]]] = {"gains": [], "loses": [], "changes": []}
    for change in comparison.changes:
        by_direction[change.direction].append(_change(change))
    data = {
        "key_id": str(comparison.key.key_id),
        "gains": by_direction["gains"],
        "losses": by_direction["loses"],
        "changes": by_direction["changes"],
    }
    return dict(a.PolicyComparisonOutput(data).data)


def _counts(data: dict[str, Any]) -> dict[str, Any]:
    # The audit event keeps the size of the answer, not a copy of who can do what.
    return {name: len(value) if isinstance(value, list) else value for name, value in data.items()}


class KeyAccessView(APIView):
    @extend_schema(
        tags=TAG,
        summary="Who can perform each KMS action on the key, and how; the key's findings "
        "(kmsconsole:AnalyzeKeyAccess, which also needs kms:GetKeyPolicy, kms:ListResourceTags, kms:ListGrants and "
        "kms:GetKeyRotationStatus on the key)",
        responses=a.KeyAccessOutput,
    )
    def get(self, request: Request, key_id: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            return _report(services.key_access_analyze(ctx=ctx, key_id=key_id))

        return Response(run(request, "kmsconsole:AnalyzeKeyAccess", work, params={"KeyId": key_id}))


class KeyPolicyCompareView(APIView):
    @extend_schema(
        tags=TAG,
        summary="Who would gain or lose which action if a draft replaced the key's policy (nothing is saved; "
        "kmsconsole:AnalyzeKeyAccess, which also needs kms:GetKeyPolicy, kms:ListResourceTags and kms:ListGrants on "
        "the key)",
        request=a.PolicyCompareInput,
        responses=a.PolicyComparisonOutput,
    )
    def post(self, request: Request, key_id: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            data = validated(a.PolicyCompareInput, request.data)
            return _comparison(services.key_policy_compare(ctx=ctx, key_id=key_id, policy=data["policy"]))

        params = {**body(request, a.PolicyCompareInput), "KeyId": key_id}
        return Response(
            run(request, "kmsconsole:AnalyzeKeyAccess", work, params=params, audit_response=_counts)
        )


class FindingListView(APIView):
    @extend_schema(
        tags=TAG,
        summary="The findings of the keys of the caller's account, a page of keys at a time, most severe first "
        "(kmsconsole:ListFindings)",
        parameters=[
            OpenApiParameter("severity", OpenApiTypes.STR, enum=list(services.SEVERITIES)),
            OpenApiParameter("after", OpenApiTypes.STR, description="`next_after` of the previous page."),
            OpenApiParameter(
                "limit", OpenApiTypes.INT, description=f"Keys per page, 1-{services.MAX_KEYS_PER_PAGE}."
            ),
        ],
        responses=a.FindingsPageOutput,
    )
    def get(self, request: Request) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            query = validated(a.FindingsQuery, request.query_params.dict())
            page = services.findings_list(
                ctx=ctx,
                severity=query["severity"],
                after=query["after"],
                limit=services.KEYS_PER_PAGE if query["limit"] is None else query["limit"],
            )
            data = {
                "findings": _findings(page.findings),
                "keys_analysed": page.keys_analysed,
                "keys_hidden": page.keys_hidden,
                "next_after": page.next_after,
                "credential_findings": [item.to_dict() for item in page.credentials],
            }
            return dict(a.FindingsPageOutput(data).data)

        params = {
            "Query": recorded_query(
                request.query_params, dict.fromkeys(a.FindingsQuery().fields, SHOWN_CHARS)
            )
        }
        return Response(run(request, "kmsconsole:ListFindings", work, params=params, audit_response=_counts))


class SimulationView(APIView):
    @extend_schema(
        tags=TAG,
        summary="Decide one request of a principal as the policy engine would, with draft policies if given "
        "(kmsconsole:SimulatePolicy, which also needs kms:GetKeyPolicy, kms:ListResourceTags and kms:ListGrants on "
        "the key)",
        request=a.SimulationInput,
        responses=a.SimulationOutput,
    )
    def post(self, request: Request) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            data = validated(a.SimulationInput, request.data)
            draft = data["draft_identity_policy"]
            simulation = services.policy_simulate(
                ctx=ctx,
                principal=data["principal"],
                action=data["action"],
                key_id=data["key_id"],
                encryption_context=data["encryption_context"],
                grant_tokens=data["grant_tokens"],
                source_ip=data["source_ip"],
                time=data["time"],
                secure_transport=data["secure_transport"],
                draft_key_policy=data["draft_key_policy"],
                draft_identity_policy=(draft["name"], draft["document"]) if draft else None,
            )
            return dict(a.SimulationOutput(simulation.to_dict()).data)

        raw = body(request, a.SimulationInput)
        # GrantTokens is a secret request field of every operation: kept out of the audit trail.
        params = {name: value for name, value in raw.items() if name != "grant_tokens"}
        params["GrantTokens"] = raw.get("grant_tokens")
        return Response(
            run(request, "kmsconsole:SimulatePolicy", work, params=params, audit_response=_decision)
        )


def _decision(data: dict[str, Any]) -> dict[str, Any]:
    return {name: data[name] for name in ("decision", "reason", "explanation")}
