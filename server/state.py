"""The application's shared parts, and the unit of work that commits changes with their events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.logging import current_request_id
from server.settings import Settings
from store import outbox
from store.db import is_sqlite, make_engine, make_sessionmaker, wal_checkpointer
from store.models import Event
from store.write_turn import WriteTurn

log = logging.getLogger("switchboard.state")

_AFTER_COMMIT_KEY = "after_commit"

AfterCommit = Callable[[], Awaitable[None]]


class EventPublisher(Protocol):
    """Carries committed outbox events to live subscribers (the realtime node)."""

    async def publish(self, envelopes: Sequence[dict[str, Any]]) -> None: ...

    async def access_changed(self, user_id: int) -> None:
        """Re-check every live subscription of `user_id`, on every process; cut what is gone."""


def envelope(event: Event | outbox.WrittenEvent, request_id: str | None = None) -> dict[str, Any]:
    """The event as publishers take it; `request_id` names what caused it, for the logs."""
    return {
        "channel": event.channel,
        "seq": event.seq,
        "type": event.type,
        "data": event.data,
        "request_id": request_id,
    }


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once the current transaction has committed (never if it rolls back)."""
    session.info.setdefault(_AFTER_COMMIT_KEY, []).append(callback)


class AppState:
    def __init__(self, settings: Settings, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.database_url)
        self.sessionmaker: async_sessionmaker[AsyncSession] = make_sessionmaker(self.engine)
        # SQLite has one writer: reads get their own engine whose transactions do not take
        # the write lock. PostgreSQL shares one engine for both.
        if is_sqlite(settings.database_url) and engine is None:
            self.read_engine = make_engine(settings.database_url, for_reads=True)
        else:
            self.read_engine = self.engine
        self.read_sessionmaker = make_sessionmaker(self.read_engine)
        # SQLite's one writer: this process's write transactions take turns here, first come
        # first served. Left to SQLite they would poll its lock, sleeping up to 100 ms between
        # tries, and a burst of webhooks would mostly wait in those sleeps.
        turn = WriteTurn() if is_sqlite(settings.database_url) else None
        self._write_turn: WriteTurn | contextlib.nullcontext[None] = (
            turn or contextlib.nullcontext()
        )
        # A SQLite file is checkpointed on a thread of its own, not in this process's commits;
        # it takes a turn too while it shuts writers out.
        self.checkpointer = (
            wal_checkpointer(settings.database_url, turn) if turn and engine is None else None
        )
        if self.checkpointer is not None:
            self.checkpointer.start()
        self.publisher: EventPublisher | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction that commits on success with the events it emitted.

        After the commit the events are handed to the publisher; if that fails the events are
        still in the outbox, and subscribers catch up from it (pub/sub only carries the news).
        """
        async with self._write_turn, self.sessionmaker() as session:
            try:
                async with session.begin():
                    outbox.set_origin(session, current_request_id())
                    yield session
                    events = await outbox.write_pending(session)
            except BaseException:
                outbox.discard_pending(session)
                session.info.pop(_AFTER_COMMIT_KEY, None)
                raise
            callbacks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT_KEY, [])
        if events:
            await self.publish([envelope(event, event.origin) for event in events])
        for callback in callbacks:
            try:
                await callback()
            except Exception:
                log.exception("after-commit callback failed")

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only; nothing it does is committed."""
        async with self.read_sessionmaker() as session:
            yield session

    async def publish(self, envelopes: Sequence[dict[str, Any]]) -> None:
        if self.publisher is None:
            return
        try:
            await self.publisher.publish(envelopes)
        except Exception:
            log.exception("publishing %d events failed; subscribers will catch up", len(envelopes))

    async def access_changed(self, user_id: int) -> None:
        """Call after committing a change to who may see what (membership, role, logout)."""
        if self.publisher is None:
            return
        try:
            await self.publisher.access_changed(user_id)
        except Exception:
            log.exception("announcing an access change of user %s failed", user_id)

    async def close(self) -> None:
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.stop)
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
