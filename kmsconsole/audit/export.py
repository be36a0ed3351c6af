"""Exporting audit events as CSV and JSON Lines, streamed: rows come from the database in chunks (a
server-side cursor on PostgreSQL) and leave as text as they come, so memory stays flat at any size.

A JSON Lines record is the whole event with its chain hashes; retention's archive files use the same records,
which is what lets `audit verify --archive` re-check them. CSV cells that a spreadsheet would run as a formula
(starting with = + - @, or a tab or carriage return) are prefixed with a quote.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from kmsconsole.audit.chain import CHAINED_FIELDS
from kmsconsole.audit.models import AuditEvent

# The columns of an exported event, in order: the chained fields, then the links.
EVENT_FIELDS = (*CHAINED_FIELDS, "prev_hash", "hash")
CHUNK = 2000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def event_record(values: dict[str, Any]) -> dict[str, Any]:
    """An event (a `.values(*EVENT_FIELDS)` row) as JSON-ready data that `record_values` turns back exactly."""
    record = {name: values[name] for name in EVENT_FIELDS}
    record["event_id"] = str(record["event_id"])
    record["time"] = values["time"].isoformat(timespec="microseconds")
    return record


def record_values(record: dict[str, Any]) -> dict[str, Any]:
    """The inverse of event_record: what chain.link_hash() needs to re-check the event."""
    values = dict(record)
    values["time"] = datetime.fromisoformat(record["time"])
    return values


def json_line(values: dict[str, Any]) -> str:
    return json.dumps(event_record(values), ensure_ascii=True, separators=(",", ":"), sort_keys=True) + "\n"


def event_rows(events: QuerySet[AuditEvent]) -> Iterator[dict[str, Any]]:
    """The events as value rows, in chunks (PostgreSQL: a server-side cursor; never the whole result in
    memory)."""
    return events.values(*EVENT_FIELDS).iterator(chunk_size=CHUNK)


def safe_cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: JSON for structures, a quote before formula characters."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    elif isinstance(value, datetime):
        text = value.isoformat(timespec="microseconds")
    else:
        text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


class _Line:
    """A file-like object whose write() returns the line, so csv.writer can feed a generator."""

    def write(self, text: str) -> str:
        return text


def csv_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(EVENT_FIELDS)
    for row in rows:
        yield writer.writerow([safe_cell(row[name]) for name in EVENT_FIELDS])


def jsonl_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json_line(row)


def batched(lines: Iterable[str], size: int = 64 * 1024) -> Iterator[bytes]:
    """Join small lines into blocks of about `size` bytes: fewer, larger writes to the socket."""
    block: list[str] = []
    length = 0
    for line in lines:
        block.append(line)
        length += len(line)
        if length >= size:
            yield "".join(block).encode()
            block, length = [], 0
    if block:
        yield "".join(block).encode()
