"""Wildcard matching for actions, resources, strings and ARNs, compiled once per policy.

Three dialects, all with ``*`` (any run of characters, possibly empty) and ``?`` (one character):

* **glob** (actions, ``StringLike``): the wildcards match any character. Actions are matched case-insensitively
  by lower-casing both sides, which the caller does.
* **resource ARNs** (``Resource``/``NotResource``): IAM's rule that a wildcard stays inside one colon-separated
  segment, except a ``*`` that ends a segment, which may run on across colons. Case-sensitive.
* **ArnLike/ArnEquals** (conditions): both ARNs are split into their six colon-separated components, compared
  component by component; the last component (the resource) may contain colons. Case-sensitive.

A ``GlobSet`` answers "does any of these patterns match?" with a set lookup for plain strings and one combined
regular expression for the patterns with wildcards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache


class Dialect(Enum):
    """How ``*`` and ``?`` behave around colons."""

    GLOB = "glob"
    RESOURCE_ARN = "resource-arn"
    ARN_LIKE = "arn-like"


def has_wildcard(pattern: str) -> bool:
    """Whether the pattern contains ``*`` or ``?``."""
    return "*" in pattern or "?" in pattern


def _glob_regex(pattern: str) -> str:
    out: list[str] = []
    for char in pattern:
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        else:
            out.append(re.escape(char))
    return "".join(out)


def _resource_arn_regex(pattern: str) -> str:
    out: list[str] = []
    last = len(pattern) - 1
    for position, char in enumerate(pattern):
        if char == "*":
            ends_segment = position == last or pattern[position + 1] == ":"
            out.append(".*" if ends_segment else "[^:]*")
        elif char == "?":
            out.append("[^:]")
        else:
            out.append(re.escape(char))
    return "".join(out)


_ARN_ANY = r"[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:.*"


def _arn_like_regex(pattern: str) -> str | None:
    if pattern == "*":
        return _ARN_ANY
    parts = pattern.split(":", 5)
    if len(parts) < 6:
        return None
    regexes: list[str] = []
    for index, part in enumerate(parts):
        final = index == 5
        out: list[str] = []
        for char in part:
            if char == "*":
                out.append(".*" if final else "[^:]*")
            elif char == "?":
                out.append("." if final else "[^:]")
            else:
                out.append(re.escape(char))
        regexes.append("".join(out))
    return ":".join(regexes)


def pattern_regex(pattern: str, dialect: Dialect) -> str | None:
    """The regular-expression source for one pattern (``None``: the pattern can match nothing)."""
    if dialect is Dialect.GLOB:
        return _glob_regex(pattern)
    if dialect is Dialect.RESOURCE_ARN:
        return _resource_arn_regex(pattern)
    return _arn_like_regex(pattern)


@lru_cache(maxsize=4096)
def compile_regex(source: str) -> re.Pattern[str]:
    """Compile (and remember) an anchored-by-fullmatch regular expression."""
    return re.compile(source, re.DOTALL)


@dataclass(frozen=True, slots=True)
class GlobSet:
    """A compiled set of patterns of one dialect; ``matches(s)`` is true when any pattern matches ``s``."""

    match_all: bool
    exact: frozenset[str]
    regex: re.Pattern[str] | None

    def matches(self, value: str) -> bool:
        if self.match_all or value in self.exact:
            return True
        regex = self.regex
        return regex is not None and regex.fullmatch(value) is not None

    @property
    def empty(self) -> bool:
        return not self.match_all and not self.exact and self.regex is None


def compile_glob_set(patterns: Iterable[str], dialect: Dialect = Dialect.GLOB) -> GlobSet:
    """Compile patterns into one ``GlobSet`` (plain strings go to a set, the rest to one regex)."""
    exact: set[str] = set()
    regexes: list[str] = []
    match_all = False
    for pattern in patterns:
        if pattern == "*" and dialect is not Dialect.ARN_LIKE:
            match_all = True
        elif has_wildcard(pattern) or dialect is Dialect.ARN_LIKE:
            source = pattern_regex(pattern, dialect)
            if source is not None:
                regexes.append(source)
        else:
            exact.add(pattern)
    regex = None
    if regexes and not match_all:
        regex = compile_regex("|".join(f"(?:{source})" for source in regexes))
    return GlobSet(match_all=match_all, exact=frozenset(() if match_all else exact), regex=regex)
