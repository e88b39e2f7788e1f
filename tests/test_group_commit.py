"""Group commit: items submitted together share a transaction; one bad item fails only itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from server.services.group_commit import GroupCommit
from server.settings import Settings
from server.state import AppState
from store import outbox
from store.models import Event


@pytest.fixture
async def state(settings: Settings) -> AsyncIterator[AppState]:
    state = AppState(settings)
    yield state
    await state.close()


class Recorder:
    """A step that emits one event per item and fails on the item 'bad' (or 'outage')."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []

    async def __call__(self, session: AsyncSession, items: Sequence[str]) -> list[str]:
        self.groups.append(list(items))
        for item in items:
            outbox.emit(session, "inbox:1", "item", {"item": item})
        if "bad" in items:
            raise ValueError("bad item")
        if "outage" in items:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("database gone"))
        return [item.upper() for item in items]


async def stored_items(state: AppState) -> list[str]:
    async with state.reading() as session:
        events = await outbox.read_since(session, "inbox:1", 0)
    return [event.data["item"] for event in events]


async def submit_all(group: GroupCommit[str, str], items: list[str]) -> list[object]:
    return await asyncio.gather(*(group.submit(i) for i in items), return_exceptions=True)


async def test_items_submitted_together_commit_in_one_transaction(state: AppState) -> None:
    step = Recorder()
    group = GroupCommit(state, step, limit=3)

    results = await submit_all(group, ["a", "b", "c", "d"])

    assert results == ["A", "B", "C", "D"]
    assert step.groups == [["a", "b", "c"], ["d"]]
    assert await stored_items(state) == ["a", "b", "c", "d"]


async def test_a_bad_item_fails_alone_and_the_others_are_stored(state: AppState) -> None:
    step = Recorder()
    group = GroupCommit(state, step)

    results = await submit_all(group, ["a", "bad", "c"])

    assert results[0] == "A" and results[2] == "C"
    assert isinstance(results[1], ValueError)
    assert step.groups == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]
    assert await stored_items(state) == ["a", "c"]


async def test_an_outage_fails_the_whole_group_at_once(state: AppState) -> None:
    step = Recorder()
    group = GroupCommit(state, step)

    results = await submit_all(group, ["a", "outage", "c"])

    assert all(isinstance(r, OperationalError) for r in results)
    assert step.groups == [["a", "outage", "c"]]
    async with state.reading() as session:
        assert await session.scalar(select(func.count()).select_from(Event)) == 0
