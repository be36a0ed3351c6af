"""Wildcard matching for actions, resources, strings and ARNs, compiled once per policy.

Three dialects, all with ``*`` (any run of characters, possibly empty) and ``?`` (one character):

* **glob** (actions, ``StringLike``): the wildcards match any character. Actions are matched case-insensitively
  by lower-casing both sides, which the caller does.
* **resource ARNs** (``Resource``/``NotResource``): IAM's rule that a wildcard stays inside one colon-separated
  segment, except a ``*`` that ends a segment, which may run on across colons. Case-sensitive.
* **ArnLike/ArnEquals** (conditions): both ARNs are split into their six colon-separated components, compared
  component by component; the last component (the resource) may contain colons. Case-sensitive.

A ``GlobSet`` answers "does any of these patterns match?" with a set lookup for plain strings, one
``str.startswith`` for ``prefix*`` patterns, and one combined regular expression for the other wildcard patterns.
Patterns with more than two free-running ``*`` would make a backtracking regex take polynomial time of high degree
(``*a*a*a*a*b`` against a long value), so those run on a small bit-parallel NFA instead, linear in the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Protocol


class Dialect(Enum):
    """How ``*`` and ``?`` behave around colons."""

    GLOB = "glob"
    RESOURCE_ARN = "resource-arn"
    ARN_LIKE = "arn-like"


# Substituted policy-variable text marks its own * and ? with these so they stay literal (see variables.py).
LITERAL_STAR = "\ue000"
LITERAL_QUESTION = "\ue001"
_LITERALS = {LITERAL_STAR: "*", LITERAL_QUESTION: "?"}

# Pattern tokens: a literal character (str), or one of these wildcard kinds.
STAR_ANY, STAR_SEGMENT, ONE_ANY, ONE_SEGMENT = 0, 1, 2, 3
Token = str | int
_MAX_BACKTRACKING_STARS = 2


def has_wildcard(pattern: str) -> bool:
    """Whether the pattern contains ``*`` or ``?``."""
    return "*" in pattern or "?" in pattern


def _plain(char: str) -> str:
    return _LITERALS.get(char, char)


def _glob_tokens(pattern: str, star: int, one: int) -> list[Token]:
    return [star if char == "*" else one if char == "?" else _plain(char) for char in pattern]


def _resource_tokens(pattern: str) -> list[Token]:
    tokens: list[Token] = []
    last = len(pattern) - 1
    for position, char in enumerate(pattern):
        if char == "*":
            ends_segment = position == last or pattern[position + 1] == ":"
            tokens.append(STAR_ANY if ends_segment else STAR_SEGMENT)
        elif char == "?":
            tokens.append(ONE_SEGMENT)
        else:
            tokens.append(_plain(char))
    return tokens


def _arn_like_tokens(pattern: str) -> list[Token] | None:
    if pattern == "*":
        pattern = "*:*:*:*:*:*"
    parts = pattern.split(":", 5)
    if len(parts) < 6:
        return None
    tokens: list[Token] = []
    for index, part in enumerate(parts):
        if index:
            tokens.append(":")
        if index < 5:
            tokens += _glob_tokens(part, STAR_SEGMENT, ONE_SEGMENT)
        else:
            tokens += _glob_tokens(part, STAR_ANY, ONE_ANY)
    return tokens


def pattern_tokens(pattern: str, dialect: Dialect) -> list[Token] | None:
    """The pattern as tokens (``None``: it can match nothing, e.g. an ArnLike pattern with too few parts)."""
    if dialect is Dialect.GLOB:
        tokens: list[Token] | None = _glob_tokens(pattern, STAR_ANY, ONE_ANY)
    elif dialect is Dialect.RESOURCE_ARN:
        tokens = _resource_tokens(pattern)
    else:
        tokens = _arn_like_tokens(pattern)
    if tokens is None:
        return None
    collapsed: list[Token] = []
    for token in tokens:  # "**" is "*"; a star that cannot cross colons next to one that can is redundant
        if collapsed and token in (STAR_ANY, STAR_SEGMENT) and collapsed[-1] in (STAR_ANY, STAR_SEGMENT):
            collapsed[-1] = STAR_ANY if STAR_ANY in (token, collapsed[-1]) else STAR_SEGMENT
            continue
        collapsed.append(token)
    return collapsed


_REGEX = {STAR_ANY: ".*", STAR_SEGMENT: "[^:]*", ONE_ANY: ".", ONE_SEGMENT: "[^:]"}


def _regex_source(tokens: list[Token]) -> str:
    return "".join(re.escape(token) if isinstance(token, str) else _REGEX[token] for token in tokens)


def _backtracking_stars(tokens: list[Token]) -> int:
    """Stars a regex engine may have to re-split; a colon-bound star right before a ':' cannot move."""
    count = 0
    for index, token in enumerate(tokens):
        if token == STAR_ANY:
            count += 1
        elif token == STAR_SEGMENT:
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            if following != ":":
                count += 1
    return count


class Matcher(Protocol):
    def fullmatch(self, text: str, /) -> object: ...


class WildcardNfa:
    """Thompson-style matcher over token positions as bits of an int: no backtracking, O(len(text))."""

    __slots__ = ("_accept", "_any_one", "_literal", "_seg_one", "_seg_star", "_star", "_start")

    def __init__(self, tokens: list[Token]) -> None:
        literal: dict[str, int] = {}
        star = seg_star = any_one = seg_one = 0
        for position, token in enumerate(tokens):
            bit = 1 << position
            if isinstance(token, str):
                literal[token] = literal.get(token, 0) | bit
            elif token == STAR_ANY:
                star |= bit
            elif token == STAR_SEGMENT:
                seg_star |= bit
            elif token == ONE_ANY:
                any_one |= bit
            else:
                seg_one |= bit
        self._literal, self._star, self._seg_star = literal, star, seg_star
        self._any_one, self._seg_one = any_one, seg_one
        self._accept = 1 << len(tokens)
        self._start = self._close(1)

    def _close(self, states: int) -> int:
        # A star may match nothing: being at a star also means being just after it (stars never repeat).
        return states | ((states & (self._star | self._seg_star)) << 1)

    def fullmatch(self, text: str, /) -> bool | None:
        states = self._start
        literal, star, seg_star, any_one, seg_one = (
            self._literal,
            self._star,
            self._seg_star,
            self._any_one,
            self._seg_one,
        )
        for char in text:
            colon = char == ":"
            stay = states & (star if colon else star | seg_star)
            step = states & (literal.get(char, 0) | (any_one if colon else any_one | seg_one))
            states = self._close(stay | (step << 1))
            if not states:
                return None
        return True if states & self._accept else None


def compile_pattern(pattern: str, dialect: Dialect) -> Matcher | None:
    """A matcher with ``fullmatch(text)`` (truthy on a match) for one pattern, or ``None`` if it matches nothing."""
    tokens = pattern_tokens(pattern, dialect)
    if tokens is None:
        return None
    return _compile_tokens(tuple(tokens))


@lru_cache(maxsize=4096)
def _compile_tokens(tokens: tuple[Token, ...]) -> Matcher:
    listed = list(tokens)
    if _backtracking_stars(listed) > _MAX_BACKTRACKING_STARS:
        return WildcardNfa(listed)
    return compile_regex(_regex_source(listed))


@lru_cache(maxsize=4096)
def compile_regex(source: str) -> re.Pattern[str]:
    """Compile (and remember) a regular expression used with ``fullmatch``."""
    return re.compile(source, re.DOTALL)


@dataclass(frozen=True, slots=True)
class GlobSet:
    """A compiled set of patterns of one dialect; ``matches(s)`` is true when any pattern matches ``s``."""

    match_all: bool
    exact: frozenset[str]
    prefixes: tuple[str, ...]
    regex: re.Pattern[str] | None
    others: tuple[Matcher, ...] = ()

    def matches(self, value: str) -> bool:
        if self.match_all or value in self.exact:
            return True
        if self.prefixes and value.startswith(self.prefixes):
            return True
        regex = self.regex
        if regex is not None and regex.fullmatch(value) is not None:
            return True
        return any(matcher.fullmatch(value) for matcher in self.others)

    @property
    def empty(self) -> bool:
        return not (self.match_all or self.exact or self.prefixes or self.regex or self.others)


def compile_glob_set(patterns: Iterable[str], dialect: Dialect = Dialect.GLOB) -> GlobSet:
    """Compile patterns into one ``GlobSet`` (plain strings to a set, ``prefix*`` to startswith, the rest to one
    regex, and patterns unsafe for a backtracking regex to NFAs)."""
    exact: set[str] = set()
    prefixes: list[str] = []
    regexes: list[str] = []
    others: list[Matcher] = []
    for pattern in patterns:
        if pattern == "*" and dialect is not Dialect.ARN_LIKE:
            return GlobSet(match_all=True, exact=frozenset(), prefixes=(), regex=None)
        if dialect is not Dialect.ARN_LIKE and not has_wildcard(pattern):
            exact.add(pattern)
        elif dialect is not Dialect.ARN_LIKE and pattern.endswith("*") and not has_wildcard(pattern[:-1]):
            # "prefix*": a trailing * matches anything in both dialects (it may cross colons in an ARN).
            prefixes.append(pattern[:-1])
        else:
            tokens = pattern_tokens(pattern, dialect)
            if tokens is None:
                continue
            if _backtracking_stars(tokens) > _MAX_BACKTRACKING_STARS:
                others.append(WildcardNfa(tokens))
            else:
                regexes.append(_regex_source(tokens))
    regex = compile_regex("|".join(f"(?:{source})" for source in regexes)) if regexes else None
    return GlobSet(
        match_all=False, exact=frozenset(exact), prefixes=tuple(prefixes), regex=regex, others=tuple(others)
    )
