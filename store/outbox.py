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
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import ChannelSequence, Event, utcnow

_PENDING_KEY = "outbox.pending"
_ORIGIN_KEY = "outbox.origin"


@dataclass(frozen=True, slots=True)
class PendingEvent:
    channel: str
    type: str
    data: dict[str, Any]
    origin: str | None


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


async def write_pending(session: AsyncSession) -> list[tuple[Event, str | None]]:
    """Assign seqs to the queued events and insert them; call right before commit.

    The events are inserted in one statement (executemany) and returned unattached to the
    session with their origins, in the order the service emitted them, which is the order to
    publish them in.
    """
    pending: list[PendingEvent] = session.info.pop(_PENDING_KEY, [])
    if not pending:
        return []
    by_channel: dict[str, list[int]] = {}
    for index, item in enumerate(pending):
        by_channel.setdefault(item.channel, []).append(index)
    now = utcnow()
    channels = sorted(by_channel)
    lasts = await _reserve(session, {channel: len(by_channel[channel]) for channel in channels})
    written: list[Event | None] = [None] * len(pending)
    for channel in channels:
        indexes = by_channel[channel]
        first = lasts[channel] - len(indexes) + 1
        for offset, index in enumerate(indexes):
            item = pending[index]
            written[index] = Event(
                channel=channel, seq=first + offset, type=item.type, data=item.data, created_at=now
            )
    events = [event for event in written if event is not None]
    await session.execute(
        insert(Event.__table__),
        [
            {"channel": e.channel, "seq": e.seq, "type": e.type, "data": e.data, "created_at": now}
            for e in events
        ],
    )
    return [(event, item.origin) for event, item in zip(events, pending, strict=True)]


async def _reserve(session: AsyncSession, counts: dict[str, int]) -> dict[str, int]:
    """Bump each channel's counter by its count (one upsert, rows in the given order, which
    is the order their locks are taken in) and return each new last seq.

    Written for one row and run with every row's parameters, so the statement compiles once
    per process (a many-row VALUES would compile anew for each count of channels)."""
    dialect = session.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = ChannelSequence.__table__
    stmt = upsert(table).values(channel=bindparam("channel"), seq=bindparam("seq"))
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.channel], set_={"seq": table.c.seq + stmt.excluded.seq}
    ).returning(table.c.channel, table.c.seq)
    rows = await session.execute(
        stmt, [{"channel": channel, "seq": count} for channel, count in counts.items()]
    )
    return {channel: int(seq) for channel, seq in rows}


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


async def trim(
    session: AsyncSession, keep_per_channel: int, max_age: timedelta, now: datetime | None = None
) -> int:
    """Drop events older than `max_age` and beyond the newest `keep_per_channel` of a channel.

    The counters in channel_sequences are never trimmed, so a client that is too far behind can
    always tell (its `since` is below the oldest retained seq) and is told to resync.
    """
    cutoff = (now or utcnow()) - max_age
    removed = (await session.execute(delete(Event).where(Event.created_at < cutoff))).rowcount
    heads = select(ChannelSequence.channel, ChannelSequence.seq)
    for channel, seq in (await session.execute(heads)).all():
        result = await session.execute(
            delete(Event).where(Event.channel == channel, Event.seq <= seq - keep_per_channel)
        )
        removed += result.rowcount
    return int(removed or 0)
