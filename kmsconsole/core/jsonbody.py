"""What a JSON request body may hold, checked once for every interface that parses one.

Python's decoder accepts more than any request of ours can carry through to the audit trail and the database:
thousands of nested brackets (every layer that walks the body recurses), numbers that overflow to infinity
(`1e400`: PostgreSQL's jsonb refuses them, so the audit write and with it the request would fail), NUL characters
(refused in PostgreSQL text and jsonb) and lone surrogates (`"\\ud800"`: valid Python text, not UTF-8). Each
interface turns the problem found into its own error (SerializationException on the KMS endpoint, a ParseError
on the REST API), before any operation runs.
"""

from __future__ import annotations

import math
from typing import Any

# The deepest request of any interface (a key with tags, a grant with constraints) is a few levels deep.
MAX_JSON_DEPTH = 32


def body_problem(value: Any, *, check_text: bool = True) -> str | None:
    """Why a decoded body cannot be taken (a sentence fit for the caller), or None. `check_text=False` leaves
    NUL and lone surrogates in values to an interface whose validation refuses them per field (DRF's CharField);
    member names are checked either way, as no field validates them (an unknown member is named in the error, an
    encryption context's keys are stored)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            return f"The request body is nested more than {MAX_JSON_DEPTH} levels deep."
        if isinstance(item, dict):
            for key in item:
                problem = text_problem(key)
                if problem is not None:
                    return problem
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, float) and not math.isfinite(item):
            return "The request body holds a number too large to represent."
        elif check_text and isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return problem
    return None


def text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "The request contains a NUL character."
    try:
        text.encode()
    except UnicodeEncodeError:
        return "The request contains text that is not valid Unicode (a lone surrogate)."
    return None
