"""Accounts, users, roles and groups (list, create, retrieve, delete) and group membership. Everything happens in the
caller's own account: its id comes from the authenticated principal, never from the URL."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kmsconsole.api import principal_serializers as p
from kmsconsole.api.dispatch import body, created, run, validated
from kmsconsole.api.views.base import OperationListView, echo
from kmsconsole.operations import OperationContext
from policies import services
from policies.models import Account, IamGroup, IamRole, IamUser
from policies.selectors import account_get


def own_account(ctx: OperationContext) -> Account:
    return account_get(ctx.caller.account_id)


class AccountListView(OperationListView):
    operation = "kmsconsole:ListAccounts"
    serializer_class = p.AccountOutput
    queryset = Account.objects.none()

    def rows(self, ctx: OperationContext) -> QuerySet[Account]:
        return services.account_list(ctx=ctx)

    @extend_schema(
        tags=["accounts"],
        summary="List accounts: the caller's own, or every one with kmsconsole:ListAccounts",
        responses=p.AccountOutput(many=True),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    @extend_schema(
        tags=["accounts"],
        summary="Create an account (kmsconsole:CreateAccount)",
        request=p.AccountCreateInput,
        responses={201: p.AccountOutput},
    )
    def post(self, request: Request) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            data = validated(p.AccountCreateInput, request.data)
            return dict(p.AccountOutput(services.account_create(ctx=ctx, account_id=data["account_id"])).data)

        return created(request, "iam:CreateAccount", work, p.AccountCreateInput, echo)


class EntityListView(OperationListView):
    """GET lists the account's entities of one kind, by name; POST creates one (subclasses name the kind)."""

    kind = ""
    create_operation = ""
    serializer_class = p.EntityOutput

    def rows(self, ctx: OperationContext) -> QuerySet[Any]:
        return services.entity_list(ctx=ctx, account=own_account(ctx), kind=self.kind)

    def create(self, ctx: OperationContext, account: Account, name: str, path: str) -> Any:
        raise NotImplementedError

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    def post(self, request: Request) -> Response:
        def work(ctx: OperationContext) -> dict[str, Any]:
            data = validated(p.EntityCreateInput, request.data)
            entity = self.create(ctx, own_account(ctx), data["name"], data["path"])
            return dict(self.serializer_class(entity).data)

        return created(request, self.create_operation, work, p.EntityCreateInput, echo)


class EntityDetailView(APIView):
    """GET describes one entity; DELETE deletes it (204), refused with DeleteConflict (409) while it still has what
    IAM makes you remove first (subclasses name the kind)."""

    kind = ""
    operation = ""
    delete_operation = ""
    output: type[p.EntityOutput] = p.EntityOutput

    def describe(self, ctx: OperationContext, name: str) -> dict[str, Any]:
        entity = services.entity_describe(ctx=ctx, account=own_account(ctx), kind=self.kind, name=name)
        return dict(self.output(entity).data)

    def remove(self, ctx: OperationContext, name: str) -> services.DeletedEntity:
        raise NotImplementedError

    def get(self, request: Request, name: str) -> Response:
        return Response(
            run(request, self.operation, lambda ctx: self.describe(ctx, name), params={"Name": name})
        )

    def delete(self, request: Request, name: str) -> Response:
        run(
            request,
            self.delete_operation,
            lambda ctx: self.remove(ctx, name),
            params={f"{self.kind.capitalize()}Name": name},
            audit_response=lambda deleted: deleted.audit_elements(),
        )
        return Response(status=204)


TAG = ["principals"]


class UserListView(EntityListView):
    operation, kind, create_operation = "iam:ListUsers", "user", "iam:CreateUser"
    queryset = IamUser.objects.none()

    @extend_schema(tags=TAG, summary="List the account's users (iam:ListUsers)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=TAG,
        summary="Create a user (iam:CreateUser)",
        request=p.EntityCreateInput,
        responses={201: p.EntityOutput},
    )
    def post(self, request: Request) -> Response:
        return super().post(request)

    def create(self, ctx: OperationContext, account: Account, name: str, path: str) -> IamUser:
        return services.user_create(ctx=ctx, account=account, user_name=name, path=path)


class RoleListView(EntityListView):
    operation, kind, create_operation = "iam:ListRoles", "role", "iam:CreateRole"
    queryset = IamRole.objects.none()
    serializer_class = p.RoleOutput

    @extend_schema(tags=TAG, summary="List the account's roles (iam:ListRoles)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=TAG,
        summary="Create a role (iam:CreateRole)",
        request=p.EntityCreateInput,
        responses={201: p.RoleOutput},
    )
    def post(self, request: Request) -> Response:
        return super().post(request)

    def create(self, ctx: OperationContext, account: Account, name: str, path: str) -> IamRole:
        return services.role_create(ctx=ctx, account=account, role_name=name, path=path)


class GroupListView(EntityListView):
    operation, kind, create_operation = "iam:ListGroups", "group", "iam:CreateGroup"
    queryset = IamGroup.objects.none()

    @extend_schema(tags=TAG, summary="List the account's groups (iam:ListGroups)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=TAG,
        summary="Create a group (iam:CreateGroup)",
        request=p.EntityCreateInput,
        responses={201: p.EntityOutput},
    )
    def post(self, request: Request) -> Response:
        return super().post(request)

    def create(self, ctx: OperationContext, account: Account, name: str, path: str) -> IamGroup:
        return services.group_create(ctx=ctx, account=account, group_name=name, path=path)


class UserDetailView(EntityDetailView):
    kind, operation, delete_operation = "user", "iam:GetUser", "iam:DeleteUser"

    @extend_schema(tags=TAG, summary="A user (iam:GetUser)", responses=p.EntityOutput)
    def get(self, request: Request, name: str) -> Response:
        return super().get(request, name)

    @extend_schema(
        tags=TAG,
        summary="Delete a user (iam:DeleteUser); 409 DeleteConflict while it has access keys, a console login, "
        "inline policies or groups; its API tokens are revoked with it",
        request=None,
        responses={204: None},
    )
    def delete(self, request: Request, name: str) -> Response:
        return super().delete(request, name)

    def remove(self, ctx: OperationContext, name: str) -> services.DeletedEntity:
        return services.user_delete(ctx=ctx, account=own_account(ctx), user_name=name)


class RoleDetailView(EntityDetailView):
    kind, operation, delete_operation, output = "role", "iam:GetRole", "iam:DeleteRole", p.RoleOutput

    @extend_schema(tags=TAG, summary="A role (iam:GetRole)", responses=p.RoleOutput)
    def get(self, request: Request, name: str) -> Response:
        return super().get(request, name)

    @extend_schema(
        tags=TAG,
        summary="Delete a role and end its sessions (iam:DeleteRole); 409 DeleteConflict while it has inline "
        "policies",
        request=None,
        responses={204: None},
    )
    def delete(self, request: Request, name: str) -> Response:
        return super().delete(request, name)

    def remove(self, ctx: OperationContext, name: str) -> services.DeletedEntity:
        return services.role_delete(ctx=ctx, account=own_account(ctx), role_name=name)


class GroupDetailView(EntityDetailView):
    kind, operation, delete_operation = "group", "iam:GetGroup", "iam:DeleteGroup"

    @extend_schema(
        tags=TAG,
        summary="Delete a group (iam:DeleteGroup); 409 DeleteConflict while it has members or inline policies",
        request=None,
        responses={204: None},
    )
    def delete(self, request: Request, name: str) -> Response:
        return super().delete(request, name)

    def remove(self, ctx: OperationContext, name: str) -> services.DeletedEntity:
        return services.group_delete(ctx=ctx, account=own_account(ctx), group_name=name)

    def describe(self, ctx: OperationContext, name: str) -> dict[str, Any]:
        group, users = services.group_members(ctx=ctx, account=own_account(ctx), group_name=name)
        return {**p.EntityOutput(group).data, "users": p.EntityOutput(users, many=True).data}

    @extend_schema(tags=TAG, summary="A group and its users (iam:GetGroup)", responses=p.GroupDetailOutput)
    def get(self, request: Request, name: str) -> Response:
        return super().get(request, name)


class GroupMembersView(APIView):
    @extend_schema(
        tags=TAG,
        summary="Add a user to a group (iam:AddUserToGroup)",
        request=p.MemberAddInput,
        responses={204: None},
    )
    def post(self, request: Request, name: str) -> Response:
        def work(ctx: OperationContext) -> None:
            data = validated(p.MemberAddInput, request.data)
            services.group_add_user(
                ctx=ctx, account=own_account(ctx), group_name=name, user_name=data["user_name"]
            )

        run(
            request, "iam:AddUserToGroup", work, params={**body(request, p.MemberAddInput), "GroupName": name}
        )
        return Response(status=204)


class GroupMemberView(APIView):
    @extend_schema(
        tags=TAG,
        summary="Remove a user from a group (iam:RemoveUserFromGroup)",
        request=None,
        responses={204: None},
    )
    def delete(self, request: Request, name: str, user_name: str) -> Response:
        def work(ctx: OperationContext) -> None:
            services.group_remove_user(
                ctx=ctx, account=own_account(ctx), group_name=name, user_name=user_name
            )

        run(request, "iam:RemoveUserFromGroup", work, params={"GroupName": name, "UserName": user_name})
        return Response(status=204)
