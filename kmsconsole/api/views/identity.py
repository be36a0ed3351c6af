"""Inline identity policies of users, roles and groups; a user's access keys; the caller's own API tokens.

A new access key's secret and a new token are in the creation response only: never stored in clear, never in
the audit trail."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kmsconsole.api import principal_serializers as p
from kmsconsole.api.dispatch import body, created, run, validated
from kmsconsole.api.models import ApiToken
from kmsconsole.api.tokens import api_token_create, api_token_list, api_token_revoke
from kmsconsole.api.views.base import OperationListView
from kmsconsole.api.views.principals import own_account
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies import services
from policies.models import AccessKey, IamUser, IdentityPolicy

POLICY_TAG = ["identity policies"]
POLICY_EXAMPLE = OpenApiExample(
    "Allow encrypting with one key",
    value={
        "document": '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Encrypt", '
        '"Resource": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}]}'
    },
    request_only=True,
)


def _policy_params(kind: str, name: str, policy_name: str | None = None) -> dict[str, str]:
    params = {f"{kind.capitalize()}Name": name}
    return params if policy_name is None else {**params, "PolicyName": policy_name}


class PolicyListView(OperationListView):
    """The inline policies of one user, role or group (subclasses name the kind)."""

    kind = ""
    serializer_class = p.IdentityPolicySummaryOutput
    queryset = IdentityPolicy.objects.none()

    def rows(self, ctx: OperationContext) -> QuerySet[IdentityPolicy]:
        return services.identity_policy_list(
            ctx=ctx, account=own_account(ctx), kind=self.kind, owner_name=self.kwargs["name"]
        )

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)


class PolicyDetailView(APIView):
    kind = ""

    def _get(self, request: Request, name: str, policy_name: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            policy = services.identity_policy_describe(
                ctx=ctx, account=own_account(ctx), kind=self.kind, owner_name=name, policy_name=policy_name
            )
            return dict(p.IdentityPolicyOutput(policy).data)

        operation = f"iam:Get{self.kind.capitalize()}Policy"
        return Response(run(request, operation, work, params=_policy_params(self.kind, name, policy_name)))

    def _put(self, request: Request, name: str, policy_name: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            data = validated(p.IdentityPolicyPutInput, request.data)
            owner = services.entity_describe(ctx=ctx, account=own_account(ctx), kind=self.kind, name=name)
            policy = services.identity_policy_put(
                ctx=ctx, owner=owner, policy_name=policy_name, document=data["document"]
            )
            return dict(p.IdentityPolicyOutput(policy).data)

        operation = f"iam:Put{self.kind.capitalize()}Policy"
        params = {**body(request, p.IdentityPolicyPutInput), **_policy_params(self.kind, name, policy_name)}
        return Response(run(request, operation, work, params=params))

    def _delete(self, request: Request, name: str, policy_name: str) -> Response:
        def work(ctx: OperationContext) -> None:
            services.identity_policy_delete(
                ctx=ctx, account=own_account(ctx), kind=self.kind, owner_name=name, policy_name=policy_name
            )

        operation = f"iam:Delete{self.kind.capitalize()}Policy"
        run(request, operation, work, params=_policy_params(self.kind, name, policy_name))
        return Response(status=204)


def _policy_views(kind: str) -> tuple[type[PolicyListView], type[PolicyDetailView]]:
    """The list and detail views of one kind's inline policies, each method with its own schema."""
    noun = kind.capitalize()

    class ListView(PolicyListView):
        operation = f"iam:List{noun}Policies"

        @extend_schema(tags=POLICY_TAG, summary=f"List a {kind}'s inline policies (iam:List{noun}Policies)")
        def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
            return self.list(request, *args, **kwargs)

    class DetailView(PolicyDetailView):
        @extend_schema(
            tags=POLICY_TAG,
            summary=f"A {kind}'s inline policy (iam:Get{noun}Policy)",
            responses=p.IdentityPolicyOutput,
        )
        def get(self, request: Request, name: str, policy_name: str) -> Response:
            return self._get(request, name, policy_name)

        @extend_schema(
            tags=POLICY_TAG,
            summary=f"Create or replace a {kind}'s inline policy; the engine validates it (iam:Put{noun}Policy)",
            request=p.IdentityPolicyPutInput,
            responses=p.IdentityPolicyOutput,
            examples=[POLICY_EXAMPLE],
        )
        def put(self, request: Request, name: str, policy_name: str) -> Response:
            return self._put(request, name, policy_name)

        @extend_schema(
            tags=POLICY_TAG,
            summary=f"Delete a {kind}'s inline policy (iam:Delete{noun}Policy)",
            request=None,
            responses={204: None},
        )
        def delete(self, request: Request, name: str, policy_name: str) -> Response:
            return self._delete(request, name, policy_name)

    ListView.kind = DetailView.kind = kind
    ListView.__name__, DetailView.__name__ = f"{noun}PolicyListView", f"{noun}PolicyDetailView"
    ListView.__qualname__, DetailView.__qualname__ = ListView.__name__, DetailView.__name__
    return ListView, DetailView


UserPolicyListView, UserPolicyDetailView = _policy_views("user")
RolePolicyListView, RolePolicyDetailView = _policy_views("role")
GroupPolicyListView, GroupPolicyDetailView = _policy_views("group")

KEY_TAG = ["access keys"]


class AccessKeyListView(OperationListView):
    operation = "iam:ListAccessKeys"
    serializer_class = p.AccessKeyOutput
    queryset = AccessKey.objects.none()

    def rows(self, ctx: OperationContext) -> QuerySet[AccessKey]:
        return services.access_key_list(ctx=ctx, account=own_account(ctx), user_name=self.kwargs["name"])

    @extend_schema(tags=KEY_TAG, summary="A user's access keys, without their secrets (iam:ListAccessKeys)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    @extend_schema(
        tags=KEY_TAG,
        summary="Create an access key for a user; the secret is shown once (iam:CreateAccessKey)",
        request=None,
        responses={201: p.AccessKeyCreatedOutput},
    )
    def post(self, request: Request, name: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            created = services.access_key_create(ctx=ctx, account=own_account(ctx), user_name=name)
            return dict(p.AccessKeyCreatedOutput(created).data)

        def recorded(result: dict[str, Any]) -> dict[str, Any]:
            return {"AccessKeyId": result["access_key_id"], "UserName": name, "Status": result["status"]}

        params = {"UserName": name}
        return Response(
            run(request, "iam:CreateAccessKey", work, params=params, audit_response=recorded), status=201
        )


class AccessKeyDetailView(APIView):
    @extend_schema(
        tags=KEY_TAG,
        summary="Activate or deactivate a user's access key (iam:UpdateAccessKey)",
        request=p.AccessKeyUpdateInput,
        responses=p.AccessKeyOutput,
    )
    def patch(self, request: Request, name: str, access_key_id: str) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            data = validated(p.AccessKeyUpdateInput, request.data)
            key = services.access_key_set_status(
                ctx=ctx,
                account=own_account(ctx),
                access_key_id=access_key_id,
                status=data["status"],
                user_name=name,
            )
            return dict(p.AccessKeyOutput(key).data)

        params = {**body(request, p.AccessKeyUpdateInput), "UserName": name, "AccessKeyId": access_key_id}
        return Response(run(request, "iam:UpdateAccessKey", work, params=params))

    @extend_schema(
        tags=KEY_TAG,
        summary="Delete a user's access key (iam:DeleteAccessKey)",
        request=None,
        responses={204: None},
    )
    def delete(self, request: Request, name: str, access_key_id: str) -> Response:
        def work(ctx: OperationContext) -> None:
            services.access_key_delete(
                ctx=ctx, account=own_account(ctx), access_key_id=access_key_id, user_name=name
            )

        run(request, "iam:DeleteAccessKey", work, params={"UserName": name, "AccessKeyId": access_key_id})
        return Response(status=204)


TOKEN_TAG = ["api tokens"]


def caller_user(ctx: OperationContext) -> IamUser:
    """The IAM user the request acts as (API callers always are one)."""
    user = IamUser.objects.select_related("account").filter(pk=ctx.caller.user_pk).first()
    if ctx.caller.user_pk is None or user is None:
        raise errors.ValidationException("Only an IAM user has API tokens.")
    return user


class ApiTokenListView(OperationListView):
    operation = "kmsconsole:ListApiTokens"
    serializer_class = p.ApiTokenOutput
    queryset = ApiToken.objects.none()

    def rows(self, ctx: OperationContext) -> QuerySet[ApiToken]:
        return api_token_list(ctx=ctx, user=caller_user(ctx))

    @extend_schema(
        tags=TOKEN_TAG, summary="The caller's own API tokens, newest first (kmsconsole:ListApiTokens)"
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    @extend_schema(
        tags=TOKEN_TAG,
        summary="Create an API token for the caller; it is shown once (kmsconsole:CreateApiToken)",
        request=p.ApiTokenCreateInput,
        responses={201: p.ApiTokenCreatedOutput},
        examples=[OpenApiExample("CI token", value={"name": "ci", "expires_in_days": 90}, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            data = validated(p.ApiTokenCreateInput, request.data)
            user = caller_user(ctx)
            created = api_token_create(
                ctx=ctx,
                account=user.account,
                user_name=user.name,
                name=data["name"],
                expires_in_days=data["expires_in_days"],
            )
            return {**p.ApiTokenOutput(created.token).data, "token": created.plaintext}

        def recorded(result: dict[str, Any]) -> dict[str, Any]:
            return {"TokenId": result["id"], "Prefix": result["prefix"]}  # never the token

        return created(request, "kmsconsole:CreateApiToken", work, p.ApiTokenCreateInput, recorded)


class ApiTokenRevokeView(APIView):
    @extend_schema(
        tags=TOKEN_TAG,
        summary="Revoke one of the caller's API tokens at once (kmsconsole:RevokeApiToken)",
        request=None,
        responses=p.ApiTokenOutput,
    )
    def post(self, request: Request, token_id: int) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            token = api_token_revoke(ctx=ctx, token_id=token_id, owner=caller_user(ctx))
            return dict(p.ApiTokenOutput(token).data)

        return Response(run(request, "kmsconsole:RevokeApiToken", work, params={"TokenId": token_id}))
