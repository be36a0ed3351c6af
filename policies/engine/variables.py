"""Policy variables: ``${aws:username}``, ``${aws:PrincipalTag/team}``, ``${aws:userid}``, ... (Version 2012-10-17).

A variable names any single-valued condition key of the request (names are case-insensitive) and may carry a
default, ``${aws:PrincipalTag/team, 'none'}`` (a quote inside the default is written ``''``). ``${*}``, ``${?}``
and ``${$}`` stand for a literal ``*``, ``?`` and ``$``. Substituted text is always literal: a ``*`` in a user
name is not a wildcard. A variable with no value and no default (the key is absent, or multivalued) makes that
one pattern match nothing, so ``Resource`` does not match and a positive condition operator does not match (a
negated one, which needs every pattern not to match, then holds). Text that is not a well-formed variable is
kept as written. In Version 2008-10-17 (or with no Version) nothing is substituted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .matching import LITERAL_QUESTION, LITERAL_STAR, Dialect, Matcher, compile_pattern
from .values import ContextValue, scalar_to_str

_VARIABLE = re.compile(r"\$\{([^{}]*)\}")
_NAME_AND_DEFAULT = re.compile(r"\s*([^\s,'{}$]+)\s*(?:,\s*'((?:[^']|'')*)'\s*)?")
_ESCAPES = {"*": "*", "?": "?", "$": "$"}


@dataclass(frozen=True, slots=True)
class Variable:
    """One ``${key}`` or ``${key, 'default'}``; ``key`` is lower-cased."""

    key: str
    default: str | None


# A template part: policy text (wildcards active) as ``str``, a literal character from an escape as a 1-tuple,
# or a ``Variable``.
TemplatePart = str | tuple[str] | Variable


@dataclass(frozen=True, slots=True)
class Template:
    """A pattern or value containing policy variables, rendered per request."""

    source: str
    parts: tuple[TemplatePart, ...]

    def _resolve(self, variable: Variable, values: Mapping[str, ContextValue]) -> str | None:
        value = values.get(variable.key)
        if value is not None and not isinstance(value, tuple):
            text = scalar_to_str(value)
            if text is not None:
                return text
        return variable.default

    def render_literal(self, values: Mapping[str, ContextValue]) -> str | None:
        """The value with variables substituted (wildcards, if any, are plain characters here)."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, tuple):
                out.append(part[0])
            else:
                text = self._resolve(part, values)
                if text is None:
                    return None
                out.append(text)
        return "".join(out)

    def render_regex(self, values: Mapping[str, ContextValue], dialect: Dialect) -> Matcher | None:
        """A compiled pattern: policy text keeps its wildcards, substituted text is literal."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                if _MARKS.intersection(part):
                    return None
                out.append(part)
            else:
                text = part[0] if isinstance(part, tuple) else self._resolve(part, values)
                if text is None:
                    return None
                out.append(text.replace("*", LITERAL_STAR).replace("?", LITERAL_QUESTION))
        return compile_pattern("".join(out), dialect)


# Substitution happens before the pattern is read (so a substituted ``:`` separates ARN segments), but a
# substituted ``*`` or ``?`` is literal. Policy text holding the markers themselves matches nothing.
_MARKS = frozenset({LITERAL_STAR, LITERAL_QUESTION})


def parse_template(text: str) -> Template | None:
    """A ``Template`` when ``text`` contains at least one well-formed variable or escape, else ``None``."""
    if "${" not in text:
        return None
    parts: list[TemplatePart] = []
    position = 0
    found = False
    for match in _VARIABLE.finditer(text):
        inner = match.group(1)
        part: TemplatePart
        if inner in _ESCAPES:
            part = (_ESCAPES[inner],)
        else:
            named = _NAME_AND_DEFAULT.fullmatch(inner)
            if named is None:
                continue
            default = named.group(2)
            part = Variable(
                key=named.group(1).lower(),
                default=None if default is None else default.replace("''", "'"),
            )
        if match.start() > position:
            parts.append(text[position : match.start()])
        parts.append(part)
        position = match.end()
        found = True
    if not found:
        return None
    if position < len(text):
        parts.append(text[position:])
    return Template(source=text, parts=tuple(parts))
