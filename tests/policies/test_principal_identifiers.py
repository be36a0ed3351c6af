"""Identifiers of principals in the service layer: a new principal's path follows the rule the policy engine reads
ARNs with (and a principal stored before that rule is left out of the analysis and refused, not a failure of its
whole account); a name, account id or access key id that breaks its rule names nothing (NoSuchEntity, never a
database error: PostgreSQL text cannot hold a NUL); an account id is 12 ASCII digits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kmsconsole.audit.models import AuditEvent
from kmsconsole.core import errors
from policies import engine, selectors, services
from policies.analyzer import services as analyzer
from policies.models import Account, IamGroup, IamRole, IamUser
from tests.conftest import ALLOW_ALL, Persona, as_operator
from tests.policies.analyzer_support import (
    ROOT,
    bare_user,
    group_with,
    identity_policy,
    make_key,
    policy,
    role_with,
    run_as,
    stored_before_the_path_rule,
)

pytestmark = pytest.mark.django_db
# 444455556667 in full-width digits, which str.isdigit() and a Unicode \d take for digits.
FULL_WIDTH_ACCOUNT = "\uff14\uff14\uff14\uff14\uff15\uff15\uff15\uff15\uff16\uff16\uff16\uff17"

CREATE = {
    "user": lambda ctx, account, path: services.user_create(
        ctx=ctx, account=account, user_name="x3", path=path
    ),
    "role": lambda ctx, account, path: services.role_create(
        ctx=ctx, account=account, role_name="x3", path=path
    ),
    "group": lambda ctx, account, path: services.group_create(
        ctx=ctx, account=account, group_name="x3", path=path
    ),
}
MODELS = {"user": IamUser, "role": IamRole, "group": IamGroup}


def create(kind: str, account: Account, path: str) -> Any:
    return as_operator(f"iam:Create{kind.capitalize()}", lambda ctx: CREATE[kind](ctx, account, path))


@pytest.mark.parametrize("kind", ["user", "role", "group"])
@pytest.mark.parametrize("path", ["/a//b/", "//", "/a*/", "/a?/", "/*/", "/a/\n"])
def test_a_path_the_engine_could_not_read_is_refused(kind: str, path: str, account: Account) -> None:
    with pytest.raises(errors.ValidationException) as refused:
        create(kind, account, path)
    message = refused.value.message
    assert "Empty names (//)" in message and "nor * or ?" in message and "wildcards" in message
    assert not MODELS[kind].objects.filter(name="x3").exists()


@pytest.mark.parametrize("kind", ["user", "role", "group"])
def test_a_valid_path_is_read_back_from_the_principal_arn(kind: str, account: Account) -> None:
    entity = create(kind, account, "/division_abc/team-1/")
    parsed = engine.parse_principal_arn(entity.arn)
    assert parsed is not None and (parsed.path, parsed.name) == ("/division_abc/team-1/", "x3")


@pytest.mark.parametrize("kind", ["user", "role", "group"])
def test_a_name_with_a_trailing_newline_is_refused(kind: str, account: Account) -> None:
    # "$" in a pattern used with match() lets a final newline through: the ARN would then not parse.
    make = {
        "user": lambda ctx: services.user_create(ctx=ctx, account=account, user_name="x3\n"),
        "role": lambda ctx: services.role_create(ctx=ctx, account=account, role_name="x3\n"),
        "group": lambda ctx: services.group_create(ctx=ctx, account=account, group_name="x3\n"),
    }[kind]
    with pytest.raises(errors.ValidationException):
        as_operator(f"iam:Create{kind.capitalize()}", make)


@pytest.fixture
def legacy(account: Account, make_user: Callable[..., Persona]) -> Persona:
    """User legacy (Allow * on *), role legacy-role and group legacy-group (with legacy in it), all at /a//b/."""
    persona = make_user("legacy", ALLOW_ALL)
    role_with(account, "legacy-role", identity_policy("kms:Encrypt"))
    group_with(account, "legacy-group", ["legacy"], identity_policy("kms:Decrypt"))
    stored_before_the_path_rule(IamUser, "legacy")
    stored_before_the_path_rule(IamRole, "legacy-role")
    stored_before_the_path_rule(IamGroup, "legacy-group")
    return persona


def test_the_analysis_leaves_out_a_principal_the_engine_cannot_read(
    account: Account, admin: Persona, legacy: Persona
) -> None:
    bare_user(account, "dev", identity_policy("kms:Encrypt"))
    key = make_key(policy(ROOT))
    report = run_as(
        admin,
        "kmsconsole:AnalyzeKeyAccess",
        lambda ctx: analyzer.key_access_analyze(ctx=ctx, key_id=str(key.key_id)),
    )
    subjects = {subject.arn for subject, _ in report.matrix.rows()}
    legacy_arn = IamUser.objects.get(name="legacy").arn
    assert legacy_arn == f"arn:aws:iam::{account.account_id}:user/a//b/legacy"
    assert legacy_arn not in subjects and admin.arn in subjects
    assert report.matrix.verdict(f"arn:aws:iam::{account.account_id}:user/dev", "kms:Encrypt").allowed
    # The role's sessions are read by their session ARN, which carries no path: it is still analysed.
    assert IamRole.objects.get(name="legacy-role").arn in subjects
    page = run_as(admin, "kmsconsole:ListFindings", lambda ctx: analyzer.findings_list(ctx=ctx))
    assert page.keys_analysed == 1
    comparison = run_as(
        admin,
        "kmsconsole:AnalyzeKeyAccess",
        lambda ctx: analyzer.key_policy_compare(
            ctx=ctx, key_id=str(key.key_id), policy=policy(ROOT, {**ROOT, "Sid": "Again"})
        ),
    )
    assert legacy_arn not in {change.subject.arn for change in comparison.gains + comparison.losses}


def test_a_principal_the_engine_cannot_read_is_refused_everything(legacy: Persona) -> None:
    with pytest.raises(errors.AccessDeniedException) as refused:
        run_as(legacy, "kmsconsole:ListFindings", lambda ctx: analyzer.findings_list(ctx=ctx))
    assert "the policy engine cannot read this principal's ARN" in refused.value.message
    event = AuditEvent.objects.filter(operation="kmsconsole:ListFindings").order_by("-seq").first()
    assert event is not None and event.caller_arn.endswith(":user/a//b/legacy")
    assert (event.decision, event.error_code) == ("denied", "AccessDeniedException")


NOT_NAMES = ["\x00", "ali\x00ce", "a b", "alice\n", "", "x" * 129]


@pytest.mark.parametrize("name", NOT_NAMES)
@pytest.mark.parametrize("kind", ["user", "role", "group"])
def test_a_name_that_breaks_the_rule_is_not_found(kind: str, name: str, account: Account) -> None:
    with pytest.raises(errors.NoSuchEntityException, match=rf"(?s)The {kind} with name .* cannot be found"):
        as_operator(
            f"iam:Get{kind.capitalize()}",
            lambda ctx: services.entity_describe(ctx=ctx, account=account, kind=kind, name=name),
        )
    get = {"user": selectors.user_get, "role": selectors.role_get, "group": selectors.group_get}[kind]
    with pytest.raises(errors.NoSuchEntityException):
        get(account, name)


@pytest.mark.parametrize("name", NOT_NAMES)
def test_a_policy_or_access_key_that_breaks_the_rule_is_not_found(
    name: str, account: Account, admin: Persona
) -> None:
    with pytest.raises(
        errors.NoSuchEntityException, match=r"(?s)The user policy with name .* cannot be found"
    ):
        as_operator(
            "iam:GetUserPolicy",
            lambda ctx: services.identity_policy_describe(
                ctx=ctx, account=account, kind="user", owner_name="admin", policy_name=name
            ),
        )
    for user_name in ("admin", None):
        with pytest.raises(
            errors.NoSuchEntityException, match=r"(?s)The Access Key with id .* cannot be found"
        ):
            as_operator(
                "iam:DeleteAccessKey",
                lambda ctx, u=user_name: services.access_key_delete(
                    ctx=ctx, account=account, access_key_id=name, user_name=u
                ),
            )
    group_with(account, "admins", ["admin"], identity_policy("kms:Encrypt"))
    with pytest.raises(errors.NoSuchEntityException, match=r"(?s)The user with name .* cannot be found"):
        as_operator(
            "iam:RemoveUserFromGroup",
            lambda ctx: services.group_remove_user(
                ctx=ctx, account=account, group_name="admins", user_name=name
            ),
        )


@pytest.mark.parametrize("account_id", ["\x00", "11112222333\x00", FULL_WIDTH_ACCOUNT, ""])
def test_an_account_id_that_breaks_the_rule_is_not_found(account_id: str, account: Account) -> None:
    with pytest.raises(errors.NoSuchEntityException, match=r"The account .* cannot be found"):
        selectors.account_get(account_id)


@pytest.mark.parametrize("account_id", [FULL_WIDTH_ACCOUNT, "٤٤٤٤٥٥٥٥٦٦٦٧", "11112222333\uff13"])
def test_an_account_id_of_other_digits_than_ascii_is_refused(account_id: str, db: None) -> None:
    with pytest.raises(errors.ValidationException, match=r"12 ASCII digits"):
        as_operator("iam:CreateAccount", lambda ctx: services.account_create(ctx=ctx, account_id=account_id))
    assert not Account.objects.filter(account_id=account_id).exists()


def test_a_name_stored_under_the_older_rule_is_still_found(account: Account, make_user: Any) -> None:
    """The old rule's `$` let a final newline through; such rows must stay reachable (to describe and remove), so
    only text PostgreSQL cannot hold is refused without a query."""
    from tests.rows import update_sealed

    make_user("legacy")
    update_sealed(IamUser.objects.filter(name="legacy"), name="legacy\n")
    assert selectors.user_get(account, "legacy\n").name == "legacy\n"
    with pytest.raises(errors.NoSuchEntityException):
        selectors.user_get(account, "legacy\x00")
