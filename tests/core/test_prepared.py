"""kmsconsole.core.prepared: parameters in PostgreSQL's text format, values back as text, errors as Django's."""

from __future__ import annotations

import datetime
import enum
import uuid

import pytest
from django.db import DatabaseError, connection

from kmsconsole.core.prepared import _text, fetch_all


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Plain(int, enum.Enum):
    LOW = 1


def test_parameters_in_text_format() -> None:
    moment = datetime.datetime(2026, 11, 29, 8, 0, 1, 5, tzinfo=datetime.UTC)
    key_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert _text(None) is None
    assert _text(b"raw") == b"raw"
    assert _text("caf\u00e9") == "caf\u00e9".encode()
    assert _text(True) == b"true"
    assert _text(False) == b"false"
    assert _text(0) == b"0"
    assert _text(-42) == b"-42"
    assert _text(key_id) == b"12345678-1234-5678-1234-567812345678"
    assert _text(moment) == b"2026-11-29T08:00:01.000005+00:00"


def test_subclasses_convert_as_their_base() -> None:
    # Model choices are str/int enums: they bind as their value, never as their name.
    assert _text(Colour.RED) == b"red"
    assert _text(Level.HIGH) == b"3"
    assert _text(Plain.LOW) == b"1"  # str() of a plain (int, Enum) member is "Plain.LOW"


def test_unsupported_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        _text(datetime.datetime(2026, 11, 29, 8, 0))
    for value in (1.5, [1], {"a": 1}, object()):
        with pytest.raises(TypeError, match="unsupported parameter type"):
            _text(value)


@pytest.mark.django_db(transaction=True)
def test_rows_come_back_as_text_and_null_as_none() -> None:
    assert not connection.in_atomic_block  # the libpq path on PostgreSQL
    rows = fetch_all(connection, "SELECT %s::int + 1, %s::text, NULL UNION ALL SELECT 7, 'x', 'y'", [41, "a"])
    expected_first = ("42", "a", None) if connection.vendor == "postgresql" else (42, "a", None)
    assert rows[0] == expected_first
    assert len(rows) == 2
    assert fetch_all(connection, "SELECT 1 WHERE false", []) == []


@pytest.mark.django_db(transaction=True)
def test_statement_errors_are_djangos() -> None:
    with pytest.raises(DatabaseError):
        fetch_all(connection, "SELECT %s::int", ["not a number"])
    # The connection is still usable afterwards (autocommit: nothing was left open).
    assert fetch_all(connection, "SELECT %s::text", ["ok"]) == [("ok",)]
