"""One client socket: its subscriptions, and a bounded send queue for when the socket is full.

Fan-out writes an already-framed message into the socket's buffer (no task, no await per
recipient), corked: what a socket gets between two flushes (the events of one transaction, or
of several published close together) goes out in one write, one system call (see Corker).
Only while the socket's buffer is past its high-water mark (the client reads slower than
events come) do frames wait in the connection's own queue, which one writer task drains as the
client catches up. Past the queue's bound the connection is closed with 4008 and a reason
telling it to resume with `since`, so it neither grows memory nor delays anyone else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from realtime import protocol
from realtime.ports import Principal, Transport, TransportClosed

log = logging.getLogger("switchboard.realtime")

SLOW_CONSUMER_REASON = f"slow consumer; {protocol.RESUME_HINT}"


@dataclass(frozen=True, slots=True)
class SendLimits:
    max_frames: int = 2000
    max_bytes: int = 4 * 1024 * 1024
    # Replays wait until the queue is this short (in frames and bytes) before adding more.
    low_water: int = 200
    low_water_bytes: int = 512 * 1024
    # A socket that stays full (the client reads nothing) this long is stalled.
    send_timeout: float = 10.0
    # The most of the event loop's time that writing to sockets may take (see Corker).
    flush_share: float = 0.25
    close_timeout: float = 5.0


class Corker:
    """The connections written to since the last flush, each flushed with one write.

    A write is a system call that costs far more than the frames it carries, so under load it
    is worth carrying many. A flush happens at the end of the event loop's turn, but flushing
    may take at most `share` of the loop's time: after a flush that took d seconds, the next
    waits until d / share after it began. A few sockets, or events far apart, go out at once;
    a thousand sockets under a stream of events get a write per socket every few tens of
    milliseconds, each carrying everything that came meanwhile.
    """

    def __init__(self, share: float) -> None:
        self._share = share
        self._corked: list[Connection] = []
        self._next_flush = 0.0

    def add(self, connection: Connection) -> None:
        if not self._corked:
            loop = asyncio.get_running_loop()
            delay = self._next_flush - time.monotonic()
            if delay > 0:
                loop.call_later(delay, self._flush)
            else:
                loop.call_soon(self._flush)
        self._corked.append(connection)

    def _flush(self) -> None:
        # The clock, not loop.time(): uvloop's advances only between turns of the loop.
        began = time.monotonic()
        corked, self._corked = self._corked, []
        for connection in corked:
            connection.flush()
        self._next_flush = began + (time.monotonic() - began) / self._share


@dataclass(eq=False, slots=True)
class Subscription:
    """A connection's interest in one channel, and the last seq sent on it."""

    connection: Connection
    channel: str
    last: int
    # Live: fan-out sends to it. Until then a replay from the outbox is catching it up.
    live: bool = False
    active: bool = True
    catch_up: asyncio.Task[None] | None = None


@dataclass(eq=False)
class Connection:
    key: str
    principal: Principal
    transport: Transport
    encoding: str
    corker: Corker
    limits: SendLimits = field(default_factory=SendLimits)
    subs: dict[str, Subscription] = field(default_factory=dict)
    # Bumped whenever this user's access is re-checked, so an authorization that raced a
    # revocation is noticed and redone.
    access_epoch: int = 0
    # The policy's answers for this socket's channels, until the next access check: a socket
    # that subscribes, types or views again and again costs the policy one question each.
    decisions: dict[str, bool] = field(default_factory=dict)
    viewing: int | None = None
    bad_frames: int = 0

    def __post_init__(self) -> None:
        self._corked: list[bytes] = []
        self._queue: deque[tuple[str | None, bytes]] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._close: tuple[int, str] | None = None

    @property
    def closing(self) -> bool:
        return self._close is not None

    @property
    def close_code(self) -> int | None:
        return self._close[0] if self._close is not None else None

    def send(self, frame: protocol.Frame, channel: str | None = None) -> None:
        """Write a frame now, or queue it (tagged with its channel, so a revocation can take
        it back) behind frames the socket has not taken yet."""
        if self._close is not None:
            return
        data = frame.wire(self.encoding)
        if not self._queue and self.transport.writable:
            if not self._corked:
                self.corker.add(self)
            self._corked.append(data)
            return
        self._queue.append((channel, data))
        self._queued_bytes += len(data)
        if len(self._queue) > self.limits.max_frames or self._queued_bytes > self.limits.max_bytes:
            log.info("closing slow consumer %s (%d frames queued)", self.key, len(self._queue))
            self.close(protocol.CLOSE_SLOW, SLOW_CONSUMER_REASON)
            return
        if not self.has_room:
            self._drained.clear()
        self._wakeup.set()

    def flush(self) -> None:
        """Write what was corked since the last flush, in one write."""
        if not self._corked:
            return
        corked = self._corked
        self._corked = []
        try:
            self.transport.write(corked[0] if len(corked) == 1 else b"".join(corked))
        except TransportClosed:
            self.abandon()

    def purge(self, channel: str) -> None:
        """Take back the frames of `channel` not yet written to the socket."""
        kept = deque(item for item in self._queue if item[0] != channel)
        self._queue = kept
        self._queued_bytes = sum(len(data) for _, data in kept)
        self._note_drain()

    def close(self, code: int, reason: str, flush: bool = False) -> None:
        """Close the socket with `code` and `reason` (once), after writing what is queued when
        `flush`, else dropping it. Nothing more is queued from now on."""
        if self._close is not None:
            return
        self._close = (code, reason)
        if not flush:
            self._drop_queue()
        self._drained.set()
        self._wakeup.set()

    def _drop_queue(self) -> None:
        self._corked.clear()
        self._queue.clear()
        self._queued_bytes = 0

    def abandon(self) -> None:
        """The client has gone: stop queuing, nothing to close."""
        if self._close is None:
            self._close = (protocol.CLOSE_NORMAL, "")
        self._drop_queue()
        self._drained.set()

    @property
    def queued(self) -> int:
        """Frames waiting to be written."""
        return len(self._queue)

    @property
    def has_room(self) -> bool:
        """Short enough a queue for a replay to add to it."""
        return (
            len(self._queue) <= self.limits.low_water
            and self._queued_bytes <= self.limits.low_water_bytes
        )

    async def wait_drained(self) -> None:
        """Until the queue has room again (or the connection is closing)."""
        await self._drained.wait()

    def _note_drain(self) -> None:
        if self.has_room:
            self._drained.set()

    async def write_loop(self) -> None:
        """Write queued frames in order as the socket takes them; then, if asked to, close."""
        try:
            while self._close is None or self._queue:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    if not self.transport.writable:
                        try:
                            async with asyncio.timeout(self.limits.send_timeout):
                                await self.transport.wait_writable()
                        except TimeoutError:
                            log.info("closing stalled consumer %s", self.key)
                            self.close(protocol.CLOSE_SLOW, SLOW_CONSUMER_REASON)
                            self._drop_queue()
                            break
                    self._write_queued()
            assert self._close is not None
            self.flush()
            code, reason = self._close
            # Waiting for the close is bounded, the close itself is not cut short: a transport
            # cancelled mid-close can stay half-closed for good. A close frame still stuck
            # behind a client that reads nothing when the wait ends is given up on: the
            # connection is dropped.
            closing = asyncio.ensure_future(self.transport.close(code, reason))
            closing.add_done_callback(_consume)
            try:
                await asyncio.wait_for(asyncio.shield(closing), self.limits.close_timeout)
            except TimeoutError:
                self.transport.abort()
            except TransportClosed:
                pass
        except TransportClosed:
            self.abandon()

    def _write_queued(self) -> None:
        """Move queued frames into the socket (after what is corked) while it is writable."""
        self.flush()
        queue = self._queue
        while queue and self.transport.writable:
            _, data = queue.popleft()
            self._queued_bytes -= len(data)
            self.transport.write(data)
        self._note_drain()


def _consume(task: asyncio.Future[None]) -> None:
    """Retrieve the outcome of a close nobody waits for any more."""
    if not task.cancelled():
        task.exception()
