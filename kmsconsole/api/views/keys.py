"""Keys: list, create, retrieve, update the description, enable, disable, schedule and cancel deletion, rotate
on demand, the automatic rotation settings, and the last usage. The URL's key is a key id."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from keys.metadata import key_metadata
from keys.models import Key, KeyMaterial
from keys.services import deletion, lifecycle, rotation, usage
from kmsconsole.api import principal_serializers as ps
from kmsconsole.api import serializers as s
from kmsconsole.api.dispatch import body, created, run, validated
from kmsconsole.api.filters import KeyPages, refused_parameter
from kmsconsole.api.key_listing import KeyListing, KeyQuery, ListedKey
from kmsconsole.api.views.base import OperationListView, echo, refuse_undeclared
from kmsconsole.core import errors
from kmsconsole.core.text import SHOWN_CHARS
from kmsconsole.operations import OperationContext

TAG = ["keys"]


def metadata(key: Key) -> dict[str, Any]:
    return dict(s.KeyMetadataOutput(key_metadata(key)).data)


class KeyListView(OperationListView):
    """ListKeys. Each key's id and ARN, and beyond them only what the caller may see (`kmsconsole.api.key_listing`:
    DescribeKey's fields where DescribeKey would be allowed, aliases where ListAliases would be, tags and rotation
    status where their reads would be). Search, filters and order are the listing's own, never DRF's filter
    backends: they must match only what the caller may see and cost the same whether or not a hidden key matches."""

    operation = "ListKeys"
    serializer_class = s.KeySummaryOutput
    queryset = Key.objects.none()
    pagination_class = KeyPages
    filter_backends: list[type] = []
    own_query_params = {
        name: getattr(field, "max_length", None) or SHOWN_CHARS
        for name, field in s.KeyListQuery().fields.items()
    }

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        paginator: KeyPages = self.paginator  # type: ignore[assignment]  # pagination_class

        def work(ctx: OperationContext) -> Response:
            data = validated(s.KeyListQuery, request.query_params)
            query = KeyQuery(
                search=data.get("search", "").strip(),
                state=data.get("state", ""),
                key_spec=data.get("key_spec", ""),
                key_usage=data.get("key_usage", ""),
                descending=data["ordering"] == "-created_at",
            )
            listing = KeyListing(ctx, query, page_size=paginator.get_page_size(request) or 50, extras=True)
            refuse_undeclared(request.query_params, self.declared_query_params())
            cursor = data.get("cursor", "")
            if not query.narrowed and not cursor:
                keys = paginator.paginate_queryset(listing.ordered(), request, view=self) or []
                return paginator.get_paginated_response(self._summaries(listing.shown(keys)))
            if request.query_params.get(paginator.page_query_param, "1") != "1":
                raise refused_parameter(
                    paginator.page_query_param,
                    "A searched or filtered list has no page numbers: follow its `next` link (a cursor)."
                    if query.narrowed
                    else "A page number and a cursor cannot be used together: page the whole list by `page` "
                    "alone, or follow a link's `cursor` without a page number.",
                )
            try:
                page = listing.page(cursor or None)
            except errors.InvalidMarkerException as exc:
                # Still InvalidMarkerException (as ListKeys answers a bad Marker), naming the parameter as the
                # other paging errors do.
                exc.detail = {paginator.cursor_query_param: [exc.message]}
                raise
            return paginator.cursor_response(
                request,
                self._summaries(page.rows),
                next_cursor=page.next_cursor,
                previous_cursor=page.previous_cursor,
                searched=page.searched,
            )

        return run(request, self.operation, work, params=self.audit_params())

    @staticmethod
    def _summaries(rows: list[ListedKey]) -> Any:
        return s.KeySummaryOutput([s.key_summary(row) for row in rows], many=True).data

    @extend_schema(
        tags=TAG,
        summary="List the keys of the caller's account (ListKeys)",
        description="Every key's id and ARN (kms:ListKeys, IAM-only). A key's description, state, spec, usage, "
        "origin and dates are shown only where a DescribeKey request by the caller would be allowed (`described`; "
        "else null), its aliases only where kms:ListAliases would be, its tags and rotation status only where "
        "kms:ListResourceTags and kms:GetKeyRotationStatus would be. The whole list is paged by `page` and "
        "counted. A searched or filtered list matches only what the caller may see: it looks through at most 500 "
        "keys per request in creation order, whatever `page_size`, then stops with a `next` link (its cursor) "
        "to look further; its `count` is null and `searched` says how many keys the page looked through.",
        parameters=[s.KeyListQuery],
        responses=s.KeySummaryOutput(many=True),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    @extend_schema(
        tags=TAG,
        summary="Create a key (CreateKey)",
        request=s.KeyCreateInput,
        responses={201: s.KeyMetadataOutput},
        examples=[
            OpenApiExample("Symmetric key", value={"description": "orders", "tags": []}, request_only=True),
            OpenApiExample(
                "Signing key",
                value={"key_spec": "ECC_NIST_P256", "key_usage": "SIGN_VERIFY"},
                request_only=True,
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            data = validated(s.KeyCreateInput, request.data)
            key = lifecycle.key_create(
                ctx=ctx,
                description=data["description"],
                key_spec=data["key_spec"],
                key_usage=data["key_usage"],
                policy=data["policy"],
                tags=[{"TagKey": t["tag_key"], "TagValue": t["tag_value"]} for t in data["tags"]],
                bypass_lockout=data["bypass_lockout_safety_check"],
            )
            return metadata(key)

        return created(request, "CreateKey", work, s.KeyCreateInput, echo)


class KeyDetailView(APIView):
    @extend_schema(tags=TAG, summary="Describe a key (DescribeKey)", responses=s.KeyMetadataOutput)
    def get(self, request: Request, key_id: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            return metadata(lifecycle.key_describe(ctx=ctx, key_id=key_id))

        return Response(run(request, "DescribeKey", work, params={"KeyId": key_id}, audit_response=echo))

    @extend_schema(
        tags=TAG,
        summary="Update a key's description (UpdateKeyDescription)",
        request=s.KeyUpdateInput,
        responses=s.KeyMetadataOutput,
    )
    def patch(self, request: Request, key_id: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            data = validated(s.KeyUpdateInput, request.data)
            return metadata(
                lifecycle.key_update_description(ctx=ctx, key_id=key_id, description=data["description"])
            )

        params = {**body(request, s.KeyUpdateInput), "KeyId": key_id}
        return Response(run(request, "UpdateKeyDescription", work, params=params, audit_response=echo))


class KeyStateView(APIView):
    """POST enable / disable / cancel-deletion: a state change with no body."""

    operation = ""
    summary = ""

    def change(self, ctx: OperationContext, key_id: str) -> Key:
        raise NotImplementedError

    def post(self, request: Request, key_id: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            return metadata(self.change(ctx, key_id))

        return Response(run(request, self.operation, work, params={"KeyId": key_id}, audit_response=echo))


class KeyEnableView(KeyStateView):
    operation = "EnableKey"

    def change(self, ctx: OperationContext, key_id: str) -> Key:
        return lifecycle.key_enable(ctx=ctx, key_id=key_id)

    @extend_schema(tags=TAG, summary="Enable a key (EnableKey)", request=None, responses=s.KeyMetadataOutput)
    def post(self, request: Request, key_id: str) -> Response:
        return super().post(request, key_id)


class KeyDisableView(KeyStateView):
    operation = "DisableKey"

    def change(self, ctx: OperationContext, key_id: str) -> Key:
        return lifecycle.key_disable(ctx=ctx, key_id=key_id)

    @extend_schema(
        tags=TAG, summary="Disable a key (DisableKey)", request=None, responses=s.KeyMetadataOutput
    )
    def post(self, request: Request, key_id: str) -> Response:
        return super().post(request, key_id)


class KeyCancelDeletionView(KeyStateView):
    operation = "CancelKeyDeletion"

    def change(self, ctx: OperationContext, key_id: str) -> Key:
        return deletion.key_cancel_deletion(ctx=ctx, key_id=key_id)

    @extend_schema(
        tags=TAG,
        summary="Cancel a key's scheduled deletion; the key comes back Disabled (CancelKeyDeletion)",
        request=None,
        responses=s.KeyMetadataOutput,
    )
    def post(self, request: Request, key_id: str) -> Response:
        return super().post(request, key_id)


class KeyScheduleDeletionView(APIView):
    @extend_schema(
        tags=TAG,
        summary="Schedule a key's deletion after 7-30 days (ScheduleKeyDeletion)",
        request=s.ScheduleDeletionInput,
        responses=s.KeyMetadataOutput,
        examples=[OpenApiExample("A week", value={"pending_window_days": 7}, request_only=True)],
    )
    def post(self, request: Request, key_id: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            data = validated(s.ScheduleDeletionInput, request.data)
            return metadata(
                deletion.key_schedule_deletion(
                    ctx=ctx, key_id=key_id, pending_window_days=data["pending_window_days"]
                )
            )

        params = {**body(request, s.ScheduleDeletionInput), "KeyId": key_id}
        return Response(run(request, "ScheduleKeyDeletion", work, params=params, audit_response=echo))


class KeyRotateView(APIView):
    @extend_schema(
        tags=TAG,
        summary="Rotate a key's material now (RotateKeyOnDemand)",
        request=None,
        responses=s.RotateOutput,
    )
    def post(self, request: Request, key_id: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            material = rotation.key_rotate_on_demand(ctx=ctx, key_id=key_id)
            return {"key_id": key_id, "key_material_id": material.material_id}

        return Response(
            run(request, "RotateKeyOnDemand", work, params={"KeyId": key_id}, audit_response=echo)
        )


def _rotation(status: rotation.RotationStatus) -> dict[str, Any]:
    return dict(
        s.RotationOutput(
            {
                "key_id": str(status.key.key_id),
                "rotation_enabled": status.enabled,
                "rotation_period_days": status.period_days,
                "next_rotation_at": status.next_rotation_at,
            }
        ).data
    )


class KeyRotationView(APIView):
    @extend_schema(
        tags=TAG,
        summary="Get a key's automatic rotation settings (GetKeyRotationStatus)",
        responses=s.RotationOutput,
    )
    def get(self, request: Request, key_id: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            return _rotation(rotation.key_rotation_status(ctx=ctx, key_id=key_id))

        return Response(
            run(request, "GetKeyRotationStatus", work, params={"KeyId": key_id}, audit_response=echo)
        )

    @extend_schema(
        tags=TAG,
        summary="Turn automatic rotation on (with a period) or off (EnableKeyRotation / DisableKeyRotation)",
        request=s.RotationSettingsInput,
        responses=s.RotationOutput,
        examples=[
            OpenApiExample("Yearly", value={"enabled": True, "rotation_period_days": 365}, request_only=True)
        ],
    )
    def put(self, request: Request, key_id: str) -> Response:
        enabling = body(request, s.RotationSettingsInput).get("enabled") is True

        def work(ctx: OperationContext) -> dict[str, Any]:
            data = validated(s.RotationSettingsInput, request.data)
            if data["enabled"]:
                key = rotation.key_rotation_enable(
                    ctx=ctx, key_id=key_id, rotation_period_days=data["rotation_period_days"]
                )
            else:
                key = rotation.key_rotation_disable(ctx=ctx, key_id=key_id)
            return _rotation(rotation.rotation_status_of(key))

        operation = "EnableKeyRotation" if enabling else "DisableKeyRotation"
        params = {**body(request, s.RotationSettingsInput), "KeyId": key_id}
        return Response(run(request, operation, work, params=params, audit_response=echo))


class KeyLastUsageView(APIView):
    @extend_schema(
        tags=TAG,
        summary="A key's last successful cryptographic operation, from the audit trail (GetKeyLastUsage)",
        responses=s.KeyLastUsageOutput,
    )
    def get(self, request: Request, key_id: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            return dict(s.KeyLastUsageOutput(usage.key_last_usage(ctx=ctx, key_id=key_id)).data)

        return Response(run(request, "GetKeyLastUsage", work, params={"KeyId": key_id}, audit_response=echo))


class KeyRotationListView(OperationListView):
    operation = "ListKeyRotations"
    serializer_class = ps.KeyRotationOutput
    queryset = KeyMaterial.objects.none()
    own_query_params = {"include_key_material": SHOWN_CHARS}

    def rows(self, ctx: OperationContext) -> QuerySet[KeyMaterial]:
        include = self.request.query_params.get("include_key_material", rotation.ROTATIONS_ONLY)
        return rotation.key_rotations(ctx=ctx, key_id=self.kwargs["key_id"], include_key_material=include)[1]

    @extend_schema(
        tags=TAG,
        summary="A key's material versions, oldest first (ListKeyRotations)",
        parameters=[
            OpenApiParameter(
                "include_key_material",
                OpenApiTypes.STR,
                enum=list(rotation.INCLUDE_KEY_MATERIAL),
                description="ROTATIONS_ONLY (default) or ALL_KEY_MATERIAL (the original material too).",
            )
        ],
        responses=ps.KeyRotationOutput(many=True),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)
