"""Sequenced channels in one process: a gap-free, ordered stream per channel with local
subscribers, fanned out to their sockets, and replays that join it without gap or duplicate.

Each stream has a `head`: the last seq this process has fanned out. Only `head + 1` is ever
fanned out; a later event waits in `pending` while the gap is fetched from the outbox (the
outbox hands out seq N+1 only after N is committed, so a gap is always fetchable). Streams are
also polled against the outbox's heads, which brings in events whose publish was lost.

A subscriber is `live` once its `last` seq has reached the stream's head; until then a replay
reads the outbox from its `since`. Fan-out skips any seq a subscriber already has, so the seam
between replay and live has neither gap nor duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from realtime import protocol
from realtime.connection import Subscription
from realtime.ports import Envelope, History

log = logging.getLogger("switchboard.realtime")

_MAX_PENDING = 10_000
_HEADS_CHUNK = 500


@dataclass(eq=False)
class Stream:
    name: str
    subs: set[Subscription] = field(default_factory=set)
    head: int | None = None  # None until the outbox has told us where the channel stands
    pending: dict[int, Envelope] = field(default_factory=dict)
    target: int = 0  # a seq known to be committed, that the head must reach
    filler: asyncio.Task[None] | None = None
    ready: asyncio.Future[None] | None = None
    refs: int = 0


@dataclass(frozen=True, slots=True)
class StreamOptions:
    replay_batch: int = 500
    # How long a gap may stay open before the outbox is asked (events published by different
    # processes may arrive slightly out of order).
    gap_grace: float = 0.2


class Streams:
    def __init__(
        self,
        history: History,
        subscribe: Callable[[str], Awaitable[None]],
        unsubscribe: Callable[[str], Awaitable[None]],
        options: StreamOptions,
    ) -> None:
        self._history = history
        self._subscribe = subscribe
        self._unsubscribe = unsubscribe
        self._options = options
        self._streams: dict[str, Stream] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.delivered = 0

    def __contains__(self, channel: str) -> bool:
        return channel in self._streams

    def get(self, channel: str) -> Stream | None:
        return self._streams.get(channel)

    def names(self) -> list[str]:
        return list(self._streams)

    # Joining and leaving ------------------------------------------------------------------

    async def attach(self, channel: str) -> Stream:
        """The stream of `channel`, subscribed at the broker and positioned at its head."""
        stream = self._streams.get(channel)
        if stream is None:
            stream = Stream(channel)
            self._streams[channel] = stream
            stream.ready = asyncio.ensure_future(self._open(stream))
        stream.refs += 1
        assert stream.ready is not None
        try:
            await asyncio.shield(stream.ready)
        except BaseException:
            self.release(stream)
            raise
        return stream

    async def _open(self, stream: Stream) -> None:
        # Broker first, then the head: anything committed after the head is read will arrive
        # live (or be fetched as a gap), anything before it is in the outbox.
        await self._subscribe(stream.name)
        heads = await self._history.heads([stream.name])
        stream.head = heads.get(stream.name, 0)
        self._drain_pending(stream)

    def release(self, stream: Stream) -> None:
        stream.refs -= 1
        if stream.refs > 0 or self._streams.get(stream.name) is not stream:
            return
        del self._streams[stream.name]
        if stream.filler is not None:
            stream.filler.cancel()
        if stream.ready is not None and not stream.ready.done():
            stream.ready.cancel()
        self._spawn(self._leave_broker(stream.name))

    async def _leave_broker(self, channel: str) -> None:
        if channel not in self._streams:  # unless a new subscriber came meanwhile
            await self._unsubscribe(channel)

    async def current(self, stream: Stream) -> int:
        """The channel's current seq: the outbox's, which this process's stream may trail."""
        assert stream.head is not None
        committed = (await self._history.heads([stream.name])).get(stream.name, 0)
        self._want(stream, committed)
        return max(committed, stream.head)

    def add(self, stream: Stream, sub: Subscription, current: int, since: int | None) -> None:
        """Join `sub` to the stream: live after `current` at once, or after a replay from
        `since` (`resync` when `since` is ahead of `current`)."""
        assert stream.head is not None
        stream.subs.add(sub)
        if since is None or since == current:
            sub.last = max(current, stream.head)
            sub.live = True
        elif since > current:
            self._resync(stream, sub)
        else:
            sub.catch_up = asyncio.create_task(self._catch_up(stream, sub, since))

    def remove(self, sub: Subscription) -> None:
        sub.active = False
        if sub.catch_up is not None:
            sub.catch_up.cancel()
            sub.catch_up = None
        stream = self._streams.get(sub.channel)
        if stream is not None and sub in stream.subs:
            stream.subs.discard(sub)
            self.release(stream)

    # Events -------------------------------------------------------------------------------

    def offer(self, envelope: Envelope) -> None:
        """An event from the broker (or the outbox); in-order, de-duplicated by seq."""
        stream = self._streams.get(envelope["channel"])
        if stream is not None:
            self._offer(stream, envelope)

    def ephemeral(self, channel: str, frame: protocol.Frame, exclude: str | None) -> None:
        """A frame with no seq (typing, presence) to the channel's sockets but `exclude`."""
        stream = self._streams.get(channel)
        if stream is None:
            return
        for sub in stream.subs:
            if sub.connection.key != exclude:
                sub.connection.send(frame, channel)

    def _offer(self, stream: Stream, envelope: Envelope) -> None:
        seq = int(envelope["seq"])
        if stream.head is None:
            if len(stream.pending) < _MAX_PENDING:
                stream.pending[seq] = envelope
            return
        if seq <= stream.head:
            return
        if seq == stream.head + 1:
            self._deliver(stream, envelope)
            self._drain_pending(stream)
            return
        if len(stream.pending) < _MAX_PENDING:
            stream.pending[seq] = envelope
        self._want(stream, seq - 1)

    def _deliver(self, stream: Stream, envelope: Envelope) -> None:
        seq = int(envelope["seq"])
        stream.head = seq
        frame = protocol.event(stream.name, envelope["type"], envelope["data"], seq)
        for sub in stream.subs:
            # Live subscribers are never behind the head, so this is seq == last + 1.
            if sub.live and sub.last < seq:
                sub.last = seq
                sub.connection.send(frame, stream.name)
                self.delivered += 1

    def _drain_pending(self, stream: Stream) -> None:
        pending = stream.pending
        if not pending or stream.head is None:
            return
        while (envelope := pending.pop(stream.head + 1, None)) is not None:
            self._deliver(stream, envelope)
        for seq in [seq for seq in pending if seq <= stream.head]:
            del pending[seq]
        if pending:
            self._want(stream, min(pending) - 1)

    # Catching the stream up from the outbox -------------------------------------------------

    def want(self, channel: str, seq: int) -> None:
        """`seq` is committed on `channel`: make sure this process delivers up to it."""
        stream = self._streams.get(channel)
        if stream is not None:
            self._want(stream, seq)

    def _want(self, stream: Stream, seq: int) -> None:
        if stream.head is not None and seq <= stream.head:
            return
        stream.target = max(stream.target, seq)
        if stream.filler is None:
            stream.filler = asyncio.create_task(self._fill(stream))

    async def _fill(self, stream: Stream) -> None:
        try:
            await asyncio.sleep(self._options.gap_grace)
            while (
                self._streams.get(stream.name) is stream
                and stream.head is not None
                and stream.head < stream.target
            ):
                events = await self._history.since(
                    stream.name, stream.head, self._options.replay_batch
                )
                if not events:
                    break
                first = int(events[0]["seq"])
                if first > stream.head + 1:
                    self._jump(stream, first - 1)
                for envelope in events:
                    self._offer(stream, envelope)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("catching up %s from the outbox failed (%s); will retry", stream.name, exc)
        finally:
            stream.filler = None

    def _jump(self, stream: Stream, head: int) -> None:
        """Events up to `head` are gone from the outbox: live subscribers must resync."""
        stream.head = head
        for sub in stream.subs:
            if sub.live and sub.last < head:
                sub.last = head
                sub.connection.send(protocol.resync(stream.name), stream.name)

    async def poll(self) -> None:
        """Compare every positioned stream with the outbox's heads; fetch what is missing."""
        names = [name for name, stream in self._streams.items() if stream.head is not None]
        for start in range(0, len(names), _HEADS_CHUNK):
            heads = await self._history.heads(names[start : start + _HEADS_CHUNK])
            for name, head in heads.items():
                self.want(name, head)

    # Replays ----------------------------------------------------------------------------------

    async def _catch_up(self, stream: Stream, sub: Subscription, since: int) -> None:
        """Replay the outbox after `since` until it runs dry and the stream is reached."""
        connection = sub.connection
        channel = stream.name
        try:
            sub.last = since
            while sub.active:
                events = await self._history.since(channel, sub.last, self._options.replay_batch)
                if not sub.active:
                    return
                if events and int(events[0]["seq"]) != sub.last + 1:
                    self._resync(stream, sub)  # the gap is older than the retained backlog
                    return
                for envelope in events:
                    if not connection.has_room:
                        await connection.wait_drained()
                        if not sub.active:
                            return
                    seq = int(envelope["seq"])
                    if seq != sub.last + 1:
                        break
                    connection.send(
                        protocol.event(channel, envelope["type"], envelope["data"], seq), channel
                    )
                    sub.last = seq
                if len(events) == self._options.replay_batch:
                    continue
                assert stream.head is not None
                if sub.last >= stream.head:
                    sub.live = True  # no await since the check: the seam is exact
                    # The outbox was ahead of this process's stream: bring the stream along.
                    self._want(stream, sub.last)
                    return
                if not events:
                    self._resync(stream, sub)  # the stream is ahead, the outbox lost it
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("replaying %s failed (%s); asking the client to resync", channel, exc)
            if sub.active:
                self._resync(stream, sub)
        finally:
            sub.catch_up = None

    def _resync(self, stream: Stream, sub: Subscription) -> None:
        assert stream.head is not None
        sub.connection.send(protocol.resync(stream.name), stream.name)
        sub.last = stream.head
        sub.live = True

    # Lifecycle ----------------------------------------------------------------------------

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        for stream in self._streams.values():
            if stream.filler is not None:
                stream.filler.cancel()
            for sub in stream.subs:
                if sub.catch_up is not None:
                    sub.catch_up.cancel()
        self._streams.clear()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
