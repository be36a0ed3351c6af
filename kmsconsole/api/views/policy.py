"""A key's policy: get, put, validate a draft without saving, the version history, and restoring a version."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from keys.models import KeyPolicyVersion
from keys.services import key_policy, policy_restore
from kmsconsole.api import reads
from kmsconsole.api import serializers as s
from kmsconsole.api.dispatch import body, run, validated
from kmsconsole.api.views.base import OperationListView, echo
from kmsconsole.operations import OperationContext

TAG = ["key policies"]


def _policy(key_id: str, document: str) -> dict[str, Any]:
    return dict(
        s.PolicyOutput(
            {"key_id": key_id, "policy_name": key_policy.DEFAULT_POLICY_NAME, "policy": document}
        ).data
    )


def _without_document(data: Any) -> dict[str, Any]:
    # The document is already in the request parameters (or the history); recording it twice adds nothing.
    return {name: value for name, value in dict(data).items() if name != "policy"}


class KeyPolicyView(APIView):
    @extend_schema(tags=TAG, summary="Get a key's policy (GetKeyPolicy)", responses=s.PolicyOutput)
    def get(self, request: Request, key_id: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            _, document = key_policy.key_policy_get(ctx=ctx, key_id=key_id)
            return _policy(key_id, document)

        return Response(run(request, "GetKeyPolicy", work, params={"KeyId": key_id}, audit_response=echo))

    @extend_schema(
        tags=TAG,
        summary="Replace a key's policy, keeping the old one in the history (PutKeyPolicy)",
        request=s.PolicyPutInput,
        responses=s.PolicyOutput,
        examples=[
            OpenApiExample(
                "Account delegates to IAM",
                value={
                    "policy": '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
                    '"Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}',
                    "bypass_lockout_safety_check": False,
                },
                request_only=True,
            )
        ],
    )
    def put(self, request: Request, key_id: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            data = validated(s.PolicyPutInput, request.data)
            key_policy.key_policy_put(
                ctx=ctx,
                key_id=key_id,
                policy=data["policy"],
                bypass_lockout=data["bypass_lockout_safety_check"],
            )
            return _policy(key_id, data["policy"])

        params = {**body(request, s.PolicyPutInput), "KeyId": key_id}
        return Response(run(request, "PutKeyPolicy", work, params=params, audit_response=_without_document))


class KeyPolicyValidateView(APIView):
    @extend_schema(
        tags=TAG,
        summary="Check a draft policy as PutKeyPolicy would (syntax, principals, lockout), without saving it "
        "(kmsconsole:ValidateKeyPolicy, a dry run of PutKeyPolicy: needs kms:PutKeyPolicy on the key)",
        request=s.PolicyValidateInput,
        responses=s.PolicyValidationOutput,
    )
    def post(self, request: Request, key_id: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            data = validated(s.PolicyValidateInput, request.data)
            result = reads.policy_validate(ctx, key_id=key_id, document=data["policy"])
            return dict(s.PolicyValidationOutput(result).data)

        params = {**body(request, s.PolicyValidateInput), "KeyId": key_id}
        return Response(
            run(request, "kmsconsole:ValidateKeyPolicy", work, params=params, audit_response=echo)
        )


class KeyPolicyVersionListView(OperationListView):
    operation = "kmsconsole:ListKeyPolicyVersions"
    serializer_class = s.PolicyVersionOutput
    queryset = KeyPolicyVersion.objects.none()

    def rows(self, ctx: OperationContext) -> QuerySet[KeyPolicyVersion]:
        return reads.policy_versions(ctx, key_id=self.kwargs["key_id"])

    @extend_schema(
        tags=TAG, summary="A key policy's versions, newest first", responses=s.PolicyVersionOutput(many=True)
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)


class KeyPolicyRestoreView(APIView):
    @extend_schema(
        tags=TAG,
        summary="Make an earlier version the key's policy again, as a new version (PutKeyPolicy); a principal "
        "deleted (or deleted and recreated) since the version was saved is named by the unique id the version "
        "recorded, and `notes` says so",
        request=s.PolicyRestoreInput,
        responses=s.PolicyRestoreOutput,
    )
    def post(self, request: Request, key_id: str, version: int) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            data = validated(s.PolicyRestoreInput, request.data)
            # The version is looked up once the caller is allowed kms:PutKeyPolicy on the key (the put is then
            # decided again, with the document it writes, as any PutKeyPolicy). A principal deleted since the
            # version was saved is named by the unique id the version recorded, and the notes say so.
            restored = policy_restore.key_policy_restore(
                ctx=ctx, key_id=key_id, version=version, bypass_lockout=data["bypass_lockout_safety_check"]
            )
            plan = restored.plan
            return dict(
                s.PolicyRestoreOutput(
                    {
                        "key_id": key_id,
                        "policy_name": key_policy.DEFAULT_POLICY_NAME,
                        "policy": plan.document,
                        "restored_version": version,
                        "version": restored.written.version,
                        "rebound_principals": plan.rebound_shown,
                        "notes": list(plan.notes),
                    }
                ).data
            )

        params = {**body(request, s.PolicyRestoreInput), "KeyId": key_id, "Version": version}
        return Response(run(request, "PutKeyPolicy", work, params=params, audit_response=_without_document))
