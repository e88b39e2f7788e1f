"""Engines and sessions for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from store import sqlite_driver
from store.sqlite_checkpoint import SAFETY_NET_PAGES, WalCheckpointer
from store.write_turn import WriteTurn

# How long the checkpointer waits for the write turn before it restarts the WAL without it: a
# long transaction of the process's own (a campaign's batch) is let finish first.
RESTART_TURN_WAIT_SECONDS = 0.2


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for PostgreSQL or an in-memory database."""
    if not is_sqlite(url):
        return None
    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None


def wal_checkpointer(url: str, write_turn: WriteTurn) -> WalCheckpointer | None:
    """A checkpointer (not started) for a SQLite database file: a process that writes to it
    runs one, so that no commit of its own has to checkpoint (`store.sqlite_checkpoint`); it
    takes the process's `write_turn` while it shuts writers out."""
    path = sqlite_file(url)
    if path is None:
        return None
    return WalCheckpointer(
        path, hold_writers=partial(write_turn.held_from_thread, RESTART_TURN_WAIT_SECONDS)
    )


def make_engine(url: str, *, for_reads: bool = False, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL, foreign keys and a busy timeout on every connection,
    through aiosqlite with one thread hand-off per statement, or none in a `run_on_loop`
    session (`store.sqlite_driver`).

    On SQLite, write transactions begin IMMEDIATE (see below); an engine made `for_reads`
    begins deferred instead, so readers never queue behind or block the single writer.
    """
    if is_sqlite(url):
        parsed = make_url(url).set(drivername=f"sqlite+{sqlite_driver.DRIVER}")
        path = sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # A connection is used by one task at a time, from the driver's thread or, for
        # `run_on_loop` sessions, from the loop's.
        connect_args = {"timeout": 30, "check_same_thread": False}
        engine = create_async_engine(parsed, connect_args=connect_args, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        # aiosqlite's implicit BEGIN is deferred; take the write lock at BEGIN instead so that
        # two writers never deadlock upgrading a read lock (SQLITE_BUSY without waiting).
        begin = _sqlite_begin_deferred if for_reads else _sqlite_begin_immediate
        event.listen(engine.sync_engine, "begin", begin)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, emit BEGIN (see _sqlite_begin_immediate).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Checkpoints are the checkpointer's, off the commit path; this is the safety net.
    cursor.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_PAGES}")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_deferred(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")


async def run_on_loop(session: AsyncSession) -> None:
    """On SQLite, run this session's statements on the event loop's thread rather than hand
    each to the driver's (see `store.sqlite_driver`): for transactions of a few small
    statements. Call it before the session's first statement; elsewhere it changes nothing.
    Execute through the session: SQLAlchemy's `AsyncConnection.execute` refuses a statement
    that never awaited (`AwaitRequired`)."""
    await session.connection(execution_options={sqlite_driver.ON_LOOP: True})


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
