"""What the audit trail stores of caller-supplied values (`kmsconsole.audit.recorder._storable`): whatever a
request carried must not make its audit write, and so the request, fail, and the chain hash must be computed over
what the database gives back."""

from __future__ import annotations

import math
from typing import Any

import pytest

from kmsconsole.audit.recorder import _storable


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("plain ascii", "plain ascii"),
        ("a\x00b", "a\\u0000b"),  # PostgreSQL refuses NUL in text and jsonb
        ("é and ✓", "é and ✓"),  # valid UTF-8 is kept as it is
        ("lone \ud800 surrogate\x00", "lone \\ud800 surrogate\\u0000"),  # not UTF-8: spelled out
        (1.0, 1),  # jsonb gives whole-number floats back as integers
        (1e300, int(1e300)),
        (0.5, 0.5),
        (math.inf, "inf"),
        (math.nan, "nan"),
        ({"k\x00": ["v\x00", 2.0, None, True]}, {"k\\u0000": ["v\\u0000", 2, None, True]}),
    ],
)
def test_values_are_stored_as_the_database_will_give_them_back(value: Any, stored: Any) -> None:
    result = _storable(value)
    assert result == stored and type(result) is type(stored)
