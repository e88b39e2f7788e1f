"""The outbox on SQLite and PostgreSQL: per-channel seqs are gap-free under concurrent writers."""

from __future__ import annotations

import asyncio

from server.settings import Settings
from server.state import AppState
from store import outbox


async def test_concurrent_writers_get_gap_free_sequences(settings: Settings) -> None:
    state = AppState(settings)
    published: list[dict] = []

    class Recorder:
        async def publish(self, envelopes):
            published.extend(envelopes)

    state.publisher = Recorder()
    try:

        async def write(n: int) -> None:
            async with state.transaction() as session:
                outbox.emit(session, "inbox:1", "test", {"n": n})
                outbox.emit(session, "conversation:9", "test", {"n": n})

        await asyncio.gather(*(write(n) for n in range(30)))
        async with state.reading() as session:
            events = await outbox.read_since(session, "inbox:1", 0)
            assert [e.seq for e in events] == list(range(1, 31))
            assert sorted(e.data["n"] for e in events) == list(range(30))
            assert await outbox.current_seqs(session, ["inbox:1", "nothing"]) == {
                "inbox:1": 30,
                "nothing": 0,
            }
            assert [e.seq for e in await outbox.read_since(session, "inbox:1", 27)] == [28, 29, 30]
        assert len(published) == 60
    finally:
        await state.close()


async def test_rolled_back_transaction_leaves_no_event_and_no_gap(settings: Settings) -> None:
    state = AppState(settings)
    try:
        async with state.transaction() as session:
            outbox.emit(session, "inbox:2", "test", {"n": 1})
        try:
            async with state.transaction() as session:
                outbox.emit(session, "inbox:2", "test", {"n": 2})
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        async with state.transaction() as session:
            outbox.emit(session, "inbox:2", "test", {"n": 3})
        async with state.reading() as session:
            events = await outbox.read_since(session, "inbox:2", 0)
        assert [(e.seq, e.data["n"]) for e in events] == [(1, 1), (2, 3)]
    finally:
        await state.close()
