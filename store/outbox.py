"""The event outbox: events written in the changing transaction, with a gap-free seq per channel.

Services call `emit` while they change things; the unit of work calls `write_pending` just before
commit. Sequence numbers come from one row per channel in `channel_sequences`, bumped with an
upsert whose row lock is held until commit, so on every channel seq N+1 can only be handed out
once seq N is committed (or rolled back and reused): readers never see a hole that fills later.
Channels are locked in sorted order so two transactions can never deadlock on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from store.models import ChannelSequence, Event, utcnow

_PENDING_KEY = "outbox.pending"
_ORIGIN_KEY = "outbox.origin"


@dataclass(frozen=True, slots=True)
class PendingEvent:
    channel: str
    type: str
    data: dict[str, Any]
    origin: str | None


@dataclass(frozen=True, slots=True)
class WrittenEvent:
    """An event as inserted (the columns publishers need, not an ORM object: a busy
    transaction writes hundreds) and the origin it was emitted with."""

    channel: str
    seq: int
    type: str
    data: dict[str, Any]
    origin: str | None


_INSERT_EVENTS = insert(Event.__table__)


def set_origin(session: AsyncSession, origin: str | None) -> None:
    """Tag the events emitted from now on in this transaction with `origin` (what caused them,
    such as a request id) for the logs; it is not stored."""
    session.info[_ORIGIN_KEY] = origin


def emit(session: AsyncSession, channel: str, type: str, data: dict[str, Any]) -> None:
    """Queue an event to be written with the current transaction."""
    pending = PendingEvent(channel, type, data, session.info.get(_ORIGIN_KEY))
    session.info.setdefault(_PENDING_KEY, []).append(pending)


def discard_pending(session: AsyncSession) -> None:
    session.info.pop(_PENDING_KEY, None)


async def write_pending(session: AsyncSession) -> list[WrittenEvent]:
    """Assign seqs to the queued events and insert them; call right before commit.

    The events are inserted in one statement (executemany) and returned in the order the
    service emitted them, which is the order to publish them in.
    """
    pending: list[PendingEvent] = session.info.pop(_PENDING_KEY, [])
    if not pending:
        return []
    counts: dict[str, int] = {}
    for item in pending:
        counts[item.channel] = counts.get(item.channel, 0) + 1
    lasts = await _reserve(session, {channel: counts[channel] for channel in sorted(counts)})
    # Each channel's seqs are handed out in emit order, up to its new last seq.
    next_seq = {channel: lasts[channel] - count + 1 for channel, count in counts.items()}
    written = []
    for item in pending:
        seq = next_seq[item.channel]
        next_seq[item.channel] = seq + 1
        written.append(WrittenEvent(item.channel, seq, item.type, item.data, item.origin))
    now = utcnow()
    await session.execute(
        _INSERT_EVENTS,
        [
            {"channel": e.channel, "seq": e.seq, "type": e.type, "data": e.data, "created_at": now}
            for e in written
        ],
    )
    return written


async def _reserve(session: AsyncSession, counts: dict[str, int]) -> dict[str, int]:
    """Bump each channel's counter by its count (one upsert, rows in the given order, which
    is the order their locks are taken in) and return each new last seq.

    Written for one row and run with every row's parameters, so the statement compiles once
    per process (a many-row VALUES would compile anew for each count of channels)."""
    rows = await session.execute(
        _reserve_statement(session.get_bind().dialect.name),
        [{"channel": channel, "seq": count} for channel, count in counts.items()],
    )
    return {channel: int(seq) for channel, seq in rows}


@cache
def _reserve_statement(dialect: str) -> ReturningInsert[str, int]:
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = ChannelSequence.__table__
    stmt = upsert(table).values(channel=bindparam("channel"), seq=bindparam("seq"))
    return stmt.on_conflict_do_update(
        index_elements=[table.c.channel], set_={"seq": table.c.seq + stmt.excluded.seq}
    ).returning(table.c.channel, table.c.seq)


async def read_since(
    session: AsyncSession, channel: str, since: int, limit: int = 1000
) -> Sequence[Event]:
    """Events of `channel` with seq > since, oldest first."""
    stmt = (
        select(Event)
        .where(Event.channel == channel, Event.seq > since)
        .order_by(Event.seq)
        .limit(limit)
    )
    return (await session.scalars(stmt)).all()


async def current_seqs(session: AsyncSession, channels: Iterable[str]) -> dict[str, int]:
    """The last committed seq of each channel (0 for a channel that never had an event)."""
    names = list(channels)
    if not names:
        return {}
    rows = await session.execute(
        select(ChannelSequence.channel, ChannelSequence.seq).where(
            ChannelSequence.channel.in_(names)
        )
    )
    found = {channel: int(seq) for channel, seq in rows}
    return {name: found.get(name, 0) for name in names}


async def oldest_retained_seq(session: AsyncSession, channel: str) -> int | None:
    stmt = select(func.min(Event.seq)).where(Event.channel == channel)
    value = (await session.execute(stmt)).scalar_one_or_none()
    return None if value is None else int(value)


# A trim's share of the write lock: one transaction removes at most this many events (a few
# milliseconds' work on SQLite), so webhooks take their turns in between.
TRIM_BATCH = 1000


async def trim(
    session: AsyncSession,
    keep_per_channel: int,
    max_age: timedelta,
    now: datetime | None = None,
    limit: int = TRIM_BATCH,
) -> int:
    """Drop up to `limit` events that are older than `max_age` or beyond the newest
    `keep_per_channel` of their channel; returns how many (fewer than `limit`: none are left).

    Two statements however many channels there are: only a channel whose seq has passed
    `keep_per_channel` can hold events beyond it, and an office with 50,000 conversations has
    as many channels. The counters in channel_sequences are never trimmed, so a client that is
    too far behind can always tell (its `since` is below the oldest retained seq) and is told
    to resync.
    """
    cutoff = (now or utcnow()) - max_age
    expired = select(Event.id).where(Event.created_at < cutoff).limit(limit)
    removed = await _delete(session, expired)
    if removed < limit:
        beyond = (
            select(Event.id)
            .join(ChannelSequence, ChannelSequence.channel == Event.channel)
            .where(
                ChannelSequence.seq > keep_per_channel,
                Event.seq <= ChannelSequence.seq - keep_per_channel,
            )
            .limit(limit - removed)
        )
        removed += await _delete(session, beyond)
    return removed


async def _delete(session: AsyncSession, ids: Select[tuple[int]]) -> int:
    # Not synchronizing the session's objects: it holds none, and finding which to expire would
    # have every deleted id sent back.
    statement = delete(Event).where(Event.id.in_(ids))
    result = await session.execute(statement, execution_options={"synchronize_session": False})
    return int(result.rowcount or 0)
