"""What grants allow and who may retire or revoke them, over boto3: grants allow and never deny (an explicit Deny
still wins), constraints (keys case-insensitive, values case-sensitive), grants to roles, sessions and other
accounts, the child-grant rule of CreateGrant, grant tokens, retire and revoke permissions (kms-spec §8.6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from grants.tokens import issue_token
from kmsconsole.audit.explain import explain
from policies import services as principals
from policies.models import Account
from tests.conftest import Persona, as_operator
from tests.grants.conftest import (
    ACCOUNT,
    DENIED,
    PARTNER,
    ROOT,
    allow,
    error_of,
    identity_policy,
    last_event,
    policy,
)
from tests.tampering import tampered_urlsafe_b64

pytestmark = pytest.mark.django_db(transaction=True)

USE = ["Encrypt", "Decrypt", "GenerateDataKey", "DescribeKey"]
DESCRIBE = ["DescribeKey"]
INVALID_TOKEN = ("InvalidGrantTokenException", "The grant token is not valid.")


def test_grants_allow_but_an_explicit_deny_wins(
    admin_kms: Any, key_arn: Callable[..., str], make_user: Callable[..., Persona], kms_client: Any
) -> None:
    arn = key_arn()
    app = make_user("app")
    denied = make_user("denied", identity_policy("kms:Decrypt", effect="Deny"))
    for grantee in (app, denied):
        admin_kms.create_grant(KeyId=arn, GranteePrincipal=grantee.arn, Operations=USE)
    app_kms, denied_kms = kms_client(app), kms_client(denied)
    blob = app_kms.encrypt(KeyId=arn, Plaintext=b"secret")["CiphertextBlob"]
    assert app_kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"
    assert denied_kms.encrypt(KeyId=arn, Plaintext=b"x")["KeyId"] == arn
    code, message = error_of(lambda: denied_kms.decrypt(CiphertextBlob=blob))
    assert code == DENIED and message.endswith("with an explicit deny in an identity-based policy")
    # Only the listed operations, only on the grant's key.
    assert (
        error_of(lambda: app_kms.generate_data_key_without_plaintext(KeyId=arn, KeySpec="AES_256"))[0]
        == DENIED
    )
    assert error_of(lambda: app_kms.encrypt(KeyId=key_arn(), Plaintext=b"x"))[0] == DENIED
    # A key-policy Deny wins over a grant as well.
    deny_key = key_arn(
        Policy=policy(ROOT, {**allow(app.arn, "kms:Encrypt"), "Effect": "Deny", "Sid": "NoEncrypt"})
    )
    admin_kms.create_grant(KeyId=deny_key, GranteePrincipal=app.arn, Operations=USE)
    code, message = error_of(lambda: app_kms.encrypt(KeyId=deny_key, Plaintext=b"x"))
    assert code == DENIED and message.endswith("with an explicit deny in a resource-based policy")
    assert app_kms.describe_key(KeyId=deny_key)["KeyMetadata"]["Arn"] == deny_key


@pytest.mark.parametrize(
    ("constraint", "allowed", "refused"),
    [
        (
            {"EncryptionContextSubset": {"Dept": "IT"}},
            [{"Dept": "IT"}, {"dept": "IT", "extra": "x"}, {"DEPT": "IT"}],
            [{}, {"Dept": "it"}, {"Department": "IT"}],
        ),
        (
            {"EncryptionContextEquals": {"Dept": "IT", "App": "web"}},
            [{"Dept": "IT", "App": "web"}, {"app": "web", "DEPT": "IT"}],
            [{"Dept": "IT"}, {"Dept": "IT", "App": "web", "extra": "x"}, {"Dept": "IT", "App": "Web"}],
        ),
    ],
)
def test_constraints_compare_keys_case_insensitively_and_values_exactly(
    admin_kms: Any,
    key_arn: Callable[..., str],
    make_user: Callable[..., Persona],
    kms_client: Any,
    constraint: dict[str, Any],
    allowed: list[dict[str, str]],
    refused: list[dict[str, str]],
) -> None:
    # The account's IAM may manage this key but not use it, so only the grant can allow its use.
    manage = allow(
        f"arn:aws:iam::{ACCOUNT}:root", "kms:*Grant*", "kms:*KeyPolicy", "kms:DescribeKey", sid="Manage"
    )
    arn = key_arn(Policy=policy(manage))
    app = make_user("app")
    grant_id = admin_kms.create_grant(
        KeyId=arn, GranteePrincipal=app.arn, Operations=USE, Constraints=constraint
    )["GrantId"]
    app_kms = kms_client(app)
    for context in allowed:
        blob = app_kms.encrypt(KeyId=arn, Plaintext=b"p", EncryptionContext=context)["CiphertextBlob"]
        assert app_kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == b"p"
        app_kms.generate_data_key(KeyId=arn, KeySpec="AES_256", EncryptionContext=context)
    for context in refused:
        code, _ = error_of(
            lambda context=context: app_kms.encrypt(KeyId=arn, Plaintext=b"p", EncryptionContext=context)
        )
        assert code == DENIED
        event = last_event("Encrypt")
        assert event.reason == (
            f"denied: grant {grant_id} covers kms:Encrypt for the caller, but the request does not meet its "
            "constraints, and no policy allows it"
        )
    # Constraints do not apply to operations without an encryption context.
    assert app_kms.describe_key(KeyId=arn)["KeyMetadata"]["Arn"] == arn


def test_grants_to_roles_sessions_and_accounts(
    admin_kms: Any,
    key_arn: Callable[..., str],
    role_session: Callable[..., Persona],
    partner: Callable[..., Persona],
    kms_client: Any,
) -> None:
    to_role, to_session = key_arn(), key_arn()
    first = role_session("app")
    creds = as_operator(
        "sts:AssumeRole",
        lambda ctx: principals.role_assume(
            ctx=ctx,
            account=Account.objects.get(account_id=ACCOUNT),
            role_name="app",
            session_name="session-2",
            duration_seconds=None,
        ),
    )
    second = Persona(
        "app-2", creds.assumed_role_arn, creds.access_key_id, creds.secret_access_key, creds.session_token
    )
    first_kms, second_kms = kms_client(first), kms_client(second)
    # A grant to the role covers all its sessions; a grant to one session covers that session only.
    admin_kms.create_grant(KeyId=to_role, GranteePrincipal=f"arn:aws:iam::{ACCOUNT}:role/app", Operations=USE)
    admin_kms.create_grant(KeyId=to_session, GranteePrincipal=first.arn, Operations=USE)
    for session_kms in (first_kms, second_kms):
        assert session_kms.describe_key(KeyId=to_role)["KeyMetadata"]["Arn"] == to_role
    assert first_kms.describe_key(KeyId=to_session)["KeyMetadata"]["Arn"] == to_session
    assert error_of(lambda: second_kms.describe_key(KeyId=to_session))[0] == DENIED

    # Another account: a grant to one of its users works without an IAM policy; a grant to the account itself
    # counts only where that account's IAM allows the request.
    shared, to_account = key_arn(), key_arn()
    bob = partner("bob")
    carol = partner("carol", identity_policy("kms:Encrypt", "kms:DescribeKey", resource=to_account))
    dave = partner("dave")
    admin_kms.create_grant(KeyId=shared, GranteePrincipal=bob.arn, Operations=USE)
    admin_kms.create_grant(KeyId=to_account, GranteePrincipal=PARTNER, Operations=USE)
    assert kms_client(bob).encrypt(KeyId=shared, Plaintext=b"x")["KeyId"] == shared
    assert kms_client(carol).encrypt(KeyId=to_account, Plaintext=b"x")["KeyId"] == to_account
    assert last_event("Encrypt").reason.startswith("allowed by grant ")
    assert error_of(lambda: kms_client(dave).encrypt(KeyId=to_account, Plaintext=b"x"))[0] == DENIED
    # In the grant but not in carol's IAM policy: denied.
    assert (
        error_of(lambda: kms_client(carol).generate_data_key(KeyId=to_account, KeySpec="AES_256"))[0]
        == DENIED
    )
    # The partner account's root holds every IAM permission of its account.
    assert kms_client(partner(None)).describe_key(KeyId=to_account)["KeyMetadata"]["Arn"] == to_account
    # Cross-account callers name the key by ARN, here too.
    key_id = shared.rsplit("/", 1)[1]
    assert error_of(lambda: kms_client(bob).encrypt(KeyId=key_id, Plaintext=b"x"))[0] == "NotFoundException"


def test_a_grant_to_an_account_refused_for_want_of_iam_names_the_missing_identity_permission(
    admin_kms: Any, key_arn: Callable[..., str], partner: Callable[..., Persona], kms_client: Any
) -> None:
    """A grant to an account root counts only with that account's IAM (kms-spec §7.2): the refusal says the
    identity-based permission is missing, as for a key-policy statement for the account, and the audit event names
    the grant rather than "no grant does". Key policies do not decide RetireGrant (§8.6): its refusal says so too."""
    arn = key_arn()
    dave = partner("dave")  # no IAM policy
    granted = admin_kms.create_grant(
        KeyId=arn, GranteePrincipal=f"arn:aws:iam::{PARTNER}:root", Operations=["Encrypt"]
    )["GrantId"]
    code, message = error_of(lambda: kms_client(dave).encrypt(KeyId=arn, Plaintext=b"x"))
    assert code == DENIED and message == (
        f"User: {dave.arn} is not authorized to perform: kms:Encrypt on resource: {arn} because no "
        "identity-based policy allows the kms:Encrypt action"
    )
    event = last_event("Encrypt")
    assert event.decision == "denied" and event.reason == (
        f"denied: grant {granted} allows kms:Encrypt to account {PARTNER}, but a grant to an account counts only "
        "together with an identity policy of the caller that allows kms:Encrypt, and none does"
    )
    # RetireGrant, by a principal the grant does not name, of an account that is neither the key's nor the issuer's.
    plain = admin_kms.create_grant(
        KeyId=arn, GranteePrincipal=f"arn:aws:iam::{ACCOUNT}:root", Operations=DESCRIBE
    )
    code, message = error_of(lambda: kms_client(dave).retire_grant(KeyId=arn, GrantId=plain["GrantId"]))
    assert code == DENIED and message == (
        f"User: {dave.arn} is not authorized to perform: kms:RetireGrant on resource: {arn} because no "
        "identity-based policy allows the kms:RetireGrant action"
    )
    assert "not by key policies" in last_event("RetireGrant").reason
    # Its retiring principal is dave's account: the same words, naming the retiring principal's right.
    retirable = admin_kms.create_grant(
        KeyId=arn,
        GranteePrincipal=f"arn:aws:iam::{ACCOUNT}:root",
        Operations=DESCRIBE,
        RetiringPrincipal=PARTNER,
    )["GrantId"]
    code, message = error_of(lambda: kms_client(dave).retire_grant(KeyId=arn, GrantId=retirable))
    assert code == DENIED and message.endswith(
        "because no identity-based policy allows the kms:RetireGrant action"
    )
    assert last_event("RetireGrant").reason.startswith(
        f"denied: grant {retirable} as its retiring principal allows kms:RetireGrant to account {PARTNER}"
    )


def test_a_pending_grant_to_an_account_is_not_said_to_allow(
    settings: Any,
    admin_kms: Any,
    key_arn: Callable[..., str],
    partner: Callable[..., Persona],
    kms_client: Any,
) -> None:
    """A grant that has not taken effect allows nothing yet: a refusal it would have counted in says so, and what
    to do about both the delay and the missing identity policy. With its token it counts at once, and then it
    allows (what is still missing is the caller's identity policy)."""
    settings.KMS_GRANT_PROPAGATION_SECONDS = 3600  # no worker runs: without its token the grant stays pending
    arn = key_arn()
    dave = partner("dave")  # no IAM policy
    created = admin_kms.create_grant(
        KeyId=arn, GranteePrincipal=f"arn:aws:iam::{PARTNER}:root", Operations=["Encrypt"]
    )
    granted = created["GrantId"]
    dave_kms = kms_client(dave)
    assert error_of(lambda: dave_kms.encrypt(KeyId=arn, Plaintext=b"x"))[0] == DENIED
    event = last_event("Encrypt")
    assert event.reason == (
        f"denied: grant {granted} has not taken effect yet; once it has (or with its grant token) it allows "
        f"kms:Encrypt to account {PARTNER}, but a grant to an account counts only together with an identity "
        "policy of the caller that allows kms:Encrypt, and none does"
    )
    assert f"grant {granted} allows" not in event.reason
    details = explain(event).details
    assert any("short delay" in line for line in details)
    assert any("that account's IAM also allows" in line for line in details)
    # With the token, the grant counts now: it allows, and only the identity policy is missing.
    token = [created["GrantToken"]]
    assert error_of(lambda: dave_kms.encrypt(KeyId=arn, Plaintext=b"x", GrantTokens=token))[0] == DENIED
    assert last_event("Encrypt").reason.startswith(f"denied: grant {granted} allows kms:Encrypt to account")


def test_a_grant_allowing_create_grant_lets_its_grantee_create_only_narrower_grants(
    admin_kms: Any, key_arn: Callable[..., str], make_user: Callable[..., Persona], kms_client: Any
) -> None:
    arn = key_arn()
    parent, child = make_user("parent"), make_user("child")
    admin_kms.create_grant(
        KeyId=arn,
        GranteePrincipal=parent.arn,
        Operations=["CreateGrant", "Encrypt", "Decrypt", "DescribeKey"],
        Constraints={"EncryptionContextSubset": {"tenant": "42"}},
    )
    parent_kms = kms_client(parent)

    def delegate(operations: list[str], constraints: dict[str, Any] | None = None) -> Any:
        extra = {"Constraints": constraints} if constraints is not None else {}
        return parent_kms.create_grant(KeyId=arn, GranteePrincipal=child.arn, Operations=operations, **extra)

    allowed = [
        (["Encrypt"], {"EncryptionContextSubset": {"tenant": "42"}}),
        (["Encrypt", "Decrypt"], {"EncryptionContextSubset": {"TENANT": "42", "region": "eu"}}),
        (["Decrypt"], {"EncryptionContextEquals": {"tenant": "42", "app": "web"}}),
        (["CreateGrant"], {"EncryptionContextSubset": {"tenant": "42"}}),
    ]
    for operations, constraints in allowed:
        assert delegate(operations, constraints)["GrantId"]
    refused = [
        (["Encrypt"], None),  # looser: no constraint
        (["Encrypt"], {"EncryptionContextSubset": {"tenant": "43"}}),  # another value
        (["Encrypt"], {"EncryptionContextSubset": {"region": "eu"}}),  # the parent's pair is missing
        (["Encrypt", "GenerateDataKey"], {"EncryptionContextSubset": {"tenant": "42"}}),  # more operations
        (["RetireGrant"], {"EncryptionContextSubset": {"tenant": "42"}}),
    ]
    for operations, constraints in refused:
        code, message = error_of(lambda o=operations, c=constraints: delegate(o, c))
        assert code == DENIED and "kms:CreateGrant" in message
    # A principal allowed CreateGrant by a policy is not bound this way.
    assert admin_kms.create_grant(KeyId=arn, GranteePrincipal=child.arn, Operations=["GenerateDataKey"])


def test_create_grant_condition_keys(
    admin_kms: Any, key_arn: Callable[..., str], make_user: Callable[..., Persona], kms_client: Any
) -> None:
    """kms:GrantOperations, kms:GranteePrincipal, kms:RetiringPrincipal and kms:GrantConstraintType in policies."""
    app, other = make_user("app"), make_user("other")
    statement = {
        **allow(app.arn, "kms:CreateGrant", sid="Delegate decrypt to the other user only"),
        "Condition": {
            "ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt", "DescribeKey"]},
            "StringEquals": {
                "kms:GranteePrincipal": other.arn,
                "kms:RetiringPrincipal": app.arn,
                "kms:GrantConstraintType": "EncryptionContextEquals",
                "kms:EncryptionContext:tenant": "42",
            },
        },
    }
    arn = key_arn(Policy=policy(ROOT, statement))
    app_kms = kms_client(app)
    good = {
        "KeyId": arn,
        "GranteePrincipal": other.arn,
        "RetiringPrincipal": app.arn,
        "Operations": ["Decrypt"],
        "Constraints": {"EncryptionContextEquals": {"tenant": "42"}},
    }
    assert app_kms.create_grant(**good)["GrantId"]
    assert (
        last_event("CreateGrant").decided_by
        == "statement 'Delegate decrypt to the other user only' in the key policy"
    )
    for change in (
        {"Operations": ["Decrypt", "Encrypt"]},
        {"GranteePrincipal": app.arn},
        {"RetiringPrincipal": other.arn},
        {"Constraints": {"EncryptionContextSubset": {"tenant": "42"}}},
        {"Constraints": {"EncryptionContextEquals": {"tenant": "43"}}},
    ):
        assert error_of(lambda change=change: app_kms.create_grant(**{**good, **change}))[0] == DENIED


def test_grant_tokens(
    admin_kms: Any, key_arn: Callable[..., str], make_user: Callable[..., Persona], kms_client: Any
) -> None:
    arn, other_arn = key_arn(), key_arn()
    app, child = make_user("app"), make_user("child")
    grant = admin_kms.create_grant(
        KeyId=arn, GranteePrincipal=app.arn, Operations=["CreateGrant", "DescribeKey"]
    )
    other = admin_kms.create_grant(KeyId=other_arn, GranteePrincipal=app.arn, Operations=["DescribeKey"])
    app_kms = kms_client(app)

    def create(tokens: list[str]) -> Any:
        return app_kms.create_grant(
            KeyId=arn, GranteePrincipal=child.arn, Operations=DESCRIBE, GrantTokens=tokens
        )

    token = grant["GrantToken"]
    assert create([token])["GrantId"]
    # A valid token of a grant on another key is accepted (ReEncrypt carries tokens for two keys), not used.
    assert create([token, other["GrantToken"]])["GrantId"]
    tampered = tampered_urlsafe_b64(token)
    forged = issue_token(grant_id="ab" * 32, key_arn=arn, issuing_account=ACCOUNT)
    misbound = issue_token(grant_id=grant["GrantId"], key_arn=other_arn, issuing_account=ACCOUNT)
    for bad in ("garbage", tampered, forged, misbound, "A" * 8192):
        assert error_of(lambda bad=bad: create([token, bad])) == INVALID_TOKEN
    assert last_event("CreateGrant").error_code == "InvalidGrantTokenException"
    assert error_of(lambda: create(["t"] * 11))[0] == "ValidationException"
    # A retired or revoked grant's token never works again, on any operation that takes tokens.
    admin_kms.revoke_grant(KeyId=other_arn, GrantId=other["GrantId"])
    assert error_of(lambda: create([token, other["GrantToken"]])) == INVALID_TOKEN
    admin_kms.revoke_grant(KeyId=arn, GrantId=grant["GrantId"])
    assert error_of(lambda: create([token])) == INVALID_TOKEN
    assert error_of(lambda: admin_kms.retire_grant(GrantToken=token)) == INVALID_TOKEN


def test_who_may_retire(
    admin_kms: Any,
    key_arn: Callable[..., str],
    make_user: Callable[..., Persona],
    partner: Callable[..., Persona],
    kms_client: Any,
) -> None:
    arn = key_arn()
    grantee, retirer = make_user("grantee"), make_user("retirer")
    iam_retirer = make_user("iam-retirer", identity_policy("kms:RetireGrant"))
    nobody = make_user("nobody")

    def grant(**params: Any) -> dict[str, Any]:
        return admin_kms.create_grant(KeyId=arn, GranteePrincipal=grantee.arn, Operations=DESCRIBE, **params)

    # The retiring principal, by token or by key and grant id.
    kms_client(retirer).retire_grant(GrantToken=grant(RetiringPrincipal=retirer.arn)["GrantToken"])
    by_id = grant(RetiringPrincipal=retirer.arn)["GrantId"]
    kms_client(retirer).retire_grant(KeyId=arn, GrantId=by_id)
    assert last_event("RetireGrant").decided_by == f"grant {by_id} as its retiring principal"
    # The grantee only if the grant lists RetireGrant.
    plain = grant()
    assert error_of(lambda: kms_client(grantee).retire_grant(GrantToken=plain["GrantToken"]))[0] == DENIED
    retirable = admin_kms.create_grant(KeyId=arn, GranteePrincipal=grantee.arn, Operations=["RetireGrant"])
    kms_client(grantee).retire_grant(KeyId=arn, GrantId=retirable["GrantId"])
    # Principals of the key's account whom IAM allows kms:RetireGrant; anybody else is denied.
    code, message = error_of(lambda: kms_client(nobody).retire_grant(GrantToken=plain["GrantToken"]))
    assert code == DENIED and message == (
        f"User: {nobody.arn} is not authorized to perform: kms:RetireGrant on resource: {arn} because no "
        "identity-based policy allows the kms:RetireGrant action"
    )
    assert "not by key policies" in last_event("RetireGrant").reason
    kms_client(iam_retirer).retire_grant(GrantToken=plain["GrantToken"])
    # An IAM Deny wins even for the retiring principal.
    blocked = make_user("blocked", identity_policy("kms:RetireGrant", effect="Deny"))
    blocked_grant = grant(RetiringPrincipal=blocked.arn)
    assert (
        error_of(lambda: kms_client(blocked).retire_grant(GrantToken=blocked_grant["GrantToken"]))[0]
        == DENIED
    )
    # A retiring principal in another account: a user directly, an account through its IAM.
    bob = partner("bob")
    carol = partner("carol", identity_policy("kms:RetireGrant"))
    dave = partner("dave")
    kms_client(bob).retire_grant(KeyId=arn, GrantId=grant(RetiringPrincipal=bob.arn)["GrantId"])
    to_partner = grant(RetiringPrincipal=PARTNER)["GrantId"]
    assert error_of(lambda: kms_client(dave).retire_grant(KeyId=arn, GrantId=to_partner))[0] == DENIED
    kms_client(carol).retire_grant(KeyId=arn, GrantId=to_partner)
    # A key-policy Allow of kms:RetireGrant has no effect (RetireGrant is decided by the grant).
    named = make_user("named")
    policy_arn = key_arn(Policy=policy(ROOT, allow(named.arn, "kms:RetireGrant", "kms:DescribeKey")))
    unrelated = admin_kms.create_grant(KeyId=policy_arn, GranteePrincipal=grantee.arn, Operations=DESCRIBE)
    assert error_of(lambda: kms_client(named).retire_grant(GrantToken=unrelated["GrantToken"]))[0] == DENIED
    # Unknown grants and malformed requests.
    assert error_of(lambda: admin_kms.retire_grant(KeyId=arn, GrantId="0" * 64)) == (
        "NotFoundException",
        f"Grant ID {'0' * 64} not found",
    )
    assert error_of(lambda: admin_kms.retire_grant(KeyId=arn, GrantId="xyz"))[0] == "InvalidGrantIdException"
    assert error_of(lambda: admin_kms.retire_grant(KeyId=arn))[0] == "ValidationException"
    assert error_of(lambda: admin_kms.retire_grant(GrantToken="garbage")) == INVALID_TOKEN


def test_who_may_revoke(
    admin_kms: Any, key_arn: Callable[..., str], make_user: Callable[..., Persona], kms_client: Any
) -> None:
    grantee, key_admin = make_user("grantee"), make_user("key-admin")
    arn = key_arn(Policy=policy(ROOT, allow(key_admin.arn, "kms:Revoke*", sid="Key administrators")))
    grant = admin_kms.create_grant(
        KeyId=arn, GranteePrincipal=grantee.arn, RetiringPrincipal=grantee.arn, Operations=["RetireGrant"]
    )
    # The grant plays no role: its grantee and retiring principal may retire it, not revoke it.
    code, message = error_of(lambda: kms_client(grantee).revoke_grant(KeyId=arn, GrantId=grant["GrantId"]))
    assert code == DENIED and "kms:RevokeGrant" in message
    kms_client(key_admin).revoke_grant(KeyId=arn, GrantId=grant["GrantId"])
    assert last_event("RevokeGrant").decided_by == "statement 'Key administrators' in the key policy"
    assert error_of(lambda: admin_kms.revoke_grant(KeyId=arn, GrantId="nope"))[0] == "InvalidGrantIdException"
    # IAM permissions count where the key policy delegates to IAM (the admin's Allow * on *).
    other = admin_kms.create_grant(KeyId=arn, GranteePrincipal=grantee.arn, Operations=DESCRIBE)
    admin_kms.revoke_grant(KeyId=arn, GrantId=other["GrantId"])
    assert admin_kms.list_grants(KeyId=arn)["Grants"] == []


def test_cross_account_grant_management(
    admin_kms: Any,
    key_arn: Callable[..., str],
    make_user: Callable[..., Persona],
    partner: Callable[..., Persona],
    kms_client: Any,
) -> None:
    partner_access = allow(
        f"arn:aws:iam::{PARTNER}:root", "kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant", sid="Partner"
    )
    arn = key_arn(Policy=policy(ROOT, partner_access))
    operator = partner(
        "operator", identity_policy("kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant", resource=arn)
    )
    worker = partner("worker")
    operator_kms = kms_client(operator)
    created = operator_kms.create_grant(KeyId=arn, GranteePrincipal=worker.arn, Operations=["Encrypt"])
    [entry] = operator_kms.list_grants(KeyId=arn)["Grants"]
    assert entry["IssuingAccount"] == f"arn:aws:iam::{PARTNER}:root" and entry["KeyId"] == arn
    assert kms_client(worker).encrypt(KeyId=arn, Plaintext=b"x")["KeyId"] == arn
    # Only by key ARN.
    key_id = arn.rsplit("/", 1)[1]
    assert error_of(lambda: operator_kms.list_grants(KeyId=key_id))[0] == "NotFoundException"
    operator_kms.revoke_grant(KeyId=arn, GrantId=created["GrantId"])
    assert error_of(lambda: kms_client(worker).encrypt(KeyId=arn, Plaintext=b"x"))[0] == DENIED


def test_a_grant_token_works_on_every_operation_that_takes_one_before_propagation(
    settings: Any,
    admin_kms: Any,
    key_arn: Callable[..., str],
    make_user: Callable[..., Persona],
    kms_client: Any,
) -> None:
    # No worker runs in this test: without a token the grant never takes effect.
    settings.KMS_GRANT_PROPAGATION_SECONDS = 3600
    arn = key_arn()
    app = make_user("app")
    grant = admin_kms.create_grant(KeyId=arn, GranteePrincipal=app.arn, Operations=USE)
    token = [grant["GrantToken"]]
    app_kms = kms_client(app)
    assert error_of(lambda: app_kms.describe_key(KeyId=arn))[0] == DENIED
    assert error_of(lambda: app_kms.encrypt(KeyId=arn, Plaintext=b"x"))[0] == DENIED
    assert app_kms.describe_key(KeyId=arn, GrantTokens=token)["KeyMetadata"]["Arn"] == arn
    blob = app_kms.encrypt(KeyId=arn, Plaintext=b"secret", GrantTokens=token)["CiphertextBlob"]
    assert last_event("Encrypt").decided_by == f"grant {grant['GrantId']}"
    assert app_kms.decrypt(CiphertextBlob=blob, GrantTokens=token)["Plaintext"] == b"secret"
    assert len(app_kms.generate_data_key(KeyId=arn, KeySpec="AES_256", GrantTokens=token)["Plaintext"]) == 32
    # The token allows only what the grant lists.
    assert error_of(lambda: app_kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=arn, GrantTokens=token))[
        0
    ] == (DENIED)
    admin_kms.revoke_grant(KeyId=arn, GrantId=grant["GrantId"])
    assert error_of(lambda: app_kms.encrypt(KeyId=arn, Plaintext=b"x", GrantTokens=token)) == INVALID_TOKEN


def test_a_valid_grant_token_gives_nothing_to_anyone_but_its_grantee(
    settings: Any,
    admin_kms: Any,
    key_arn: Callable[..., str],
    make_user: Callable[..., Persona],
    kms_client: Any,
) -> None:
    """A token (seen in a log, a message, a captured request) is not a bearer credential: the engine uses it only
    to make a pending grant count for the grant's own grantee."""
    settings.KMS_GRANT_PROPAGATION_SECONDS = 3600  # pending: only the token can make the grant count
    arn = key_arn()
    app, thief = make_user("app"), make_user("thief")
    grant = admin_kms.create_grant(KeyId=arn, GranteePrincipal=app.arn, Operations=["Encrypt", "DescribeKey"])
    token = [grant["GrantToken"]]
    assert kms_client(app).describe_key(KeyId=arn, GrantTokens=token)["KeyMetadata"]["Arn"] == arn
    thief_kms = kms_client(thief)
    assert error_of(lambda: thief_kms.encrypt(KeyId=arn, Plaintext=b"x", GrantTokens=token))[0] == DENIED
    assert error_of(lambda: thief_kms.describe_key(KeyId=arn, GrantTokens=token))[0] == DENIED
    event = last_event("DescribeKey")
    assert (event.caller_arn, event.decision) == (thief.arn, "denied")
    # Nor once the grant is in effect.
    settings.KMS_GRANT_PROPAGATION_SECONDS = 0
    live = admin_kms.create_grant(KeyId=arn, GranteePrincipal=app.arn, Operations=["Encrypt"])
    assert kms_client(app).encrypt(KeyId=arn, Plaintext=b"x")["KeyId"] == arn
    tokens = [live["GrantToken"]]
    assert error_of(lambda: thief_kms.encrypt(KeyId=arn, Plaintext=b"x", GrantTokens=tokens))[0] == DENIED
