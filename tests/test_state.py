"""The unit of work: reads never hold up writes, and after-commit work runs only on commit."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from server.settings import Settings
from server.state import AppState, after_commit
from store.models import Contact


async def test_open_read_does_not_block_a_write(settings: Settings) -> None:
    state = AppState(settings)
    try:
        async with state.reading() as reader:
            assert await reader.scalar(select(func.count()).select_from(Contact)) == 0
            # The read transaction is still open while another session writes and commits.
            async with asyncio.timeout(10), state.transaction() as session:
                session.add(Contact(phone="+14155550100"))
        async with state.reading() as reader:
            assert await reader.scalar(select(func.count()).select_from(Contact)) == 1
    finally:
        await state.close()


async def test_after_commit_runs_only_when_the_transaction_commits(settings: Settings) -> None:
    state = AppState(settings)
    ran: list[str] = []

    async def note(label: str) -> None:
        ran.append(label)

    try:
        async with state.transaction() as session:
            after_commit(session, lambda: note("committed"))
        try:
            async with state.transaction() as session:
                after_commit(session, lambda: note("rolled back"))
                raise RuntimeError("abort")
        except RuntimeError:
            pass
        assert ran == ["committed"]
    finally:
        await state.close()
