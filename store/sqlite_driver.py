"""SQLAlchemy's aiosqlite dialect with at most one hand-off to the driver's thread per statement.

aiosqlite runs each call on its connection's thread, and SQLAlchemy's adapter makes one call
to open a cursor, one to execute, one to fetch and one to close: four thread round trips per
statement, each costing ~60 µs of CPU (wake the thread, wake the event loop back). A
transaction of ten statements spent more on those than on SQLite. Here the cursor is opened,
executed, read and closed in one call on the driver's thread.

Transactions cost no hand-offs of their own either: a BEGIN goes with the statement after it,
and a commit or rollback is not sent when SQLite says no transaction is open (the pool's
rollback of every connection it takes back, a transaction that ran no statement).

A connection given the execution option `ON_LOOP` (`store.db.run_on_loop`) runs its statements
on the event loop's own thread: no hand-off at all. Under load a hand-off is dearer than a small
indexed statement: the driver's thread wakes on the other core and the loop is woken back, so a
transaction of ten small statements spent most of its time in between. The loop waits while
SQLite works, so this is for transactions of a few small statements (group commits), and such a
statement never waits for a lock there: it runs with SQLite's busy timeout at zero, and when
another process holds the lock it runs again on the driver's thread, where waiting holds up
nobody. (In WAL mode only a transaction's first write waits for a lock, so nothing of an
`executemany` is done when it has to wait.) The commit, where SQLite writes out and
checkpoints, always goes to the driver's thread.

`make_engine` uses it for every SQLite URL (`sqlite+aiosqlite://…` is what operators write).
It leans on private names of aiosqlite's `Connection` (`_execute`, `_conn`, `_connection`) and
of SQLAlchemy's adapter, which is why pyproject pins aiosqlite and SQLAlchemy to the minor
versions it was written against.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.util.concurrency import await_

DRIVER = "aiosqlite_onehop"
ON_LOOP = "sqlite_on_loop"


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A DBAPI cursor whose every statement is one call on the driver's thread; its results,
    description, rowcount and lastrowid are kept here."""

    __slots__ = ("_description", "_rowcount", "_lastrowid")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = {}
        self._rows = deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    def execute(self, operation: Any, parameters: Any = None, on_loop: bool = False) -> None:
        if not parameters and _is_begin(operation):
            self._adapt_connection._pending_begin = operation
            self._description, self._rowcount, self._rows = None, -1, deque()
            return
        self._call(False, operation, parameters, on_loop)

    def executemany(
        self, operation: Any, seq_of_parameters: Sequence[Any], on_loop: bool = False
    ) -> None:
        self._call(True, operation, seq_of_parameters, on_loop)

    def close(self) -> None:
        self._rows.clear()

    async def _async_soft_close(self) -> None:
        """Nothing stays open between calls."""

    def _call(self, many: bool, operation: Any, parameters: Any, on_loop: bool) -> None:
        begin, self._adapt_connection._pending_begin = self._adapt_connection._pending_begin, None
        try:
            rows = (
                self._run_without_waiting(begin, many, operation, parameters) if on_loop else None
            )
            if rows is None:
                if begin is not None and self._connection._conn.in_transaction:
                    begin = None  # it went through on the loop; the statement did not
                rows = await_(
                    self._connection._execute(self._run, begin, many, operation, parameters)
                )
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._rows = deque(rows)

    def _run_without_waiting(
        self, begin: str | None, many: bool, operation: Any, parameters: Any
    ) -> list[Any] | None:
        """On the loop's thread: the statement's rows, or None when it would have to wait for
        a lock another process holds (the statement did nothing)."""
        connection = self._connection._conn
        (timeout,) = connection.execute("PRAGMA busy_timeout").fetchone()
        connection.execute("PRAGMA busy_timeout=0")
        try:
            return self._run(begin, many, operation, parameters)
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            return None
        finally:
            connection.execute(f"PRAGMA busy_timeout={int(timeout)}")

    def _run(self, begin: str | None, many: bool, operation: Any, parameters: Any) -> list[Any]:
        """The whole statement, start to finish (after the BEGIN that was held for it)."""
        connection = self._connection._conn
        if begin is not None:
            connection.execute(begin)
        cursor = connection.cursor()
        try:
            if many:
                cursor.executemany(operation, parameters)
            elif parameters is None:
                cursor.execute(operation)
            else:
                cursor.execute(operation, parameters)
            self._description = cursor.description
            self._rowcount = cursor.rowcount
            self._lastrowid = cursor.lastrowid
            return cursor.fetchall() if cursor.description else []
        finally:
            cursor.close()


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """Holds a BEGIN back for the next statement; commits and rolls back only what is open."""

    __slots__ = ("_pending_begin",)
    _cursor_cls = OneHopCursor

    def __init__(self, dbapi: Any, connection: aiosqlite.Connection) -> None:
        super().__init__(dbapi, connection)
        self._pending_begin: str | None = None

    def commit(self) -> None:
        if self._ends_nothing():
            return
        super().commit()

    def rollback(self) -> None:
        if self._ends_nothing():
            return
        super().rollback()

    def _ends_nothing(self) -> bool:
        """True when no transaction is open: a held BEGIN (dropped here) or none at all.

        SQLite's own flag is read on this thread: the driver's thread is idle between the
        statements of a connection.
        """
        if self._pending_begin is not None:
            self._pending_begin = None
            return True
        sqlite = self._connection._connection
        return sqlite is not None and not sqlite.in_transaction


def _is_begin(operation: Any) -> bool:
    return isinstance(operation, str) and operation.lstrip()[:5].upper() == "BEGIN"


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        adapted = super().connect(*arg, **kw)
        return OneHopConnection(self, adapted._connection)


class OneHopDialect(SQLiteDialect_aiosqlite):
    driver = DRIVER
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> OneHopDBAPI:
        return OneHopDBAPI(__import__("aiosqlite"), __import__("sqlite3"))

    def do_execute(
        self, cursor: OneHopCursor, statement: Any, parameters: Any, context: Any = None
    ) -> None:
        cursor.execute(statement, parameters, _on_loop(context))

    def do_executemany(
        self, cursor: OneHopCursor, statement: Any, parameters: Any, context: Any = None
    ) -> None:
        cursor.executemany(statement, parameters, _on_loop(context))

    def do_execute_no_params(
        self, cursor: OneHopCursor, statement: Any, context: Any = None
    ) -> None:
        cursor.execute(statement, None, _on_loop(context))


def _on_loop(context: Any) -> bool:
    return context is not None and bool(context.execution_options.get(ON_LOOP))


registry.register(f"sqlite.{DRIVER}", __name__, "OneHopDialect")
