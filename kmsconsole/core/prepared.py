"""Run a hot statement as cheaply as the driver allows.

The KMS request path runs two statements per request: reading the generations it depends on, and appending
audit events. Through Django's cursor each costs about 0.1 ms of Python (client-side parameter binding,
psycopg's generator protocol, SQL planned anew by the server every time). On PostgreSQL, outside a transaction,
they go instead straight to libpq: prepared once per connection (the server plans them once), executed with text
parameters in one blocking call that releases the GIL while it waits. Errors are raised as Django's database
errors (so Django's end-of-request check closes a broken connection, as for any query). Inside a transaction, and
on other databases, Django's cursor runs them unchanged.

Values come back as text (str) on the libpq path: callers convert them (`int(...)`), which is also right for the
values Django's cursor returns.
"""

from __future__ import annotations

import datetime
import re
import uuid
import weakref
from collections.abc import Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

# Prepared statements per connection; past that, statements are sent unprepared (still through libpq).
MAX_PREPARED = 128
_PLACEHOLDER = re.compile(r"%s")
_prepared: weakref.WeakKeyDictionary[Any, dict[str, bytes]] = weakref.WeakKeyDictionary()


def fetch_all(connection: BaseDatabaseWrapper, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of one statement (`%s` placeholders, no other `%`)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return _run(connection.connection, sql, [_text(value) for value in params])


def _run(conn: Any, sql: str, values: list[bytes | None], retried: bool = False) -> list[tuple[Any, ...]]:
    from psycopg import errors, pq

    names = _prepared.setdefault(conn, {})
    name = names.get(sql)
    pgconn = conn.pgconn
    if name is None and len(names) < MAX_PREPARED:
        name = f"kmsconsole_{len(names)}".encode()
        _check(pgconn.prepare(name, _numbered(sql)), conn)
        names[sql] = name
    result = (
        pgconn.exec_prepared(name, values) if name is not None else pgconn.exec_params(_numbered(sql), values)
    )
    if result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        error = errors.error_from_result(result, encoding=conn.info.encoding)
        if isinstance(error, errors.InvalidSqlStatementName) and not retried:
            names.clear()  # the session lost its prepared statements (DISCARD ALL): prepare again
            return _run(conn, sql, values, retried=True)
        raise error
    return [
        tuple(_decoded(result.get_value(row, column)) for column in range(result.nfields))
        for row in range(result.ntuples)
    ]


def _check(result: Any, conn: Any) -> None:
    from psycopg import errors, pq

    if result.status != pq.ExecStatus.COMMAND_OK:
        raise errors.error_from_result(result, encoding=conn.info.encoding)


def _numbered(sql: str) -> bytes:
    counter = iter(range(1, len(sql)))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql).encode()


def _decoded(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _text(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text format."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int | uuid.UUID):
        return str(value).encode()
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime parameter")
        return value.isoformat().encode()
    raise TypeError(f"unsupported parameter type {type(value).__name__}")
