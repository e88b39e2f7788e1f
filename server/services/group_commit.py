"""Group commit: steps that many tasks want done in a transaction, done together in one.

Each caller submits its item and awaits its own result. While one transaction runs, newly
submitted items queue up; the next transaction takes them all (up to a limit). Under load this
turns many small transactions into a few larger ones — fewer waits for the write lock (SQLite)
and for the outbox's per-channel sequence rows (PostgreSQL) — and costs nothing when idle.
If a transaction fails, every item in it gets the exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from server.state import AppState

Item = TypeVar("Item")
Result = TypeVar("Result")

Step = Callable[[AsyncSession, Sequence[Item]], Awaitable[Sequence[Result]]]


class GroupCommit(Generic[Item, Result]):
    def __init__(self, state: AppState, step: Step[Item, Result], limit: int = 50) -> None:
        self.state = state
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
            try:
                async with self.state.transaction() as session:
                    results = await self.step(session, [item for item, _ in group])
            except Exception as exc:
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)
