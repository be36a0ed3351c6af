"""The rules principal ARNs follow, which the service holds new accounts and principals to: a 12-digit account id
of ASCII digits, and an IAM path the engine reads back from the principal's ARN exactly as it was stored."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.engine import PrincipalKind, is_account_id, is_iam_path, parse_principal_arn

ACCOUNT = "111122223333"
# 444455556667 in full-width digits, which str.isdigit() and a Unicode \d take for digits.
FULL_WIDTH_ACCOUNT = "\uff14\uff14\uff14\uff14\uff15\uff15\uff15\uff15\uff16\uff16\uff16\uff17"

PATHS = [
    ("/", True),
    ("/a/", True),
    ("/division_abc/subdivision_xyz/", True),
    ("/a-b.c@d+e=f,g!h#$%&'()~/", True),
    ("/a//b/", False),  # an empty segment
    ("//", False),
    ("/a*/", False),  # "*" and "?" would be wildcards in a policy naming the ARN
    ("/a?/", False),
    ("", False),
    ("a/", False),
    ("/a", False),
    ("/a b/", False),  # printable ASCII only: no space, control character or non-ASCII letter
    ("/a\x00/", False),
    ("/a/\n", False),
    ("/é/", False),
]


@pytest.mark.parametrize(("path", "valid"), PATHS)
def test_iam_path(path: str, valid: bool) -> None:
    assert is_iam_path(path) is valid


@pytest.mark.parametrize("kind", ["user", "role", "group"])
@pytest.mark.parametrize(("path", "valid"), PATHS)
def test_a_principal_arn_parses_exactly_when_its_path_is_valid(kind: str, path: str, valid: bool) -> None:
    parsed = parse_principal_arn(f"arn:aws:iam::{ACCOUNT}:{kind}{path}alice")
    assert (parsed is not None and parsed.path == path) is valid


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x80), max_size=12))
def test_the_path_rule_is_the_one_principal_arns_are_read_with(segment: str) -> None:
    for path in (f"/{segment}/", f"/{segment}/x/"):
        parsed = parse_principal_arn(f"arn:aws:iam::{ACCOUNT}:user{path}alice")
        assert is_iam_path(path) is (parsed is not None and parsed.path == path)


@pytest.mark.parametrize(
    "account_id",
    [
        FULL_WIDTH_ACCOUNT,
        "٤٤٤٤٥٥٥٥٦٦٦٧",  # Arabic-Indic digits
        "11112222333\uff13",  # one full-width digit
        "11112222333",
        "1111222233334",
        "11112222333a",
    ],
)
def test_an_account_id_is_twelve_ascii_digits(account_id: str) -> None:
    assert not is_account_id(account_id)
    assert parse_principal_arn(account_id) is None
    for arn in (
        f"arn:aws:iam::{account_id}:root",
        f"arn:aws:iam::{account_id}:user/alice",
        f"arn:aws:sts::{account_id}:assumed-role/app/s1",
        f"arn:aws:sts::{account_id}:federated-user/bob",
    ):
        assert parse_principal_arn(arn) is None


def test_a_twelve_digit_account_id() -> None:
    assert is_account_id(ACCOUNT)
    parsed = parse_principal_arn(f"arn:aws:iam::{ACCOUNT}:root")
    assert parsed is not None and (parsed.kind, parsed.account_id) == (PrincipalKind.ACCOUNT, ACCOUNT)
