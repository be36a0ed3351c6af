"""Whether identity policies could allow an action on some resource not named yet: a form about to ask for it.

An alias operation's IAM half is decided on the alias's ARN (spec §9.1), which a create-alias form does not know
until the name is typed. ``identity_may_allow_under(context, identity_policies, prefix=...)`` answers for every
resource starting with ``prefix`` (the account's ``arn:...:alias/``) at once: False only when no request could be
allowed, whatever name it carries. It leans towards True (a form offered that a name then decides), never the
other way:

- The account's root user is allowed (its identity half is implicit); a service principal never is.
- An identity Deny for the action that covers every resource (``Resource: "*"``) and whose conditions hold denies
  every name. A narrower Deny might spare some name, so it is not counted.
- An identity Allow for the action whose conditions hold, and whose ``Resource`` could name the prefix followed
  by some name (``*``, ``NotResource``, a policy variable, or a pattern that matches the prefix and then some
  string of the characters names may have), allows some name.

The conditions are tested on the context's values: the alias half of an alias operation carries none of its own,
so only the request's global keys (principal, address, time, transport) take part, as they would in the request.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .compiled import CompiledStatement
from .context import RequestContext
from .evaluate import IdentityPolicy


def _could_name_under(pattern: str, prefix: str, name_character: re.Pattern[str]) -> bool:
    """Whether `pattern` could match `prefix` followed by some name of `name_character`s (one or more).

    A glob read as an automaton over the pattern's positions: after the prefix, some position must be left from
    which the rest of the pattern spells a name (its literal characters allowed in names; ``*`` and ``?`` take
    one). A ``*`` is taken to cross any character, colons too: where the engine's matching is narrower, this
    only offers more."""
    if "${" in pattern:
        return True  # a policy variable: what it names depends on the caller; not worth guessing

    def closure(states: set[int]) -> set[int]:
        found = set(states)
        for state in sorted(states):
            while state < len(pattern) and pattern[state] == "*":
                state += 1
                found.add(state)
        return found

    states = closure({0})
    for char in prefix:
        moved = set()
        for state in states:
            if state < len(pattern):
                symbol = pattern[state]
                if symbol == "*":
                    moved.add(state)
                elif symbol == "?" or symbol == char:
                    moved.add(state + 1)
        states = closure(moved)
        if not states:
            return False
    return any(
        state < len(pattern)
        and all(symbol in "*?" or name_character.fullmatch(symbol) for symbol in pattern[state:])
        for state in states
    )


def _names_some(statement: CompiledStatement, prefix: str, name_character: re.Pattern[str]) -> bool:
    if statement.any_resource or statement.not_resource:
        return True
    return any(
        _could_name_under(pattern, prefix, name_character) for pattern in statement.source.resource or ()
    )


def identity_may_allow_under(
    context: RequestContext,
    identity_policies: Sequence[IdentityPolicy],
    *,
    prefix: str,
    name_characters: str,
) -> bool:
    """Whether some request like `context` (its caller, action and values) on `prefix` followed by a name of
    `name_characters` (a regular-expression class without its brackets) could be allowed by identity policies
    alone. Same account only, as ``evaluate`` decides account-level actions (``context.resource`` is the
    prefix)."""
    name_character = re.compile(f"[{name_characters}]")
    caller = context.caller
    if not context.same_account or caller.is_service:
        return False
    action, values = context.action_lower, context.lookup
    groups = [
        policy.action_index.get(action) or policy.statements_for(action) for _, policy in identity_policies
    ]
    for denies, _ in groups:
        if any(statement.any_resource and statement.conditions_match(values) for statement in denies):
            return False
    if caller.is_root:
        return True
    return any(
        statement.conditions_match(values) and _names_some(statement, prefix, name_character)
        for _, allows in groups
        for statement in allows
    )
