"""The outbox on SQLite and PostgreSQL: per-channel seqs are gap-free under concurrent writers."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from sqlalchemy import update

from server.live import trim_outbox
from server.settings import Settings
from server.state import AppState
from store import outbox
from store.models import Event, utcnow
from tests.support.messaging import commits_of, statements_of


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


async def emit_many(state: AppState, counts: dict[str, int]) -> None:
    async with state.transaction() as session:
        for channel, n in counts.items():
            for i in range(n):
                outbox.emit(session, channel, "test", {"n": i})


async def retained(state: AppState, channel: str) -> list[int]:
    async with state.reading() as session:
        return [e.seq for e in await outbox.read_since(session, channel, 0)]


async def test_trim_keeps_the_newest_of_each_channel_and_nothing_too_old(
    settings: Settings,
) -> None:
    state = AppState(settings)
    try:
        await emit_many(state, {"inbox:1": 12, "conversation:1": 3, "conversation:2": 5})
        async with state.transaction() as session:
            await session.execute(
                update(Event)
                .where(Event.channel == "conversation:1", Event.seq <= 2)
                .values(created_at=utcnow() - timedelta(days=2))
            )
        async with state.transaction() as session:
            removed = await outbox.trim(session, keep_per_channel=4, max_age=timedelta(days=1))
        assert removed == 8 + 2 + 1
        assert await retained(state, "inbox:1") == [9, 10, 11, 12]
        assert await retained(state, "conversation:1") == [3]
        assert await retained(state, "conversation:2") == [2, 3, 4, 5]
        async with state.reading() as session:
            assert await outbox.current_seqs(session, ["inbox:1"]) == {"inbox:1": 12}
    finally:
        await state.close()


async def test_a_trim_takes_two_statements_however_many_channels(settings: Settings) -> None:
    """An office with 50,000 conversations has as many channels: a statement per channel made
    each trim hold the write lock for some 20 seconds, removing nothing."""
    state = AppState(settings)
    try:
        await emit_many(state, {f"conversation:{i}": 2 for i in range(300)})
        with statements_of(state.engine) as executed:
            async with state.transaction() as session:
                removed = await outbox.trim(session, keep_per_channel=1, max_age=timedelta(days=1))
        statements = [s for _, s in executed if not s.startswith("BEGIN")]
        assert removed == 300
        assert len(statements) == 2
        assert all(s.startswith("DELETE FROM events") for s in statements)
        assert not any("RETURNING" in s for s in statements)
        assert await retained(state, "conversation:7") == [2]
    finally:
        await state.close()


async def test_a_long_backlog_is_trimmed_in_transactions_of_a_batch_each(
    settings: Settings,
) -> None:
    """Webhooks take their turn at the write lock between the batches."""
    state = AppState(dataclasses.replace(settings, event_retention_count=5))
    try:
        await emit_many(state, {"inbox:1": 30})
        with commits_of(state) as commits:
            assert await trim_outbox(state, batch=10) == 25
        assert len(commits) == 3  # 10, 10, then 5: fewer than a batch, so nothing is left
        assert await retained(state, "inbox:1") == [26, 27, 28, 29, 30]
    finally:
        await state.close()
