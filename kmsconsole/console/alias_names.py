"""An alias name the service refuses, in the console's words: the Aliases tab (after CreateAlias refused it, so the
event is recorded as the service answered) and the create-key wizard (checking its alias field) say the same.

The KMS endpoint answers with AWS's own messages ("1 validation error detected: Value ... at 'aliasName' ..."),
which name a regular expression a person should not have to read; the rules themselves are the service's
(`keys.services.aliases.check_alias_name`, `ALIAS_NAME_CHARACTERS`)."""

from __future__ import annotations

import re

from keys.services import aliases
from kmsconsole.core import errors

# What a person may type after "alias/" (`aliases.ALIAS_NAME_CHARACTERS`), said in words.
ALLOWED_CHARACTERS = "letters, digits, /, _ and -"
_DISALLOWED = re.compile(f"[^{aliases.ALIAS_NAME_CHARACTERS}]")
TOO_LONG = f"An alias name has at most {aliases.ALIAS_NAME_MAX_LENGTH} characters."
# The codes with which `check_alias_name` refuses a name.
_NAME_REFUSALS = ("ValidationException", "InvalidAliasNameException")


def alias_name_problem(name: str) -> str:
    """Why `check_alias_name` refuses `name`, in plain words ("" when it does not)."""
    try:
        aliases.check_alias_name(name)
    except errors.KmsError:
        pass
    else:
        return ""
    problems: list[str] = []
    if not name.startswith(aliases.ALIAS_PREFIX):
        problems.append(f'An alias name starts with "{aliases.ALIAS_PREFIX}".')
    elif name.startswith(aliases.RESERVED_PREFIX):
        problems.append(f'Names starting with "{aliases.RESERVED_PREFIX}" are reserved for AWS managed keys.')
    elif name == aliases.ALIAS_PREFIX:
        problems.append(f'Write a name after "{aliases.ALIAS_PREFIX}".')
    wrong = sorted(set(_DISALLOWED.findall(name)))
    if wrong:
        shown = ", ".join("spaces" if char == " " else f'"{char}"' for char in wrong[:10])
        problems.append(f"An alias name may contain only {ALLOWED_CHARACTERS}, not {shown}.")
    if len(name) > aliases.ALIAS_NAME_MAX_LENGTH:
        problems.append(TOO_LONG)
    return " ".join(problems) or "This alias name is not allowed."


def refused_alias_name(code: str, name: str) -> str:
    """The console's words for a refusal with AWS code `code` of an alias change naming `name`, when it was the
    name that was refused ("" otherwise: the service's message stands)."""
    return alias_name_problem(name) if code in _NAME_REFUSALS else ""
