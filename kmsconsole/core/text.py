"""How a long value a caller typed is shortened where it is repeated: in a message, on a page, in an audit event.
One limit and one way, wherever the meaning is the same. And the few ways a sentence of this service is put
together in plain English (a list of names, an article)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# The longest a value typed in is repeated as it is: AWS's model validation echoes at most this many characters of a
# value it refuses (`kmsconsole.core.errors.model_constraint_error`, the KMS endpoint's model check), and the
# console's problems and a refused value in an audit event are cut alike.
SHOWN_CHARS = 256
# The longest an ARN a caller gives may be (IAM's limit, the audit event's ARN columns): a filter or a parameter
# naming a principal or a key by ARN is recorded whole up to it.
ARN_CHARS = 2048
# The key of a cut value as an audit event records it (`recorded`), beside "length".
CUT = "cut"


def shortened(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` as a message shows it: whole up to `limit` characters; longer, its first `limit` followed by "..."
    (as AWS echoes a value it refuses)."""
    return text if len(text) <= limit else f"{text[:limit]}..."


def recorded(text: str, limit: int = SHOWN_CHARS) -> str | dict[str, Any]:
    """`text` as an audit event records a value typed in: whole up to `limit` characters; longer, as structured data
    `{"cut": its first limit characters, "length": its whole length}`. A value typed in is always a string, so no
    value can pass itself off as a cut one, nor a cut one as typed."""
    if len(text) <= limit:
        return text
    return {CUT: text[:limit], "length": len(text)}


def listed(items: Sequence[str]) -> str:
    """The items as a sentence lists them: "X", "X and Y", "X, Y and Z"."""
    return " and ".join(filter(None, [", ".join(items[:-1]), *items[-1:]]))


def with_article(words: str) -> str:
    """`words` after "a" or "an" as said aloud: "a symmetric", "an asymmetric", "an HMAC" (aitch-mac)."""
    return f"{'an' if words.startswith(('a', 'e', 'i', 'o', 'u', 'HMAC')) else 'a'} {words}"
