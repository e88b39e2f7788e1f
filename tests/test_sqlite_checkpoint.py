"""SQLite's WAL is checkpointed by a thread of its own: commits leave it alone, the checkpointer
copies it into the database file and, under writes that never pause, starts it over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.settings import Settings
from server.state import AppState
from store.db import make_engine
from store.sqlite_checkpoint import WalCheckpointer

PAGE = 4096


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE filler (data BLOB)"))
    yield engine
    await engine.dispose()


def database_file(engine: AsyncEngine) -> Path:
    return Path(str(engine.url.database))


def wal_file(engine: AsyncEngine) -> Path:
    return database_file(engine).with_name(database_file(engine).name + "-wal")


async def write_pages(engine: AsyncEngine, commits: int, pages_each: int = 4) -> None:
    """Commits that each add about `pages_each` pages."""
    for _ in range(commits):
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO filler (data) VALUES (randomblob(:size))"),
                [{"size": PAGE - 200}] * pages_each,
            )


async def eventually(check: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.01)


async def test_commits_leave_the_checkpoint_to_the_checkpointer(engine: AsyncEngine) -> None:
    # 1,600 pages: SQLite's own commits would have checkpointed past 1,000.
    await write_pages(engine, commits=400)
    assert database_file(engine).stat().st_size < 50 * PAGE
    assert wal_file(engine).stat().st_size > 1_600 * PAGE

    checkpointer = WalCheckpointer(database_file(engine), interval=0.01)
    checkpointer.start()
    try:
        await eventually(lambda: database_file(engine).stat().st_size > 1_500 * PAGE)
    finally:
        await asyncio.to_thread(checkpointer.stop)
    assert not checkpointer.running


def wal_frames(engine: AsyncEngine) -> int:
    """How many frames the WAL holds (asking costs a PASSIVE checkpoint, which changes none)."""
    connection = sqlite3.connect(database_file(engine))
    try:
        return int(connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        connection.close()


@pytest.mark.parametrize(("restart_pages", "started_over"), [(100, True), (10**9, False)])
async def test_a_long_wal_in_use_while_it_was_checkpointed_is_started_over(
    engine: AsyncEngine, restart_pages: int, started_over: bool
) -> None:
    """A PASSIVE checkpoint that ran while a write was under way leaves the WAL to grow on
    (under writes that never pause, it always is): past `restart_pages` the checkpointer
    asks for a RESTART, holding the process's writers off meanwhile, and the next write starts
    the WAL over."""
    await write_pages(engine, commits=100)  # 400 pages
    holds: list[str] = []

    @contextlib.contextmanager
    def hold_writers() -> Iterator[None]:
        holds.append("held")
        yield
        holds.append("let go")

    checkpointer = WalCheckpointer(
        database_file(engine), restart_pages=restart_pages, hold_writers=hold_writers
    )
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO filler (data) VALUES (x'00')"))
        checkpoint = asyncio.create_task(asyncio.to_thread(checkpointer.checkpoint))
        await asyncio.sleep(0.005)
    await checkpoint
    checkpointer.stop()
    await write_pages(engine, commits=1)
    if started_over:
        assert wal_frames(engine) < 20
        assert holds == ["held", "let go"]
    else:
        assert wal_frames(engine) > 400
        assert holds == []


def test_a_database_not_created_yet_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "later.db"
    checkpointer = WalCheckpointer(path)
    checkpointer.checkpoint()
    checkpointer.stop()
    assert not path.exists()


async def test_a_failing_checkpoint_is_logged_once_and_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"not a database, " * 512)
    checkpointer = WalCheckpointer(path, interval=0.01)
    with caplog.at_level(logging.WARNING, logger="switchboard.store.checkpoint"):
        checkpointer.start()
        await asyncio.sleep(0.2)  # some twenty tries
        assert checkpointer.running
        path.unlink()
        connection = sqlite3.connect(path)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.close()
        await asyncio.sleep(0.1)
        await asyncio.to_thread(checkpointer.stop)
    warnings = [record for record in caplog.records if "checkpointing" in record.getMessage()]
    assert len(warnings) == 1
    assert "file is not a database" in warnings[0].getMessage()


async def test_the_app_state_runs_one_for_a_sqlite_file_and_stops_it(tmp_path: Path) -> None:
    state = AppState(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"))
    assert state.checkpointer is not None and state.checkpointer.running
    await state.close()
    assert not state.checkpointer.running
