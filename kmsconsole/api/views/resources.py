"""Aliases, tags, grants, audit events and job runs."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.utils import translate_validation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import filters
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from grants import services as grant_services
from grants.models import Grant
from keys.models import Alias, Tag
from keys.services import aliases, tags
from kmsconsole.api import principal_serializers as ps
from kmsconsole.api import reads
from kmsconsole.api import serializers as s
from kmsconsole.api.dispatch import body, created, run, validated
from kmsconsole.api.filters import AuditCursor, AuditEventFilter
from kmsconsole.api.views.base import OperationListView, echo
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.scope import Scope
from kmsconsole.audit.shown import filtered_by_key
from kmsconsole.core.text import ARN_CHARS, SHOWN_CHARS
from kmsconsole.jobs.models import JobRun
from kmsconsole.operations import OperationContext


def _alias(alias: Alias) -> dict[str, Any]:
    return dict(s.AliasOutput(alias).data)


class AliasListView(OperationListView):
    operation = "ListAliases"
    serializer_class = s.AliasOutput
    queryset = Alias.objects.none()
    filter_backends = [filters.OrderingFilter]
    ordering_fields = ["name", "created_at"]
    ordering = ["name"]
    own_query_params = {"key_id": ARN_CHARS}  # a key id, key ARN, alias name or alias ARN

    def rows(self, ctx: OperationContext) -> QuerySet[Alias]:
        return reads.account_aliases(ctx, key_id=self.request.query_params.get("key_id"))

    @extend_schema(
        tags=["aliases"],
        summary="List the aliases of the caller's account, or of one key (ListAliases)",
        parameters=[OpenApiParameter("key_id", OpenApiTypes.STR, description="Only this key's aliases.")],
        responses=s.AliasOutput(many=True),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    @extend_schema(
        tags=["aliases"],
        summary="Create an alias (CreateAlias)",
        request=s.AliasCreateInput,
        responses={201: s.AliasOutput},
    )
    def post(self, request: Request) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            data = validated(s.AliasCreateInput, request.data)
            return _alias(
                aliases.alias_create(
                    ctx=ctx, alias_name=data["alias_name"], target_key_id=data["target_key_id"]
                )
            )

        return created(request, "CreateAlias", work, s.AliasCreateInput, echo)


class AliasDetailView(APIView):
    @extend_schema(
        tags=["aliases"],
        summary="Point an alias at another key (UpdateAlias)",
        request=s.AliasUpdateInput,
        responses=s.AliasOutput,
    )
    def patch(self, request: Request, alias_name: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            data = validated(s.AliasUpdateInput, request.data)
            return _alias(
                aliases.alias_update(ctx=ctx, alias_name=alias_name, target_key_id=data["target_key_id"])
            )

        params = {**body(request, s.AliasUpdateInput), "AliasName": alias_name}
        return Response(run(request, "UpdateAlias", work, params=params, audit_response=echo))

    @extend_schema(
        tags=["aliases"], summary="Delete an alias (DeleteAlias)", request=None, responses={204: None}
    )
    def delete(self, request: Request, alias_name: str) -> Response:
        def work(ctx: OperationContext) -> None:
            aliases.alias_delete(ctx=ctx, alias_name=alias_name)

        run(request, "DeleteAlias", work, params={"AliasName": alias_name})
        return Response(status=204)


class KeyTagsView(OperationListView):
    operation = "ListResourceTags"
    serializer_class = s.TagOutput
    queryset = Tag.objects.none()

    def rows(self, ctx: OperationContext) -> QuerySet[Tag]:
        return reads.key_tags(ctx, key_id=self.kwargs["key_id"])

    @extend_schema(
        tags=["tags"], summary="List a key's tags (ListResourceTags)", responses=s.TagOutput(many=True)
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    @extend_schema(
        tags=["tags"],
        summary="Add tags to a key or change their values (TagResource)",
        request=s.TagsPutInput,
        responses={204: None},
    )
    def put(self, request: Request, key_id: str) -> Response:
        def work(ctx: OperationContext) -> None:
            data = validated(s.TagsPutInput, request.data)
            pairs = [{"TagKey": t["tag_key"], "TagValue": t["tag_value"]} for t in data["tags"]]
            tags.key_tag(ctx=ctx, key_id=key_id, tags=pairs)

        run(request, "TagResource", work, params={**body(request, s.TagsPutInput), "KeyId": key_id})
        return Response(status=204)

    @extend_schema(
        tags=["tags"],
        summary="Remove tags from a key by tag key (UntagResource)",
        parameters=[OpenApiParameter("tag_key", OpenApiTypes.STR, many=True, required=True)],
        request=None,
        responses={204: None},
    )
    def delete(self, request: Request, key_id: str) -> Response:
        tag_keys = request.query_params.getlist("tag_key")

        def work(ctx: OperationContext) -> None:
            validated(s.TagsDeleteInput, {"tag_key": tag_keys})
            tags.key_untag(ctx=ctx, key_id=key_id, tag_keys=tag_keys)

        run(request, "UntagResource", work, params={"KeyId": key_id, "TagKeys": tag_keys})
        return Response(status=204)


def _grant_params(key_id: str, grant_id: str) -> dict[str, str]:
    return {"KeyId": key_id, "GrantId": grant_id}


class KeyGrantsView(OperationListView):
    operation = "ListGrants"
    serializer_class = s.GrantOutput
    queryset = Grant.objects.none()

    def rows(self, ctx: OperationContext) -> QuerySet[Grant]:
        return reads.key_grants(ctx, key_id=self.kwargs["key_id"])[1]

    @extend_schema(
        tags=["grants"], summary="List a key's grants (ListGrants)", responses=s.GrantOutput(many=True)
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    @extend_schema(
        tags=["grants"],
        summary="Create a grant (CreateGrant); the grant token is shown once",
        request=s.GrantCreateInput,
        responses={201: s.GrantCreatedOutput},
    )
    def post(self, request: Request, key_id: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            data = validated(s.GrantCreateInput, request.data)
            created = grant_services.grant_create(
                ctx=ctx,
                key_id=key_id,
                grantee_principal=data["grantee_principal"],
                operations=data["operations"],
                retiring_principal=data["retiring_principal"],
                constraints=data["constraints"],
                name=data["name"],
            )
            return {"grant_id": created.grant.grant_id, "grant_token": created.token}

        def recorded(result: dict[str, Any]) -> dict[str, Any]:
            return {"GrantId": result["grant_id"]}  # never the token

        params = {**body(request, s.GrantCreateInput), "KeyId": key_id}
        return Response(run(request, "CreateGrant", work, params=params, audit_response=recorded), status=201)


class GrantRetireView(APIView):
    @extend_schema(
        tags=["grants"],
        summary="Retire a grant, as its retiring principal or grantee (RetireGrant)",
        request=None,
        responses={204: None},
    )
    def post(self, request: Request, key_id: str, grant_id: str) -> Response:
        def work(ctx: OperationContext) -> None:
            grant_services.grant_retire(ctx=ctx, key_id=key_id, grant_id=grant_id)

        run(request, "RetireGrant", work, params=_grant_params(key_id, grant_id))
        return Response(status=204)


class GrantRevokeView(APIView):
    @extend_schema(
        tags=["grants"], summary="Revoke a grant (RevokeGrant)", request=None, responses={204: None}
    )
    def post(self, request: Request, key_id: str, grant_id: str) -> Response:
        def work(ctx: OperationContext) -> None:
            grant_services.grant_revoke(ctx=ctx, key_id=key_id, grant_id=grant_id)

        run(request, "RevokeGrant", work, params=_grant_params(key_id, grant_id))
        return Response(status=204)


class RetirableGrantListView(OperationListView):
    operation = "ListRetirableGrants"
    serializer_class = ps.RetirableGrantOutput
    queryset = Grant.objects.none()
    own_query_params = {"retiring_principal": ARN_CHARS}

    def rows(self, ctx: OperationContext) -> QuerySet[Grant]:
        principal = self.request.query_params.get("retiring_principal", "")
        validated(s.RetirableGrantsQuery, {"retiring_principal": principal})
        return grant_services.grants_retirable_by(ctx=ctx, retiring_principal=principal)[1]

    @extend_schema(
        tags=["grants"],
        summary="The grants, on keys of any account, that a principal of the caller's account may retire "
        "(ListRetirableGrants)",
        parameters=[
            OpenApiParameter(
                "retiring_principal", OpenApiTypes.STR, required=True, description="The principal's ARN."
            )
        ],
        responses=ps.RetirableGrantOutput(many=True),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)


class AuditEventListView(OperationListView):
    operation = "kmsconsole:ListAuditEvents"
    serializer_class = s.AuditEventOutput
    queryset = AuditEvent.objects.none()
    filterset_class = AuditEventFilter
    pagination_class = AuditCursor
    own_query_params = {"scope": SHOWN_CHARS}

    def scope(self) -> Scope:
        """The side of the trail asked for (checked inside the operation, after the decision: a bad value is a 400,
        audited)."""
        return validated(s.AuditScopeQuery, {"scope": self.request.query_params.get("scope", "")})["scope"]

    def rows(self, ctx: OperationContext) -> QuerySet[AuditEvent]:
        # Decided first, as the console decides: a caller who may not read is denied whatever the query says; only
        # then is the scope checked (its two sides come from that one decision, as lazy querysets).
        sides = reads.audit_event_sides(ctx)
        scope = self.scope()
        # The key_arn filter as every filter on a key is applied (the filterset's own finds the same rows again).
        key_arn = self.request.query_params.get("key_arn", "")
        return filtered_by_key(sides[scope], ctx.caller.account_id, scope, key_arn=key_arn)

    def narrowed_rows(self, ctx: OperationContext, rows: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        # The dashboard's filters are resolved in the reader's account and matched through the scope (a "decided
        # by" as that side shows it), as the dashboard's read resolves them.
        filterset = DjangoFilterBackend().get_filterset(self.request, rows, self)
        if not filterset.is_valid():
            raise translate_validation(filterset.errors)
        return filterset.trail_narrowed(account_id=ctx.caller.account_id, scope=self.scope())

    def shown_rows(self, ctx: OperationContext, rows: list[Any]) -> list[Any]:
        return reads.shown_audit_events(ctx, rows, self.scope())

    def shown_of_rows(self, ctx: OperationContext, rows: list[Any]) -> dict[str, Any]:
        return {s.AUDIT_SCOPE: self.scope()}

    def audit_params(self) -> dict[str, Any]:
        # The scope is recorded whether it was asked for or not (the default); the cursor as the base view records
        # it (never in clear).
        params = super().audit_params()
        query = params["Query"]
        return {**params, "Query": {**query, "scope": query.get("scope") or Scope.CALLER.value}}

    @extend_schema(
        tags=["audit"],
        summary="The audit events the caller's account reads, newest first (cursor pagination): its own "
        "principals' requests (scope=caller, the default), or other accounts' principals' requests on its keys "
        "(scope=key-owner)",
        parameters=[
            OpenApiParameter(
                "scope",
                OpenApiTypes.STR,
                enum=[scope.value for scope in Scope],
                default=Scope.CALLER.value,
                description="caller: the requests of the caller's account, on any key (another account's "
                "key-policy statements and grants are not named). key-owner: the requests of other accounts "
                "on the caller's account's keys, allowed or refused (the callers' identity policies and access "
                "key ids are not named).",
            )
        ],
        responses=s.AuditEventOutput(many=True),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)


class AuditEventDetailView(APIView):
    @extend_schema(
        tags=["audit"],
        summary="One audit event the caller's account reads through either scope (its own request, or another "
        "account's on one of its keys), shown as that scope shows it",
        responses=s.AuditEventOutput,
    )
    def get(self, request: Request, event_id: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            read = reads.audit_event(ctx, event_id=event_id)
            return dict(s.AuditEventOutput(read.event, context={s.AUDIT_SCOPE: read.scope}).data)

        def recorded(result: dict[str, Any]) -> dict[str, Any]:
            return {"Scope": result["scope"]}

        return Response(
            run(
                request,
                "kmsconsole:GetAuditEvent",
                work,
                params={"EventId": str(event_id)},
                audit_response=recorded,
            )
        )


class JobRunListView(OperationListView):
    operation = "kmsconsole:ListJobRuns"
    serializer_class = s.JobRunOutput
    queryset = JobRun.objects.none()
    filter_backends = [filters.OrderingFilter]
    ordering_fields = ["started_at", "job"]
    ordering = ["-started_at", "-id"]

    def rows(self, ctx: OperationContext) -> QuerySet[JobRun]:
        return reads.job_runs(ctx)

    def shown_of_rows(self, ctx: OperationContext, rows: list[Any]) -> dict[str, Any]:
        return {s.SHOWN_RUNS: reads.shown_runs(ctx, rows)}

    @extend_schema(
        tags=["jobs"],
        summary="Runs of the periodic jobs (deletion, rotation, grant propagation), newest first; counts and "
        "errors are the caller's account's share of each run",
        responses=s.JobRunOutput(many=True),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)
