"""Condition-key values and the conversions the condition operators apply to them.

A request context maps lower-cased condition-key names to a ``ContextValue``: one scalar (``str``, ``bool``,
``int``, ``float``, ``datetime`` or ``bytes``) or a tuple of scalars for multivalued keys. An empty tuple means
the same as an absent key. Each operator family converts request values the way IAM does (``True`` compares as
``"true"``, a date may be ISO 8601 text or epoch seconds, ...); a value that cannot be converted matches nothing.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime

Scalar = str | bool | int | float | datetime | bytes
ContextValue = Scalar | tuple[Scalar, ...]

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_EPOCH = re.compile(r"[+-]?\d+(?:\.\d+)?")
_MAX_NUMBER_TEXT = 64


def format_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, as AWS writes ``aws:CurrentTime``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scalar_to_str(value: object) -> str | None:
    """The string form a String/Arn operator compares; ``None`` for values with none."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return format_datetime(value)
    return None


def parse_number(text: str) -> float | None:
    """A decimal number as IAM writes them (no ``nan``, ``inf`` or ``1_000``)."""
    text = text.strip()
    if len(text) > _MAX_NUMBER_TEXT or not _NUMBER.fullmatch(text):
        return None
    number = float(text)
    return number if number not in (float("inf"), float("-inf")) else None


def scalar_to_float(value: object) -> float | None:
    """The number a Numeric operator compares."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
        return number if number == number and abs(number) != float("inf") else None
    if isinstance(value, str):
        return parse_number(value)
    return None


def parse_date_text(text: str) -> float | None:
    """Epoch seconds from ISO 8601 text (date, or date and time; naive means UTC) or from epoch-seconds text."""
    text = text.strip()
    if not text or len(text) > _MAX_NUMBER_TEXT:
        return None
    if _EPOCH.fullmatch(text):
        return float(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def scalar_to_epoch(value: object) -> float | None:
    """The instant (epoch seconds) a Date operator compares."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return scalar_to_float(value)
    if isinstance(value, str):
        return parse_date_text(value)
    return None


def scalar_to_bool_text(value: object) -> str | None:
    """``"true"`` or ``"false"`` for the Bool and Null operators."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered
    return None


def decode_base64(text: str) -> bytes | None:
    """Strict standard base64, or ``None``."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def scalar_to_bytes(value: object) -> bytes | None:
    """The bytes BinaryEquals compares: raw ``bytes``, or base64 text."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return decode_base64(value)
    return None


def as_values(value: ContextValue) -> tuple[Scalar, ...]:
    """A context value as a tuple of scalars (a scalar becomes a one-element tuple)."""
    if isinstance(value, tuple):
        return value
    return (value,)
