"""The SQLite driver: every statement is one hand-off to aiosqlite's thread, or none in a
`run_on_loop` session, and what SQLAlchemy reads back (rows, rowcount, RETURNING, errors) is
what SQLite said."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from store.db import make_engine, make_sessionmaker, run_on_loop
from store.migrate import upgrade_async
from store.models import Inbox


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}"
    await upgrade_async(url)
    engine = make_engine(url)
    yield engine
    await engine.dispose()


@pytest.fixture
def hand_offs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The name of every call aiosqlite runs on its thread."""
    calls: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    yield calls


async def test_a_statement_is_one_hand_off(engine: AsyncEngine, hand_offs: list[str]) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))  # the connection is open and in a transaction
        hand_offs.clear()
        rows = (await connection.execute(text("SELECT 1 UNION ALL SELECT 2"))).all()
        assert [tuple(row) for row in rows] == [(1,), (2,)]
        assert hand_offs == ["_run"]  # stock aiosqlite: cursor, execute, fetchall, close


async def test_rows_rowcount_and_returning_come_back_whole(engine: AsyncEngine) -> None:
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        names = [f"inbox {i}" for i in range(40)]
        # One multi-row statement with RETURNING, whatever order SQLite returns it in.
        returned = await session.scalars(
            insert(Inbox).returning(Inbox), [{"name": name} for name in names]
        )
        by_name = {inbox.name: inbox.id for inbox in returned}
        assert sorted(by_name) == sorted(names)
        assert len(set(by_name.values())) == 40
        # executemany without RETURNING, then an UPDATE's rowcount.
        await session.execute(insert(Inbox), [{"name": f"more {i}"} for i in range(5)])
        renamed = await session.execute(
            update(Inbox).where(Inbox.name.like("more %")).values(name="renamed")
        )
        assert renamed.rowcount == 5
        found = await session.scalars(select(Inbox.id).where(Inbox.name == "inbox 7"))
        assert found.all() == [by_name["inbox 7"]]


async def test_errors_are_sqlalchemys_and_the_transaction_rolls_back(engine: AsyncEngine) -> None:
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        with pytest.raises(OperationalError, match="no such table"):
            async with session.begin():
                session.add(Inbox(name="kept only if the transaction commits"))
                await session.flush()
                await session.execute(text("SELECT * FROM no_such_table"))
    async with engine.connect() as connection:
        with pytest.raises(IntegrityError):
            await connection.execute(text("INSERT INTO inboxes (id, name) VALUES (NULL, NULL)"))
    async with sessionmaker() as session:
        assert (await session.scalars(select(Inbox.name))).all() == []


async def test_a_transaction_costs_no_hand_offs_of_its_own(
    engine: AsyncEngine, hand_offs: list[str]
) -> None:
    """BEGIN goes with the first statement, the commit is one hand-off, and the pool's
    rollback of the returned connection (nothing open by then) is not sent."""
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        await session.execute(select(Inbox.id))  # the pool has its connection now
    hand_offs.clear()
    async with sessionmaker() as session, session.begin():
        session.add(Inbox(name="one statement"))
    assert hand_offs == ["_run", "commit"]
    hand_offs.clear()
    async with sessionmaker() as session, session.begin():
        pass  # begun and ended with nothing in between
    assert hand_offs == []
    async with sessionmaker() as session:
        assert (await session.scalars(select(Inbox.name))).all() == ["one statement"]


async def test_the_held_begin_still_takes_the_write_lock_first(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A write transaction holds SQLite's write lock from its first statement, a read
    included, as BEGIN IMMEDIATE promises; a BEGIN that cannot get the lock fails its
    statement, and the connection is usable once the lock is free."""
    other = sqlite3.connect(tmp_path / "driver.db", timeout=0, isolation_level=None)
    try:
        async with engine.begin() as connection:
            await connection.execute(select(Inbox.id))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA busy_timeout=50")
            await connection.commit()
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(OperationalError, match="locked"):
                await connection.execute(select(Inbox.id))
            await connection.rollback()
            other.execute("ROLLBACK")
            await connection.execute(insert(Inbox).values(name="after the lock"))
            await connection.commit()
        async with engine.connect() as connection:
            names = (await connection.execute(select(Inbox.name))).scalars().all()
            assert names == ["after the lock"]
    finally:
        other.close()


async def busy_timeout(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar_one())


async def test_on_the_loop_a_transaction_hands_off_only_its_commit(
    engine: AsyncEngine, hand_offs: list[str]
) -> None:
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        await session.execute(select(Inbox.id))  # the pool has its connection now
    hand_offs.clear()
    async with sessionmaker() as session, session.begin():
        await run_on_loop(session)
        await session.execute(insert(Inbox), [{"name": f"many {i}"} for i in range(3)])
        returned = await session.scalars(
            insert(Inbox).returning(Inbox.id), [{"name": "returned 1"}, {"name": "returned 2"}]
        )
        assert len(set(returned.all())) == 2
        renamed = await session.execute(
            update(Inbox).where(Inbox.name.like("many %")).values(name="renamed")
        )
        assert renamed.rowcount == 3
    assert hand_offs == ["commit"]
    async with sessionmaker() as session:
        with pytest.raises(IntegrityError):
            async with session.begin():
                await run_on_loop(session)
                await session.execute(text("INSERT INTO inboxes (id, name) VALUES (NULL, NULL)"))
        names = (await session.scalars(select(Inbox.name).order_by(Inbox.id))).all()
    assert names == ["renamed"] * 3 + ["returned 1", "returned 2"]
    assert await busy_timeout(engine) == 30000  # as configured, though zero on the loop


async def test_on_the_loop_a_lock_held_elsewhere_is_waited_for_on_the_drivers_thread(
    engine: AsyncEngine, tmp_path: Path, hand_offs: list[str]
) -> None:
    """Another process holds the write lock: the loop does not wait for it (it goes on, and
    is what lets the other process go here), the driver's thread does."""
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        await session.execute(select(Inbox.id))  # the pool has its connection now
    other = sqlite3.connect(tmp_path / "driver.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    hand_offs.clear()
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def let_go_later() -> None:
        await asyncio.sleep(0.5)
        other.execute("ROLLBACK")

    ticker = asyncio.create_task(tick())
    other_process = asyncio.create_task(let_go_later())
    await asyncio.sleep(0.05)  # both are under way
    try:
        async with sessionmaker() as session, session.begin():
            await run_on_loop(session)
            session.add(Inbox(name="after the lock"))
        await other_process
    finally:
        ticker.cancel()
        other.close()
    # The loop went on while the statement waited (at zero, SQLite's own wait would hold
    # it up for the whole busy timeout).
    assert max(later - earlier for earlier, later in itertools.pairwise(ticks)) < 0.25
    assert hand_offs == ["_run", "commit"]
    async with sessionmaker() as session:
        names = (await session.scalars(select(Inbox.name).order_by(Inbox.id))).all()
    assert names == ["after the lock"]
    assert await busy_timeout(engine) == 30000
