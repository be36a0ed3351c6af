"""DeleteUser, DeleteRole, DeleteGroup in the service layer: AWS's DeleteConflict rules, another account's
principals answered as unknown ones, a role's sessions ended, and no inheritance by a new principal of the same
name (key policies name the deleted principal's unique id, in a new version, in every account; grants to it are
retired; each changed key gets a service event in its owner's trail and the deleting caller's event names none).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from grants import services as grant_services
from grants.models import Grant, IntegratedService
from keys.models import Key
from keys.services import key_policy, lifecycle
from kmsconsole.api.models import ApiToken
from kmsconsole.api.tokens import api_token_create, token_principal
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core import errors
from kmsconsole.core.context import RequestMeta, operator_caller
from kmsconsole.generations.models import Generation
from kmsconsole.generations.scopes import key_scope
from kmsconsole.operations import perform
from policies import deletion, engine, services
from policies.models import AccessKey, Account, ConsoleIdentity, IamGroup, IamRole, IamUser, RoleSession
from policies.selectors import credentials_for
from policies.services import entity_checks
from tests.conftest import ALLOW_RANDOM, PARTNER_ACCOUNT, Persona, as_operator

pytestmark = pytest.mark.django_db

ACCOUNT = settings.KMS_ACCOUNT_ID
DELETE = {
    "user": lambda ctx, account, name: services.user_delete(ctx=ctx, account=account, user_name=name),
    "role": lambda ctx, account, name: services.role_delete(ctx=ctx, account=account, role_name=name),
    "group": lambda ctx, account, name: services.group_delete(ctx=ctx, account=account, group_name=name),
}


def delete_as(persona: Persona | None, kind: str, name: str, account_id: str = ACCOUNT) -> Any:
    """iam:Delete<Kind> through perform(), as the persona (None: the operator), as every interface runs it."""
    operation = f"iam:Delete{kind.capitalize()}"

    def work(ctx: Any) -> Any:
        return DELETE[kind](ctx, Account.objects.get(account_id=account_id), name)

    if persona is None:
        return as_operator(operation, work)
    credentials = credentials_for(persona.access_key_id)
    assert credentials is not None
    holder: dict[str, Any] = {}

    def service(ctx: Any) -> dict[str, Any]:
        holder["deleted"] = work(ctx)
        return holder["deleted"].audit_elements()

    perform(
        operation, caller=credentials.caller, meta=RequestMeta(interface="api"), params={}, service=service
    )
    return holder["deleted"]


def last_event(operation: str) -> AuditEvent:
    event = AuditEvent.objects.filter(operation=operation).order_by("-seq").first()
    assert event is not None
    return event


def plain_user(account: Account, name: str) -> IamUser:
    return as_operator(
        "iam:CreateUser", lambda ctx: services.user_create(ctx=ctx, account=account, user_name=name)
    )


def put_policy(owner: Any, name: str = "p1") -> None:
    operation = f"iam:Put{type(owner).__name__.removeprefix('Iam')}Policy"
    as_operator(
        operation,
        lambda ctx: services.identity_policy_put(
            ctx=ctx, owner=owner, policy_name=name, document=ALLOW_RANDOM
        ),
    )


def _create_key_with(policy: str, owner: str = ACCOUNT) -> Key:
    holder: dict[str, Key] = {}

    def service(ctx: Any) -> dict[str, Any]:
        holder["key"] = lifecycle.key_create(ctx=ctx, policy=policy, bypass_lockout=True)
        return {}

    perform(
        "CreateKey",
        caller=operator_caller(owner, "tests"),
        meta=RequestMeta(interface="cli"),
        params={},
        service=service,
    )
    return holder["key"]


def key_naming(*principals: str, owner: str = ACCOUNT) -> Key:
    """A key of `owner` whose policy lets the account's root administer it and `principals` use it."""
    return _create_key_with(policy_naming(*principals, owner=owner), owner)


def policy_naming(*principals: str, owner: str = ACCOUNT) -> str:
    """A key policy of `owner` that lets the account's root administer the key and `principals` use it."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{owner}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "Allow use of the key",
                    "Effect": "Allow",
                    "Principal": {"AWS": list(principals)},
                    "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"],
                    "Resource": "*",
                },
            ],
        },
        indent=2,
    )


# The conflicts: AWS's DeleteConflict, nothing changed, the refusal audited.


def _access_key(account: Account, user: IamUser) -> None:
    as_operator(
        "iam:CreateAccessKey",
        lambda ctx: services.access_key_create(ctx=ctx, account=account, user_name=user.name),
    )


def _console_login(account: Account, user: IamUser) -> None:
    login = get_user_model().objects.create_user(username=f"{user.name}-login")
    ConsoleIdentity.objects.create(login=login, iam_user=user)


def _api_token(account: Account, user: IamUser) -> Any:
    return as_operator(
        "kmsconsole:CreateApiToken",
        lambda ctx: api_token_create(ctx=ctx, account=account, user_name=user.name),
    )


def _in_group(account: Account, user: IamUser) -> None:
    as_operator(
        "iam:CreateGroup", lambda ctx: services.group_create(ctx=ctx, account=account, group_name="devs")
    )
    as_operator(
        "iam:AddUserToGroup",
        lambda ctx: services.group_add_user(ctx=ctx, account=account, group_name="devs", user_name=user.name),
    )


USER_CONFLICTS: list[tuple[str, Callable[[Account, IamUser], None], str]] = [
    ("access key", _access_key, "Cannot delete entity, must delete access keys first."),
    ("console login", _console_login, "Cannot delete entity, must delete login profile first."),
    (
        "inline policy",
        lambda account, user: put_policy(user),
        "Cannot delete entity, must delete policies first.",
    ),
    ("group membership", _in_group, "Cannot delete entity, must remove users from group first."),
]


@pytest.mark.parametrize(("what", "attach", "message"), USER_CONFLICTS, ids=[c[0] for c in USER_CONFLICTS])
def test_a_user_with_something_attached_is_a_delete_conflict(
    account: Account, admin: Persona, what: str, attach: Callable[[Account, IamUser], None], message: str
) -> None:
    user = plain_user(account, "alice")
    attach(account, user)
    with pytest.raises(errors.DeleteConflictException) as refused:
        delete_as(admin, "user", "alice")
    assert (refused.value.code, refused.value.status, refused.value.message) == (
        "DeleteConflict",
        409,
        message,
    )
    assert IamUser.objects.filter(name="alice").exists()
    event = last_event("iam:DeleteUser")
    assert (event.decision, event.error_code, event.error_message) == ("failed", "DeleteConflict", message)


def test_group_and_role_conflicts(account: Account, admin: Persona) -> None:
    plain_user(account, "alice")
    _in_group(account, IamUser.objects.get(name="alice"))
    group = IamGroup.objects.get(name="devs")
    with pytest.raises(errors.DeleteConflictException, match="must remove users from group first"):
        delete_as(admin, "group", "devs")
    as_operator(
        "iam:RemoveUserFromGroup",
        lambda ctx: services.group_remove_user(
            ctx=ctx, account=account, group_name="devs", user_name="alice"
        ),
    )
    put_policy(group)
    with pytest.raises(
        errors.DeleteConflictException, match=r": Cannot delete entity, must delete policies first\.$"
    ):
        delete_as(admin, "group", "devs")
    role = as_operator(
        "iam:CreateRole", lambda ctx: services.role_create(ctx=ctx, account=account, role_name="app")
    )
    put_policy(role)
    with pytest.raises(
        errors.DeleteConflictException, match=r": Cannot delete entity, must delete policies first\.$"
    ):
        delete_as(admin, "role", "app")
    assert IamGroup.objects.filter(name="devs").exists() and IamRole.objects.filter(name="app").exists()


def test_a_users_api_tokens_are_revoked_with_it_and_counted(account: Account, admin: Persona) -> None:
    # Only a token's owner can revoke it (REST), so a departing user's long-lived token must not block deletion.
    user = plain_user(account, "alice")
    live = [_api_token(account, user) for _ in range(3)]
    revoked, expired = live.pop(), live.pop()
    ApiToken.objects.filter(pk=revoked.token.pk).update(revoked_at=timezone.now())
    ApiToken.objects.filter(pk=expired.token.pk).update(expires_at=timezone.now() - timedelta(days=1))
    assert token_principal(live[0].plaintext) is not None
    deleted = delete_as(admin, "user", "alice")
    assert token_principal(live[0].plaintext) is None
    assert not ApiToken.objects.exists()
    event = last_event("iam:DeleteUser")
    assert (
        event.decision == "allowed"
        and event.response_elements["ApiTokensRevoked"] == deleted.api_tokens_revoked == 1
    )
    recorded = json.dumps([event.request_parameters, event.response_elements])
    for created in (live[0], revoked, expired):
        assert created.token.prefix not in recorded and f'"{created.token.pk}"' not in recorded


# Allowed, refused, unknown, another account's.


@pytest.mark.parametrize("kind", ["user", "role", "group"])
def test_allowed_deletion_removes_the_entity_and_is_audited(
    account: Account, admin: Persona, kind: str
) -> None:
    create = {"user": services.user_create, "role": services.role_create, "group": services.group_create}[
        kind
    ]
    entity = as_operator(
        f"iam:Create{kind.capitalize()}",
        lambda ctx: create(ctx=ctx, account=account, **{f"{kind}_name": "x"}),
    )
    delete_as(admin, kind, "x")
    assert not type(entity).objects.filter(pk=entity.pk).exists()
    event = last_event(f"iam:Delete{kind.capitalize()}")
    assert (event.decision, event.caller_arn) == ("allowed", admin.arn)
    assert event.response_elements[f"{kind.capitalize()}Id"] == entity.unique_id
    assert event.response_elements["Arn"] == entity.arn


def test_refused_caller_changes_nothing(account: Account, outsider: Persona) -> None:
    plain_user(account, "alice")
    with pytest.raises(errors.AccessDeniedException):
        delete_as(outsider, "user", "alice")
    assert IamUser.objects.filter(name="alice").exists()
    event = last_event("iam:DeleteUser")
    assert (event.decision, event.caller_arn) == ("denied", outsider.arn)


def test_unknown_and_other_accounts_principals_are_no_such_entity(
    account: Account, admin: Persona, partner: Callable[..., Persona]
) -> None:
    partner("bob")  # exists, in 444455556666
    messages = []
    for account_id, name in ((ACCOUNT, "nobody"), (PARTNER_ACCOUNT, "bob"), (PARTNER_ACCOUNT, "nobody")):
        with pytest.raises(errors.NoSuchEntityException) as refused:
            delete_as(admin, "user", name, account_id=account_id)
        messages.append(refused.value.message.replace("bob", "nobody"))
    assert len(set(messages)) == 1 and messages[0] == "The user with name nobody cannot be found."
    assert IamUser.objects.filter(account__account_id=PARTNER_ACCOUNT, name="bob").exists()


# A role's sessions end with it.


def test_a_deleted_roles_sessions_and_their_keys_are_gone(
    account: Account, admin: Persona, role_session: Callable[..., Persona]
) -> None:
    session = role_session("app")
    assert credentials_for(session.access_key_id) is not None
    deleted = delete_as(admin, "role", "app")
    assert deleted.sessions_ended == 1
    assert not RoleSession.objects.exists()
    assert not AccessKey.objects.filter(access_key_id=session.access_key_id).exists()
    assert credentials_for(session.access_key_id) is None
    assert last_event("iam:DeleteRole").response_elements["RoleSessionsEnded"] == 1


# No inheritance: key policies, grants, integrated services.


def test_key_policies_of_every_account_name_the_unique_id_in_a_new_version(
    account: Account, admin: Persona, partner: Callable[..., Persona]
) -> None:
    partner(None)
    alice = plain_user(account, "alice")
    own = key_naming(alice.arn, admin.arn)
    other = key_naming(alice.arn, owner=PARTNER_ACCOUNT)
    untouched = key_naming(admin.arn)
    versions = {key.pk: key.policy_versions.count() for key in (own, other, untouched)}
    generation = Generation.objects.get(scope=key_scope(own.key_id)).value
    delete_as(admin, "user", "alice")

    for key in (own, other):
        key.refresh_from_db()
        named = json.loads(key.policy)["Statement"][1]["Principal"]["AWS"]
        assert alice.unique_id in named and alice.arn not in named
        assert key.policy_versions.count() == versions[key.pk] + 1
        latest = key.policy_versions.order_by("-version").first()
        assert latest is not None and latest.document == key.policy
        assert latest.created_by == "kmsconsole:operator/principal-deletion"
        key.check_row()  # resealed
        event = AuditEvent.objects.get(operation="UnbindDeletedPrincipal", key_arn=key.arn)
        assert event.caller_account == key.account.account_id and event.decision == "allowed"
        assert event.request_parameters["PrincipalId"] == alice.unique_id
        assert event.response_elements["PolicyVersion"] == latest.version
        # The rewritten document itself: the trail holds every policy the key had.
        assert event.response_elements["Policy"] == key.policy
    untouched.refresh_from_db()
    assert untouched.policy_versions.count() == versions[untouched.pk]
    assert not AuditEvent.objects.filter(operation="UnbindDeletedPrincipal", key_arn=untouched.arn).exists()
    # The key's generation moved (the trigger on keys_key): the request path's caches re-read the policy.
    assert Generation.objects.get(scope=key_scope(own.key_id)).value != generation
    # The deleting caller's event names no key, least of all another account's.
    own_event = last_event("iam:DeleteUser")
    recorded = json.dumps([own_event.request_parameters, own_event.response_elements])
    assert str(other.key_id) not in recorded and str(own.key_id) not in recorded and own_event.key_arn == ""


def test_a_new_principal_of_the_same_name_gets_nothing_and_the_unique_id_cannot_be_put_back(
    account: Account, admin: Persona
) -> None:
    old = plain_user(account, "alice")
    key = key_naming(old.arn)
    delete_as(admin, "user", "alice")
    new = plain_user(account, "alice")
    assert new.arn == old.arn and new.unique_id != old.unique_id
    key.refresh_from_db()
    compiled = engine.compile_key_policy(key.policy)  # the stored policy still compiles
    request = engine.RequestContext.build(
        caller=engine.Caller.user(new.arn, userid=new.unique_id), action="kms:Encrypt", resource=key.arn
    )
    assert not engine.evaluate(request, key_policy=compiled).allowed
    # PutKeyPolicy of the policy as it is now: refused, AWS's words.
    with pytest.raises(errors.MalformedPolicyDocumentException) as refused:
        as_operator(
            "PutKeyPolicy",
            lambda ctx: key_policy.key_policy_put(ctx=ctx, key_id=str(key.key_id), policy=key.policy),
        )
    assert refused.value.message.startswith(
        "Policy contains a statement with one or more invalid principals."
    )
    assert old.unique_id in refused.value.message


def test_a_role_and_its_session_arns_are_unbound(account: Account, admin: Persona) -> None:
    role = as_operator(
        "iam:CreateRole", lambda ctx: services.role_create(ctx=ctx, account=account, role_name="app")
    )
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/app/nightly"
    key = key_naming(role.arn, session, admin.arn)
    delete_as(admin, "role", "app")
    key.refresh_from_db()
    assert json.loads(key.policy)["Statement"][1]["Principal"]["AWS"] == [role.unique_id, admin.arn]


def test_grants_to_it_are_retired_and_grants_it_could_retire_lose_it(
    account: Account, admin: Persona, partner: Callable[..., Persona]
) -> None:
    alice = plain_user(account, "alice")
    key = key_naming(admin.arn)
    to_alice = as_operator(
        "CreateGrant",
        lambda ctx: grant_services.grant_create(
            ctx=ctx, key_id=str(key.key_id), grantee_principal=alice.arn, operations=["Decrypt"]
        ),
    ).grant
    retirable = as_operator(
        "CreateGrant",
        lambda ctx: grant_services.grant_create(
            ctx=ctx,
            key_id=str(key.key_id),
            grantee_principal=admin.arn,
            operations=["Encrypt"],
            retiring_principal=alice.arn,
        ),
    ).grant
    delete_as(admin, "user", "alice")
    assert not Grant.objects.filter(pk=to_alice.pk).exists()
    kept = Grant.objects.select_related("key").get(pk=retirable.pk)
    assert kept.retiring_principal == alice.unique_id and kept.grantee_principal == admin.arn
    kept.check_row()
    event = AuditEvent.objects.get(operation="UnbindDeletedPrincipal", key_arn=key.arn)
    assert event.response_elements["RetiredGrantIds"] == [to_alice.grant_id]
    assert event.response_elements["RetiringPrincipalRemovedGrantIds"] == [retirable.grant_id]
    assert "PolicyVersion" not in event.response_elements


def test_an_integrated_service_binding_is_unbound(account: Account, admin: Persona) -> None:
    alice = plain_user(account, "alice")
    service = IntegratedService.objects.create(
        name="ec2.us-east-1.amazonaws.com", principals=[alice.arn, admin.arn]
    )
    delete_as(admin, "user", "alice")
    service.refresh_from_db()
    assert service.principals == [alice.unique_id, admin.arn]
    service.check_row()
    assert last_event("iam:DeleteUser").response_elements["IntegratedServicesUnbound"] == [service.name]


def test_an_integrated_service_is_bound_only_to_principals_that_exist(
    account: Account, admin: Persona
) -> None:
    """A binding to a deleted principal's ARN (or any name nobody has) would let whoever is created with that name
    later act as the service: refused, nothing registered."""
    alice = plain_user(account, "alice")
    delete_as(admin, "user", "alice")
    for bound in ([admin.arn, alice.arn], [f"arn:aws:iam::{ACCOUNT}:role/nobody"]):
        with pytest.raises(errors.ValidationException) as refused:
            as_operator(
                "kmsconsole:RegisterIntegratedService",
                lambda ctx, bound=bound: grant_services.integrated_service_register(
                    ctx=ctx, name="ec2.us-east-1.amazonaws.com", principals=bound
                ),
            )
        assert refused.value.message.startswith(f"{bound[-1]} names no user or role")
    assert not IntegratedService.objects.exists()


def test_policy_without_reads_escaped_arns_and_leaves_conditions(account: Account) -> None:
    principal = deletion.DeletedPrincipal("arn:aws:iam::111122223333:user/alice", "AIDAAAAAAAAAAAAAAAAAA")
    escaped = (
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": '
        '"arn:aws:iam::111122223333:user\\/\\u0061lice"}, "Action": "kms:*", "Resource": "*", "Condition": '
        '{"StringEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:user/alice"}}}]}'
    )
    changed = deletion.policy_without(escaped, principal)
    assert changed is not None
    statement = json.loads(changed)["Statement"][0]
    assert statement["Principal"]["AWS"] == "AIDAAAAAAAAAAAAAAAAAA"
    assert statement["Condition"]["StringEquals"]["aws:PrincipalArn"] == principal.arn
    assert deletion.policy_without('{"Statement": [{"Principal": "*"}]}', principal) is None


def test_an_escaped_arn_in_a_stored_policy_is_found(account: Account, admin: Persona) -> None:
    alice = plain_user(account, "alice")
    key = key_naming(admin.arn)
    escaped = key.policy.replace(
        json.dumps(admin.arn), json.dumps(admin.arn) + ', "' + alice.arn.replace("/", "\\/") + '"'
    )
    as_operator(
        "PutKeyPolicy", lambda ctx: key_policy.key_policy_put(ctx=ctx, key_id=str(key.key_id), policy=escaped)
    )
    assert alice.arn not in Key.objects.get(pk=key.pk).policy  # only its escaped spelling is stored
    delete_as(admin, "user", "alice")
    assert alice.unique_id in Key.objects.get(pk=key.pk).policy


def test_console_login_delete_removes_the_login(account: Account, admin: Persona) -> None:
    user = plain_user(account, "alice")
    _console_login(account, user)
    as_operator(
        "kmsconsole:DeleteConsoleLogin",
        lambda ctx: services.console_login_delete(
            ctx=ctx, account=account, user_name="alice", login="alice-login"
        ),
    )
    assert not get_user_model().objects.filter(username="alice-login").exists()
    assert not ConsoleIdentity.objects.exists()
    with pytest.raises(errors.NoSuchEntityException):
        as_operator(
            "kmsconsole:DeleteConsoleLogin",
            lambda ctx: services.console_login_delete(
                ctx=ctx, account=account, user_name="alice", login="alice-login"
            ),
        )
    delete_as(admin, "user", "alice")  # nothing left blocks it


def test_the_iam_cli_deletes_and_reports_conflicts(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    user = plain_user(account, "alice")
    put_policy(user)
    with pytest.raises(SystemExit) as exited:
        call_command("iam", "delete-user", "--user-name", "alice")
    assert exited.value.code == 254
    error = json.loads(capsys.readouterr().err)["Error"]
    assert error == {"Code": "DeleteConflict", "Message": "Cannot delete entity, must delete policies first."}
    call_command("iam", "delete-user-policy", "--user-name", "alice", "--policy-name", "p1")
    capsys.readouterr()
    call_command("iam", "delete-user", "--user-name", "alice")
    assert json.loads(capsys.readouterr().out)["Deleted"]["UserId"] == user.unique_id
    assert not IamUser.objects.filter(name="alice").exists()
    assert last_event("iam:DeleteUser").interface == "cli"
    for kind in ("role", "group"):
        call_command("iam", f"create-{kind}", f"--{kind}-name", "x")
        call_command("iam", f"delete-{kind}", f"--{kind}-name", "x")
    assert not IamRole.objects.exists() and not IamGroup.objects.exists()


# A rewrite keeps the stored text (review: re-serialising grew a policy past the size limit, breaking its key).


def describe_as(persona: Persona, key: Key) -> None:
    credentials = credentials_for(persona.access_key_id)
    assert credentials is not None
    perform(
        "DescribeKey",
        caller=credentials.caller,
        meta=RequestMeta(interface="api"),
        params={"KeyId": str(key.key_id)},
        service=lambda ctx: {"KeyId": lifecycle.key_describe(ctx=ctx, key_id=str(key.key_id)).arn},
    )


def test_a_compact_policy_near_the_limit_with_non_ascii_text_keeps_its_text(
    account: Account, admin: Persona
) -> None:
    alice = plain_user(account, "alice")
    notes = [f"n{index}-" + "é" * 150 for index in range(95)]  # 2 bytes each in UTF-8, 6 as \u00e9
    statements = [
        {
            "Sid": "Admin",
            "Effect": "Allow",
            "Principal": {"AWS": admin.arn},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "Use",
            "Effect": "Allow",
            "Principal": {"AWS": [alice.arn]},
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:EncryptionContext:note": notes}},
        },
    ]
    policy = json.dumps(
        {"Version": "2012-10-17", "Statement": statements}, ensure_ascii=False, separators=(",", ":")
    )
    assert 28_000 < len(policy.encode()) <= engine.KEY_POLICY_MAX_BYTES
    key = _create_key_with(policy)
    delete_as(admin, "user", "alice")

    key.refresh_from_db()
    assert key.policy == policy.replace(json.dumps(alice.arn), json.dumps(alice.unique_id))
    latest = key.policy_versions.order_by("-version").first()
    assert latest is not None and latest.document == key.policy
    engine.compile_key_policy(key.policy)
    describe_as(admin, key)  # the key still answers its owner


def test_a_rewrite_that_cannot_keep_the_text_is_compact() -> None:
    principal = deletion.DeletedPrincipal(
        "arn:aws:iam::111122223333:role/app",
        "AROAAAAAAAAAAAAAAAAAA",
        "arn:aws:sts::111122223333:assumed-role/app/",
    )
    document = json.dumps(
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": [principal.arn, principal.session_prefix + "s1", "111122223333"]},
                    "Action": "kms:*",
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:PrincipalArn": principal.arn, "x": "é"}},
                }
            ]
        },
        indent=4,
    )
    changed = deletion.policy_without(document, principal)
    assert changed is not None and len(changed.encode()) < len(document.encode())
    statement = json.loads(changed)["Statement"][0]
    assert statement["Principal"]["AWS"] == [principal.unique_id, "111122223333"]
    assert statement["Condition"]["StringEquals"] == {"aws:PrincipalArn": principal.arn, "x": "é"}
    assert "é" in changed and "\n" not in changed


def test_a_stored_policy_that_would_not_compile_refuses_the_deletion(
    account: Account, admin: Persona
) -> None:
    alice = plain_user(account, "alice")
    key = key_naming(alice.arn, admin.arn)
    broken = key.policy.replace('"Allow"', '"Maybe"', 1)
    key.policy = broken  # a policy stored before a rule existed (resealed: not tampering)
    key.save()
    with pytest.raises(errors.DeleteConflictException, match="cannot name its unique id instead"):
        delete_as(admin, "user", "alice")
    assert IamUser.objects.filter(pk=alice.pk).exists()
    assert Key.objects.get(pk=key.pk).policy == broken


def test_grants_of_a_role_differing_only_by_case_are_left_alone(
    account: Account, admin: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite's LIKE ignores ASCII case: the database query may match role APP's sessions when role app goes. The
    # query is made case-insensitive here whatever the backend, so the exact re-check in Python is what is tested.
    exact = deletion.DeletedPrincipal.matching

    def like_sqlite(self: deletion.DeletedPrincipal, field: str) -> Any:
        from django.db.models import Q

        found = exact(self, field) | Q(**{f"{field}__iexact": self.arn})
        return found | Q(**{f"{field}__istartswith": self.session_prefix}) if self.session_prefix else found

    monkeypatch.setattr(deletion.DeletedPrincipal, "matching", like_sqlite)
    for name in ("app", "APP"):
        as_operator(
            "iam:CreateRole",
            lambda ctx, name=name: services.role_create(ctx=ctx, account=account, role_name=name),
        )
    key = key_naming(admin.arn)

    def grant(grantee: str, retiring: str | None = None) -> Grant:
        return as_operator(
            "CreateGrant",
            lambda ctx: grant_services.grant_create(
                ctx=ctx,
                key_id=str(key.key_id),
                grantee_principal=grantee,
                operations=["Decrypt"],
                retiring_principal=retiring,
            ),
        ).grant

    upper_session = f"arn:aws:sts::{ACCOUNT}:assumed-role/APP/s1"
    to_upper = grant(upper_session)
    upper_retires = grant(admin.arn, retiring=f"arn:aws:iam::{ACCOUNT}:role/APP")
    to_lower = grant(f"arn:aws:sts::{ACCOUNT}:assumed-role/app/s1")
    delete_as(admin, "role", "app")
    assert not Grant.objects.filter(pk=to_lower.pk).exists()
    assert Grant.objects.get(pk=to_upper.pk).grantee_principal == upper_session
    assert Grant.objects.get(pk=upper_retires.pk).retiring_principal == f"arn:aws:iam::{ACCOUNT}:role/APP"
    event = AuditEvent.objects.get(operation="UnbindDeletedPrincipal", key_arn=key.arn)
    assert event.response_elements["RetiredGrantIds"] == [to_lower.grant_id]
    assert "RetiringPrincipalRemovedGrantIds" not in event.response_elements


@pytest.mark.parametrize("gone", ["group", "user"])
def test_add_user_to_group_racing_a_deletion_is_no_such_entity(
    account: Account, monkeypatch: pytest.MonkeyPatch, gone: str
) -> None:
    # DeleteGroup / DeleteUser commits between AddUserToGroup's lookup and its row lock: NoSuchEntity, not a fault.
    alice = plain_user(account, "alice")
    group = as_operator(
        "iam:CreateGroup", lambda ctx: services.group_create(ctx=ctx, account=account, group_name="devs")
    )
    locking = entity_checks._locked_and_checked

    target = group if gone == "group" else alice

    def deleted_meanwhile(row: Any) -> Any:
        if type(row) is type(target):  # looked up already, about to be locked
            type(target).objects.filter(pk=target.pk).delete()
        return locking(row)

    monkeypatch.setattr(entity_checks, "_locked_and_checked", deleted_meanwhile)
    with pytest.raises(errors.NoSuchEntityException, match=f"The {gone} with name"):
        as_operator(
            "iam:AddUserToGroup",
            lambda ctx: services.group_add_user(
                ctx=ctx, account=account, group_name="devs", user_name="alice"
            ),
        )
    event = last_event("iam:AddUserToGroup")
    assert (event.decision, event.error_code) == ("failed", "NoSuchEntity")
