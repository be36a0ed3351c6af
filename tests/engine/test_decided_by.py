"""What a decision names as "decided by" (the audit trail's): what decided the outcome, never an Allow that did not
count. A statement or grant it names decided only allows, or only refusals."""

from __future__ import annotations

import pytest

from policies.engine import (
    MISSING_ALLOW_LABELS,
    Caller,
    Decision,
    Grant,
    GrantConstraints,
    GrantIndex,
    IdentityPolicy,
    evaluate,
)

from .helpers import (
    ACCOUNT,
    ALICE,
    ALICE_ARN,
    BOB,
    BOB_ARN,
    CAROL,
    KEY_ARN,
    OTHER,
    OTHER_ROOT_ARN,
    ROOT,
    ROOT_ARN,
    ROOT_STATEMENT,
    allow,
    aws,
    context,
    deny,
    identity_policy,
    key_policy,
)

USE = allow(principal=aws(ALICE_ARN), action="kms:Encrypt", sid="AliceUses")
KMS = IdentityPolicy("kms", identity_policy(allow(action="kms:*", resource="*", sid="CarolKms")))
NO_ENCRYPT = IdentityPolicy(
    "guard", identity_policy(deny(action="kms:Encrypt", resource="*", sid="NoEncrypt"))
)
GRANT_ID = "ab" * 32


def test_an_allow_names_the_statement_that_allowed() -> None:
    decision = evaluate(context(ALICE), key_policy=key_policy(USE))
    assert decision.allowed
    assert decision.decided_by() == "statement 'AliceUses' in the key policy"
    delegated = evaluate(context(BOB), key_policy=key_policy(ROOT_STATEMENT), identity_policies=[KMS])
    assert delegated.allowed
    assert delegated.decided_by() == "statement 'CarolKms' in the identity policy 'kms'"


def test_an_allow_by_a_grant_names_the_grant() -> None:
    grant = Grant(GRANT_ID, KEY_ARN, ALICE_ARN, frozenset({"Encrypt"}))
    decision = evaluate(context(ALICE), key_policy=key_policy(ROOT_STATEMENT), grants=GrantIndex([grant]))
    assert decision.allowed
    assert decision.decided_by() == f"grant {GRANT_ID}"


def test_an_identity_allow_the_key_policy_does_not_delegate_to_is_not_named() -> None:
    # The auditor's carol: her identity policy allows, but the key policy allows only alice, not carol's account.
    decision = evaluate(context(CAROL), key_policy=key_policy(USE), identity_policies=[KMS])
    assert not decision.allowed
    assert decision.decided_by() == "missing: a key-policy allow for the caller's account"
    assert "CarolKms" not in decision.decided_by()
    assert "'kms' did not count" in decision.explanation()  # the reason still says which did not count


def test_a_key_policy_delegation_no_identity_policy_used_is_not_named() -> None:
    decision = evaluate(
        context(CAROL), key_policy=key_policy(allow(principal=aws(OTHER_ROOT_ARN), sid="Delegate"))
    )
    assert not decision.allowed
    assert decision.decided_by() == "missing: an identity-policy allow"


def test_an_explicit_deny_in_the_key_policy_is_named() -> None:
    policy = key_policy(USE, deny(principal=aws(ALICE_ARN), action="kms:Encrypt", sid="NoAlice"))
    decision = evaluate(context(ALICE), key_policy=policy)
    assert not decision.allowed
    assert decision.decided_by() == "statement 'NoAlice' in the key policy"


def test_an_explicit_deny_in_an_identity_policy_is_named() -> None:
    decision = evaluate(context(ALICE), key_policy=key_policy(USE), identity_policies=[NO_ENCRYPT])
    assert not decision.allowed
    assert decision.decided_by() == "statement 'NoEncrypt' in the identity policy 'guard'"


def test_nothing_at_all_names_what_was_missing() -> None:
    decision = evaluate(context(BOB), key_policy=key_policy(USE))
    assert decision.decided_by() == "missing: an allow in the key policy, or a grant"


@pytest.mark.parametrize(
    ("effective", "constraint", "missing"),
    [
        (False, None, "missing: a grant in effect"),
        (True, {"a": "b"}, "missing: a grant whose constraints the request meets"),
    ],
)
def test_a_grant_that_did_not_count_is_not_named(
    effective: bool, constraint: dict[str, str] | None, missing: str
) -> None:
    constraints = GrantConstraints(encryption_context_equals=constraint) if constraint else None
    grant = Grant(GRANT_ID, KEY_ARN, BOB_ARN, frozenset({"Encrypt"}), constraints, effective=effective)
    decision = evaluate(context(BOB), key_policy=key_policy(USE), grants=GrantIndex([grant]))
    assert not decision.allowed
    assert decision.decided_by() == missing
    assert GRANT_ID in decision.explanation()


# kms:RetireGrant is decided under the service's stand-in key policy for the accounts' IAM (grants.services.removal):
# its statement is no statement of the key's, and is never named.
STAND_IN = key_policy(
    allow(
        principal=aws(ROOT_ARN, OTHER_ROOT_ARN), action="kms:RetireGrant", sid="RetireGrantIsDelegatedToIAM"
    )
)
RETIRE = IdentityPolicy(
    "retire", identity_policy(allow(action="kms:RetireGrant", resource="*", sid="MayRetire"))
)


def _retire(caller: object, policies: list[IdentityPolicy]) -> Decision:
    return evaluate(
        context(caller, "kms:RetireGrant", resource_account=ACCOUNT),  # type: ignore[arg-type]
        key_policy=STAND_IN,
        identity_policies=policies,
    )


def test_a_refused_retire_grant_names_the_missing_identity_allow_not_the_stand_in() -> None:
    decision = _retire(BOB, [])
    assert not decision.allowed
    assert decision.decided_by() == "missing: an identity-policy allow"
    assert "RetireGrantIsDelegatedToIAM" not in decision.explanation()


def test_a_third_accounts_identity_allow_of_retire_grant_names_no_key_policy() -> None:
    """A principal of neither the key's nor the grant's account: its identity allow cannot count, and no key policy
    could make it (kms:RetireGrant), so neither "decided by" nor the reason point at the key policy."""
    erin = Caller.user("arn:aws:iam::777788889999:user/erin", userid="AIDAERIN")
    decision = _retire(erin, [RETIRE])
    assert not decision.allowed
    assert decision.decided_by() == "missing: an identity-policy allow"
    assert decision.explanation() == (
        "denied: kms:RetireGrant is allowed by the grant itself (to its retiring principal, or to its grantee when "
        "it lists RetireGrant) or by an identity policy of the key's or the grant's account, not by key policies; "
        "account 777788889999 is neither, so the identity policy 'retire' did not count"
    )
    # On a key, the same identity allow is missing what the key policy does decide.
    elsewhere = evaluate(
        context(erin, resource_account=ACCOUNT), key_policy=key_policy(USE), identity_policies=[KMS]
    )
    assert elsewhere.decided_by() == "missing: a key-policy allow for the caller's account"


@pytest.mark.parametrize("caller", [BOB, CAROL], ids=["same account", "the grant's issuing account"])
def test_an_allowed_retire_grant_names_the_identity_statement(caller: object) -> None:
    decision = _retire(caller, [RETIRE])
    assert decision.allowed
    assert decision.decided_by() == "statement 'MayRetire' in the identity policy 'retire'"
    assert "RetireGrantIsDelegatedToIAM" not in decision.explanation()
    assert decision.explanation().startswith(
        "allowed by statement 'MayRetire' in the identity policy 'retire'"
    )


def test_an_allowed_retire_grant_by_the_root_user_names_nothing() -> None:
    decision = _retire(ROOT, [])
    assert decision.allowed
    assert decision.decided_by() == ""
    assert decision.explanation().startswith(f"allowed: the caller is the root user of account {ACCOUNT}")
    assert "RetireGrantIsDelegatedToIAM" not in decision.explanation()


def test_the_missing_labels_name_nothing_and_are_told_apart() -> None:
    assert len(set(MISSING_ALLOW_LABELS)) == len(MISSING_ALLOW_LABELS)
    for label in MISSING_ALLOW_LABELS:
        assert label.startswith("missing: ")
        assert not label.startswith(("statement ", "grant "))
    assert OTHER not in " ".join(MISSING_ALLOW_LABELS)
