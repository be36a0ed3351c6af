"""Errors raised by the policy engine, each carrying the AWS exception name it maps onto.

Every error has ``code`` (the AWS ``__type``, e.g. ``"MalformedPolicyDocumentException"``) and ``message`` (the
text to send). Parse errors also say where the problem is: ``statement_index`` (0-based), ``sid`` and ``element``,
so an editor can point at it; the message already names them in words.
"""

from __future__ import annotations

from typing import ClassVar


class EngineError(Exception):
    """Base class: an AWS exception name (``code``) and a message (``message``)."""

    code: ClassVar[str] = "KMSInternalException"

    def __init__(
        self,
        message: str,
        *,
        statement_index: int | None = None,
        sid: str | None = None,
        element: str | None = None,
    ) -> None:
        self.message: str = message
        self.statement_index: int | None = statement_index
        self.sid: str | None = sid
        self.element: str | None = element
        super().__init__(message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class MalformedPolicyDocumentException(EngineError):
    """The policy text is not valid JSON, breaks the policy grammar, or names invalid principals."""

    code = "MalformedPolicyDocumentException"


class LimitExceededException(EngineError):
    """The key policy is larger than the 32 KB quota."""

    code = "LimitExceededException"
