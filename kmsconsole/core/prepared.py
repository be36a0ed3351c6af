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
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg import errors, pq

# Prepared statements per connection; past that, statements are sent unprepared (still through libpq).
MAX_PREPARED = 128
_PLACEHOLDER = re.compile(r"%s")
_prepared: weakref.WeakKeyDictionary[Any, dict[str, bytes]] = weakref.WeakKeyDictionary()
_SUCCEEDED = frozenset({pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK})


def fetch_all(connection: BaseDatabaseWrapper, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of one statement (`%s` placeholders, no other `%`)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return _run(connection.connection, sql, [_text(value) for value in params])


Rows = TypeVar("Rows")


def fetch_on_first_use(
    connection: Any, sql: str, params: Sequence[Any], fetch: Callable[[Any, str, Any], Rows] = fetch_all
) -> Rows:
    """`fetch(connection, sql, params)`, standing in for Django's connection health check when it is the request's
    first use of a persistent connection (the check Django would otherwise send as `SELECT 1` before a cursor's
    first query; this path opens no cursor): a dead connection is replaced and the statement sent once more.

    Only for statements that are safe to send twice: reads, and writes whose `fetch` finds out whether an earlier
    sending took effect (the audit batch: `kmsconsole.audit.writer._once`)."""
    pending_check = (
        getattr(connection, "health_check_enabled", False)
        and not getattr(connection, "health_check_done", True)
        and not getattr(connection, "in_atomic_block", False)
        and getattr(connection, "connection", None) is not None
    )
    if pending_check:
        connection.health_check_done = True
    try:
        return fetch(connection, sql, params)
    except (InterfaceError, OperationalError):
        if not pending_check:
            raise
        connection.close()
        return fetch(connection, sql, params)


def _run(conn: Any, sql: str, values: list[bytes | None], retried: bool = False) -> list[tuple[Any, ...]]:
    names = _prepared.get(conn)
    if names is None:
        names = _prepared[conn] = {}
    name = names.get(sql)
    pgconn = conn.pgconn
    if name is None and len(names) < MAX_PREPARED:
        name = f"kmsconsole_{len(names)}".encode()
        _check(pgconn.prepare(name, _numbered(sql)), conn)
        names[sql] = name
    result = (
        pgconn.exec_prepared(name, values) if name is not None else pgconn.exec_params(_numbered(sql), values)
    )
    if result.status not in _SUCCEEDED:
        error = errors.error_from_result(result, encoding=conn.info.encoding)
        if isinstance(error, errors.InvalidSqlStatementName) and not retried:
            names.clear()  # the session lost its prepared statements (DISCARD ALL): prepare again
            return _run(conn, sql, values, retried=True)
        raise error
    get_value = result.get_value
    columns = range(result.nfields)
    return [
        tuple(None if (value := get_value(row, column)) is None else value.decode() for column in columns)
        for row in range(result.ntuples)
    ]


def _check(result: Any, conn: Any) -> None:
    if result.status != pq.ExecStatus.COMMAND_OK:
        raise errors.error_from_result(result, encoding=conn.info.encoding)


def _numbered(sql: str) -> bytes:
    counter = iter(range(1, len(sql)))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql).encode()


def _text(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text format."""
    convert = _TEXT_OF.get(type(value))
    if convert is None:  # a subclass (a str enum, say): as its nearest base
        convert = next((_TEXT_OF[base] for base in type(value).__mro__ if base in _TEXT_OF), None)
        if convert is None:
            raise TypeError(f"unsupported parameter type {type(value).__name__}")
    return convert(value)


def _aware_datetime(value: datetime.datetime) -> bytes:
    if value.tzinfo is None:
        raise ValueError("naive datetime parameter")
    return value.isoformat().encode()


# By type, a dict lookup: a statement of the audit batch has about thirty parameters. A subclass converts as its
# nearest base (bool, itself an int, has its own entry).
_TEXT_OF: dict[type, Callable[[Any], bytes | None]] = {
    type(None): lambda _: None,
    bytes: lambda value: value,
    str: str.encode,
    bool: lambda value: b"true" if value else b"false",
    int: lambda value: b"%d" % value,  # a number's digits, even for an int enum (whose str() may be its name)
    uuid.UUID: lambda value: str(value).encode(),
    datetime.datetime: _aware_datetime,
}
