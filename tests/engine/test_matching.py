"""The three wildcard dialects and principal ARN parsing."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.engine import Caller, PrincipalKind, parse_principal_arn
from policies.engine.matching import Dialect, WildcardNfa, _regex_source, compile_glob_set, pattern_tokens
from policies.engine.principals import ACCOUNT, DIRECT, PrincipalSet

from .steps import line_events

GLOB = [
    ("*", "anything", True),
    ("kms:*", "kms:encrypt", True),
    ("kms:get*", "kms:getkeypolicy", True),
    ("kms:get*", "kms:generatedatakey", False),
    ("kms:re*crypt*", "kms:reencryptfrom", True),
    ("kms:encryp?", "kms:encrypt", True),
    ("kms:encryp?", "kms:encrypts", False),
    ("a.b", "aXb", False),
    ("a+b", "a+b", True),
    ("line*", "line1\nline2", True),
]
RESOURCE = [
    ("*", "arn:aws:kms:us-east-1:1:key/k", True),
    ("arn:aws:kms:*:1:key/*", "arn:aws:kms:us-east-1:1:key/k", True),
    ("arn:aws:kms:us-east-1:*", "arn:aws:kms:us-east-1:1:key/k", True),
    ("arn:aws:kms:u*1:key/*", "arn:aws:kms:us-east-1:1:key/k", False),
    ("arn:aws:kms:us-?ast-1:1:key/k", "arn:aws:kms:us-east-1:1:key/k", True),
    ("arn:aws:kms:us-east-1:1:key/K", "arn:aws:kms:us-east-1:1:key/k", False),
    ("arn:aws:kms:us-east-1:1:key/k", "arn:aws:kms:us-east-1:1:key/k", True),
    ("arn:aws:kms:us-east-1:1:alias/*", "arn:aws:kms:us-east-1:1:key/k", False),
]
ARN_LIKE = [
    ("arn:aws:iam::*:role/x", "arn:aws:iam::111122223333:role/x", True),
    ("arn:aws:iam::*:role/*", "arn:aws:iam::111122223333:role/path/x", True),
    ("arn:aws:*:role/x", "arn:aws:iam::1:role/x", False),
    ("arn:aws:iam::1:role/x", "arn:aws:iam::1:role/x", True),
    ("arn:aws:iam::1:role/x", "arn:aws:iam::1:role/X", False),
    ("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a:b:c", True),
    ("*", "arn:aws:s3:::bucket", True),
    ("*", "not-an-arn", False),
    ("arn:aws:iam::1:role/x", "arn:aws:iam::1", False),
]


@pytest.mark.parametrize(("pattern", "value", "expected"), GLOB)
def test_glob(pattern: str, value: str, expected: bool) -> None:
    assert compile_glob_set([pattern]).matches(value) is expected


@pytest.mark.parametrize(("pattern", "value", "expected"), RESOURCE)
def test_resource_arn(pattern: str, value: str, expected: bool) -> None:
    assert compile_glob_set([pattern], Dialect.RESOURCE_ARN).matches(value) is expected


@pytest.mark.parametrize(("pattern", "value", "expected"), ARN_LIKE)
def test_arn_like(pattern: str, value: str, expected: bool) -> None:
    assert compile_glob_set([pattern], Dialect.ARN_LIKE).matches(value) is expected


def test_glob_set_combines_patterns() -> None:
    patterns = compile_glob_set(["kms:encrypt", "kms:get*", "kms:re*crypt*"])
    assert patterns.exact == frozenset({"kms:encrypt"})
    assert patterns.prefixes == ("kms:get",)
    assert patterns.regex is not None
    assert not compile_glob_set([]).matches("x")
    assert compile_glob_set([]).empty


PARSED = [
    ("111122223333", PrincipalKind.ACCOUNT, "111122223333", ""),
    ("arn:aws:iam::111122223333:root", PrincipalKind.ACCOUNT, "111122223333", ""),
    ("arn:aws:iam::111122223333:user/a/b/alice", PrincipalKind.USER, "111122223333", "alice"),
    ("arn:aws:iam::111122223333:role/app", PrincipalKind.ROLE, "111122223333", "app"),
    ("arn:aws:iam::111122223333:group/g", PrincipalKind.GROUP, "111122223333", "g"),
    ("arn:aws:sts::111122223333:assumed-role/app/s1", PrincipalKind.ASSUMED_ROLE, "111122223333", "app"),
    ("arn:aws:sts::111122223333:federated-user/bob", PrincipalKind.FEDERATED_USER, "111122223333", "bob"),
    ("arn:aws:iam::111122223333:saml-provider/okta", PrincipalKind.SAML_PROVIDER, "111122223333", "okta"),
]


@pytest.mark.parametrize(("arn", "kind", "account", "name"), PARSED)
def test_parse_principal_arn(arn: str, kind: PrincipalKind, account: str, name: str) -> None:
    parsed = parse_principal_arn(arn)
    assert parsed is not None
    assert (parsed.kind, parsed.account_id, parsed.name) == (kind, account, name)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "alice",
        "arn:aws:iam::1:user/a",
        "arn:aws:iam::111122223333:user/*",
        "arn:aws:s3:::bucket",
        "arn:aws:iam::111122223333:root/x",
    ],
)
def test_parse_principal_arn_rejects(text: str) -> None:
    assert parse_principal_arn(text) is None


def test_parsed_path() -> None:
    parsed = parse_principal_arn("arn:aws:iam::111122223333:user/a/b/alice")
    assert parsed is not None and parsed.path == "/a/b/"


def test_caller_constructors() -> None:
    assert Caller.from_arn("arn:aws:iam::111122223333:root").is_root
    user = Caller.from_arn("arn:aws:iam::111122223333:user/x/alice")
    assert user.username == "alice" and user.account_arn == "arn:aws:iam::111122223333:root"
    session = Caller.from_arn("arn:aws:sts::111122223333:assumed-role/app/s1")
    assert session.role_arn == "arn:aws:iam::111122223333:role/app"
    assert session.grant_keys == (session.arn, session.role_arn, session.account_arn)
    assert Caller.from_arn("arn:aws:sts::111122223333:federated-user/f").userid == "111122223333:f"
    with pytest.raises(ValueError, match="cannot make requests"):
        Caller.from_arn("arn:aws:iam::111122223333:role/app")
    with pytest.raises(ValueError, match="not a caller ARN"):
        Caller.from_arn("nope")
    with pytest.raises(ValueError, match="not a user ARN"):
        Caller.user("arn:aws:iam::111122223333:role/app")


def test_principal_set_bits() -> None:
    alice = Caller.user("arn:aws:iam::111122223333:user/alice")
    assert PrincipalSet.build(everyone=False, aws=["111122223333"]).match(alice) == ACCOUNT
    assert PrincipalSet.build(everyone=False, aws=[alice.arn]).match(alice) == DIRECT
    assert PrincipalSet.build(everyone=False, aws=["*"]).match(alice) == DIRECT | ACCOUNT
    assert PrincipalSet.build(everyone=False, aws=[alice.arn]).not_match(alice) == ACCOUNT
    assert PrincipalSet.build(everyone=True).not_match(alice) == 0


# --- The backtracking-free matcher -------------------------------------------------------------------------------

patterns = st.text(alphabet="ab:*?", max_size=10)
texts = st.text(alphabet="ab:", max_size=12)


@settings(max_examples=300, deadline=None)
@given(patterns, texts, st.sampled_from(list(Dialect)))
def test_nfa_agrees_with_regex(pattern: str, text: str, dialect: Dialect) -> None:
    tokens = pattern_tokens(pattern, dialect)
    if tokens is None:
        return
    regex = re.compile(_regex_source(tokens), re.DOTALL)
    assert bool(WildcardNfa(tokens).fullmatch(text)) is (regex.fullmatch(text) is not None)


# A regression to a backtracking regex would not finish: the timeout turns that hang into a failure. The step
# counts below are the assertions (tests/engine/steps.py): the same on any machine, under any load.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("dialect", list(Dialect))
def test_pathological_patterns_run_in_linear_time(dialect: Dialect) -> None:
    pattern = "arn:aws:kms:*:*:" + "*a" * 12 + "*b" if dialect is not Dialect.GLOB else "*a" * 12 + "*b"
    matcher = compile_glob_set([pattern], dialect)
    assert matcher.others, "pattern should use the NFA"
    matched, short = line_events(lambda: matcher.matches("arn:aws:kms:r:1:" + "a" * 10_000))
    assert not matched
    matched, long = line_events(lambda: matcher.matches("arn:aws:kms:r:1:" + "a" * 20_000))
    assert not matched
    assert short >= 10_000, "the NFA reads the value in Python, a step per character"
    assert long <= 2 * short, "twice the characters, at most twice the steps"


@pytest.mark.timeout(60)
def test_pathological_condition_in_a_decision() -> None:
    from .helpers import ALICE_ARN, NO_KP, Case, allow, aws, check

    def case(length: int) -> Case:
        return Case(
            "redos",
            NO_KP,
            [
                allow(
                    principal=aws(ALICE_ARN),
                    condition={"StringLike": {"kms:EncryptionContext:x": "*a" * 16 + "*b"}},
                )
            ],
            context={"encryption_context": {"x": "a" * length}},
        )

    check(case(1))  # compiles (and caches) the policy: the counts below are the decisions alone
    _, short = line_events(lambda: check(case(5_000)))
    _, long = line_events(lambda: check(case(10_000)))
    assert short >= 5_000, "the condition's value is read in Python, on the NFA"
    assert long <= 2 * short, "twice the characters, at most twice the steps"


def test_pathological_template_uses_the_nfa() -> None:
    from policies.engine.variables import parse_template

    template = parse_template("*a*a*a*a*${aws:username}*b")
    assert template is not None
    matcher = template.render_regex({"aws:username": "u"}, Dialect.GLOB)
    assert isinstance(matcher, WildcardNfa)
    assert matcher.fullmatch("xaaaaub")
    assert not matcher.fullmatch("a" * 5000)
