"""Group commit: steps that many tasks want done in a transaction, done together in one.

Each caller submits its item and awaits its own result. While one transaction runs, newly
submitted items queue up; the next transaction takes them all (up to a limit). Under load this
turns many small transactions into a few larger ones — fewer waits for the write lock (SQLite)
and for the outbox's per-channel sequence rows (PostgreSQL) — and costs nothing when idle.
If a transaction of several items fails, it is rolled back and each of its items is tried again
in a transaction of its own, so one bad item (or a lost race) fails only itself; when the
database is unreachable (`server.outages.is_outage`) every item gets the error at once.

A step's statements are set-wide, over a few dozen items at most, so on SQLite they run on the
event loop's thread (`store.db.run_on_loop`).

Reads are grouped the same way with `session=state.reading` (a storm of sockets signing in
costs a few reads, not one each).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from server.outages import is_outage
from server.state import AppState
from store.db import run_on_loop

Item = TypeVar("Item")
Result = TypeVar("Result")

Step = Callable[[AsyncSession, Sequence[Item]], Awaitable[Sequence[Result]]]


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        state: AppState,
        step: Step[Item, Result],
        limit: int = 50,
        session: Callable[[], AbstractAsyncContextManager[AsyncSession]] | None = None,
    ) -> None:
        self.session = session or state.transaction
        self.step = step
        self.limit = limit
        self.queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self.runner: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.queue.append((item, future))
        if self.runner is None or self.runner.done():
            self.runner = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self.queue:
            group, self.queue = self.queue[: self.limit], self.queue[self.limit :]
            if not await self._settle(group):
                for entry in group:
                    await self._settle([entry])

    async def _settle(self, group: list[tuple[Item, asyncio.Future[Result]]]) -> bool:
        """Run the step over `group` in one session and settle its futures with the results
        or the error; False, settling nothing, when a group of several failed for a reason one
        item may have caused."""
        try:
            async with self.session() as session:
                await run_on_loop(session)
                results = await self.step(session, [item for item, _ in group])
        except Exception as exc:
            if len(group) > 1 and not is_outage(exc):
                return False
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return True
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)
        return True
