"""The realtime node of one server process: serves sockets, answers their ops, and carries
committed events and access changes between processes through the broker.

It is also the application's event publisher (`publish`, `access_changed`). The application
injects the policy and the history; the node chooses nothing about who sees what.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from realtime import protocol
from realtime.broker import Broker, MemoryBroker
from realtime.connection import Connection, Corker, SendLimits, Subscription
from realtime.ephemeral import PresenceTracker, TypingTracker
from realtime.ports import Envelope, History, Policy, Principal, Transport, TransportClosed
from realtime.presence import MemoryPresence, PresenceStore, RedisPresence
from realtime.redis_broker import RedisBroker, redis_client
from realtime.streams import StreamOptions, Streams

log = logging.getLogger("switchboard.realtime")

# What travels through the broker (msgpack lists).
_EVENT = 1  # [1, channel, seq, type, data]: a committed outbox event
_EPHEMERAL = 2  # [2, channel, type, data, exclude]: typing/presence, no seq
_ACCESS = 3  # [3, user_id]: re-check that user's live subscriptions

RESTART_REASON = f"server restarting; reconnect and {protocol.RESUME_HINT}"
# A socket remembers at most this many of the policy's answers (then starts afresh).
_MAX_DECISIONS = 1000
# Sockets whose access a sweep re-checks at once.
SWEEP_BATCH = 256


@dataclass(frozen=True)
class NodeOptions:
    max_frame_bytes: int = 64 * 1024
    max_subscriptions: int = 200
    max_bad_frames: int = 50
    send: SendLimits = field(default_factory=SendLimits)
    streams: StreamOptions = field(default_factory=StreamOptions)
    # Compare subscribed channels with the outbox this often (0: never), so events whose
    # publish was lost still arrive.
    poll_interval: float = 1.0
    typing_ttl: float = 6.0
    presence_ttl: float = 10.0
    presence_heartbeat: float = 3.0
    # Re-check every socket's access this often, in case an access change was not announced.
    access_sweep: float = 60.0
    control_channel: str = "_control"


class Node:
    def __init__(
        self,
        policy: Policy,
        history: History,
        broker: Broker | None = None,
        presence: PresenceStore | None = None,
        options: NodeOptions | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.options = options or NodeOptions()
        self._policy = policy
        self._broker: Broker = broker or MemoryBroker()
        self._presence_store: PresenceStore = presence or MemoryPresence()
        self._streams = Streams(
            history, self._broker.subscribe, self._broker.unsubscribe, self.options.streams
        )
        self._typing = TypingTracker(self.options.typing_ttl, self._publish_ephemeral)
        self._presence = PresenceTracker(self._presence_store, self._publish_ephemeral)
        self._connections: dict[str, Connection] = {}
        self._corker = Corker(self.options.send.flush_share)
        self._by_user: dict[int, set[Connection]] = {}
        self._ids = itertools.count(1)
        self._loops: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._published = 0
        self._slow_closed = 0
        self._all_gone = asyncio.Event()

    # Lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self._broker.start(self._on_broker_message, self._on_broker_reconnect)
        await self._broker.subscribe(self.options.control_channel)
        options = self.options
        if options.poll_interval > 0:
            self._loops.append(self._every(options.poll_interval, self._streams.poll))
        self._loops.append(self._every(min(0.5, options.typing_ttl / 4), self._typing.expire))
        self._loops.append(self._every(options.presence_heartbeat, self._presence_heartbeat))
        if options.access_sweep > 0:
            self._loops.append(self._every(options.access_sweep, self._recheck_all))

    async def drain(self) -> None:
        """Close every socket with a "reconnect" reason and wait (a bounded time) until they
        are gone; sockets opened from now on are closed the same way. Publishing goes on."""
        self._stopping = True
        for connection in list(self._connections.values()):
            connection.close(protocol.CLOSE_RESTART, RESTART_REASON)
        if self._connections:
            self._all_gone.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_gone.wait(), self.options.send.close_timeout)

    async def stop(self) -> None:
        """Drain the sockets, then stop the loops and the broker."""
        await self.drain()
        for task in [*self._loops, *self._background]:
            task.cancel()
        for task in [*self._loops, *self._background]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops = []
        await self._streams.close()
        await self._broker.stop()
        await self._presence_store.close()

    def _every(self, seconds: float, job: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    await job()
                except Exception as exc:
                    log.warning("realtime job %s failed (%s)", job.__name__, exc)

        return asyncio.create_task(loop(), name=f"realtime-{job.__name__}")

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def stats(self) -> dict[str, int]:
        return {
            "connections": len(self._connections),
            "subscriptions": sum(len(c.subs) for c in self._connections.values()),
            "channels": len(self._streams.names()),
            "events_published": self._published,
            "events_delivered": self._streams.delivered,
            "send_queue_depth": sum(c.queued for c in self._connections.values()),
            "slow_consumers_closed": self._slow_closed,
        }

    # The application's event publisher ------------------------------------------------------

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Committed outbox events, to every process's subscribers."""
        self._published += len(envelopes)
        await self._broker.publish(
            [
                (
                    e["channel"],
                    _pack([_EVENT, e["channel"], int(e["seq"]), e["type"], e["data"]]),
                )
                for e in envelopes
            ]
        )

    async def access_changed(self, user_id: int) -> None:
        """Re-check `user_id`'s sockets on every process, this one included."""
        await self._broker.publish([(self.options.control_channel, _pack([_ACCESS, user_id]))])

    async def _publish_ephemeral(
        self, channel: str, type: str, data: dict[str, Any], exclude: str | None
    ) -> None:
        await self._broker.publish([(channel, _pack([_EPHEMERAL, channel, type, data, exclude]))])

    def _on_broker_message(self, channel: str, payload: bytes) -> None:
        try:
            message = msgpack.unpackb(payload, raw=False)
            kind = message[0]
            if kind == _EVENT:
                _, name, seq, type, data = message
                self._streams.offer({"channel": name, "seq": seq, "type": type, "data": data})
            elif kind == _EPHEMERAL:
                _, name, type, data, exclude = message
                self._streams.ephemeral(name, protocol.event(name, type, data), exclude)
            elif kind == _ACCESS:
                self._spawn(self._recheck_user(int(message[1])))
        except Exception:
            log.exception("dropping a malformed broker message on %s", channel)

    def _on_broker_reconnect(self) -> None:
        """Anything may have been missed while the broker was away: catch up on all of it."""
        self._spawn(self._streams.poll())
        self._spawn(self._recheck_all())
        self._spawn(self._presence_heartbeat())

    # Sockets ------------------------------------------------------------------------------

    async def serve(self, transport: Transport, principal: Principal, encoding: str) -> None:
        """Run one accepted socket until it closes."""
        connection = Connection(
            f"{self.id}.{next(self._ids)}",
            principal,
            transport,
            encoding,
            self._corker,
            self.options.send,
        )
        self._connections[connection.key] = connection
        self._by_user.setdefault(principal.user_id, set()).add(connection)
        writer = asyncio.create_task(connection.write_loop())
        writer.add_done_callback(lambda task: self._writer_done(connection, task))
        if self._stopping:
            connection.close(protocol.CLOSE_RESTART, RESTART_REASON)
        try:
            while (data := await transport.receive()) is not None:
                if not connection.closing:
                    await self._on_frame(connection, data)
        except TransportClosed:
            pass
        finally:
            closed_by_us = connection.closing
            connection.abandon()
            if not closed_by_us:
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):
                await asyncio.wait_for(writer, self.options.send.close_timeout)
            await self._forget(connection)

    def _writer_done(self, connection: Connection, writer: asyncio.Task[None]) -> None:
        """A writer that failed unexpectedly drops its socket rather than leave it mute."""
        if writer.cancelled() or writer.exception() is None:
            return
        log.error("writing to %s failed", connection.key, exc_info=writer.exception())
        connection.abandon()
        self._spawn(self._close_quietly(connection.transport))

    async def _close_quietly(self, transport: Transport) -> None:
        try:
            async with asyncio.timeout(self.options.send.close_timeout):
                await transport.close(1011, "internal error; reconnect")
        except Exception:
            transport.abort()

    async def _forget(self, connection: Connection) -> None:
        self._connections.pop(connection.key, None)
        if connection.close_code == protocol.CLOSE_SLOW:
            self._slow_closed += 1
        same_user = self._by_user.get(connection.principal.user_id)
        if same_user is not None:
            same_user.discard(connection)
            if not same_user:
                del self._by_user[connection.principal.user_id]
        for sub in connection.subs.values():
            self._streams.remove(sub)
        connection.subs.clear()
        try:
            await self._typing.stop(connection.key)
            await self._presence.leave(connection.key)
        except Exception as exc:
            log.warning("clearing typing/presence of %s failed (%s)", connection.key, exc)
        if not self._connections:
            self._all_gone.set()

    async def _on_frame(self, connection: Connection, data: bytes | str) -> None:
        limit = self.options.max_frame_bytes
        size = (
            len(data) if isinstance(data, bytes) or len(data) * 4 <= limit else len(data.encode())
        )
        if size > limit:
            connection.close(protocol.CLOSE_TOO_BIG, f"frame larger than {limit} bytes", flush=True)
            return
        try:
            await self._dispatch(
                connection, protocol.parse(protocol.decode(data, connection.encoding))
            )
        except protocol.FrameError as exc:
            connection.bad_frames += 1
            connection.send(protocol.error(exc.code, exc.detail, exc.channel))
            if connection.bad_frames > self.options.max_bad_frames:
                connection.close(protocol.CLOSE_POLICY, "too many bad frames", flush=True)
        except _Unavailable as exc:
            log.warning("checking access to %s failed (%s)", exc.channel, exc.__cause__)
            connection.send(protocol.error("unavailable", "try again", exc.channel))
        except Exception:
            log.exception("a frame from %s failed", connection.key)
            connection.send(protocol.error("unavailable", "the server could not do this now"))

    async def _dispatch(self, connection: Connection, op: protocol.ClientOp) -> None:
        if isinstance(op, protocol.Subscribe):
            await self._subscribe(connection, op.channel, op.since)
        elif isinstance(op, protocol.Unsubscribe):
            sub = connection.subs.pop(op.channel, None)
            if sub is not None:
                self._streams.remove(sub)
        elif isinstance(op, protocol.Typing):
            if await self._may_use(connection, op.conversation):
                await self._typing.typing(op.conversation, connection.key, connection.principal)
        elif isinstance(op, protocol.Viewing):
            if op.conversation is None or await self._may_use(connection, op.conversation):
                await self._presence.view(connection.key, connection.principal, op.conversation)
        else:
            connection.send(protocol.PONG)

    async def _subscribe(self, connection: Connection, channel: str, since: int | None) -> None:
        previous = connection.subs.pop(channel, None)
        if previous is not None:
            self._streams.remove(previous)
        if len(connection.subs) >= self.options.max_subscriptions:
            raise protocol.FrameError(
                f"at most {self.options.max_subscriptions} subscriptions per socket",
                "too_many_subscriptions",
                channel,
            )
        epoch = connection.access_epoch
        if not await self._authorized(connection, channel):
            connection.send(protocol.error("forbidden", "you may not see this channel", channel))
            return
        try:
            stream = await self._streams.attach(channel)
        except Exception as exc:
            log.warning("opening %s failed (%s)", channel, exc)
            connection.send(protocol.error("unavailable", "try subscribing again", channel))
            return
        try:
            current = await self._streams.current(stream)
            # Access was re-checked while we waited: the answer above may be stale.
            while epoch != connection.access_epoch:
                epoch = connection.access_epoch
                if not await self._authorized(connection, channel):
                    self._streams.release(stream)
                    connection.send(
                        protocol.error("forbidden", "you may not see this channel", channel)
                    )
                    return
        except Exception:
            self._streams.release(stream)
            raise
        presence = await self._presence_snapshot(channel)
        if connection.closing or channel in connection.subs:
            self._streams.release(stream)
            return
        sub = Subscription(connection, channel, last=current)
        connection.subs[channel] = sub
        connection.send(protocol.subscribed(channel, current))
        if presence is not None:
            connection.send(presence, channel)
        self._streams.add(stream, sub, current, since)

    async def _presence_snapshot(self, channel: str) -> protocol.Frame | None:
        """Who views the conversation of `channel` (None for other channels, or on failure)."""
        conversation = protocol.conversation_id(channel)
        if conversation is None:
            return None
        try:
            return await self._presence.current(conversation)
        except Exception as exc:
            log.warning("reading presence of %s failed (%s)", channel, exc)
            return None

    async def _authorized(self, connection: Connection, channel: str) -> bool:
        """The policy's answer, remembered until the socket's access is next re-checked."""
        known = connection.decisions.get(channel)
        if known is not None:
            return known
        epoch = connection.access_epoch
        try:
            decisions = await self._policy.authorize(connection.principal, [channel])
        except Exception as exc:
            raise _Unavailable(channel) from exc
        allowed = decisions.get(channel, False)
        if epoch == connection.access_epoch:
            if len(connection.decisions) >= _MAX_DECISIONS:
                connection.decisions.clear()
            connection.decisions[channel] = allowed
        return allowed

    async def _may_use(self, connection: Connection, conversation: int) -> bool:
        """May this socket type in / view `conversation`? (remembered until access changes)."""
        channel = protocol.conversation_channel(conversation)
        while True:
            epoch = connection.access_epoch
            allowed = await self._authorized(connection, channel)
            if epoch == connection.access_epoch:
                break
        if not allowed:
            connection.send(protocol.error("forbidden", "you may not see this channel", channel))
        return allowed

    # Access changes ---------------------------------------------------------------------------

    async def _recheck_user(self, user_id: int) -> None:
        for connection in list(self._by_user.get(user_id, ())):
            await self._recheck(connection)

    async def _recheck_all(self) -> None:
        """Re-check every socket, `SWEEP_BATCH` at a time: the policy gets their questions
        together and can answer them with a few reads, where one socket after another cost a
        read each (2.7 s of CPU a sweep for 2,000 sockets)."""
        connections = list(self._connections.values())
        for start in range(0, len(connections), SWEEP_BATCH):
            batch = connections[start : start + SWEEP_BATCH]
            await asyncio.gather(*(self._recheck_quietly(connection) for connection in batch))

    async def _recheck_quietly(self, connection: Connection) -> None:
        try:
            await self._recheck(connection)
        except Exception as exc:
            log.warning("re-checking access of %s failed (%s)", connection.key, exc)

    async def _recheck(self, connection: Connection) -> None:
        """Cut each subscription (and typing/viewing) the policy no longer allows."""
        connection.access_epoch += 1
        connection.decisions.clear()
        subs = dict(connection.subs)
        viewing = self._presence.viewing(connection.key)
        typing = self._typing.conversations(connection.key)
        used = {protocol.conversation_channel(c) for c in typing}
        if viewing is not None:
            used.add(protocol.conversation_channel(viewing))
        asked = sorted(set(subs) | used)
        if not asked:
            return
        decisions = await self._policy.authorize(connection.principal, asked)
        denied = {channel for channel in asked if not decisions.get(channel, False)}
        if not denied:
            return
        signed_in = await self._policy.session_valid(connection.principal)
        reason = "access_removed" if signed_in else "signed_out"
        for channel, sub in subs.items():
            if channel in denied and connection.subs.get(channel) is sub:
                self._revoke(connection, sub, reason)
        for conversation in typing:
            if protocol.conversation_channel(conversation) in denied:
                await self._typing.stop(connection.key, conversation)
        if (
            viewing is not None
            and protocol.conversation_channel(viewing) in denied
            and self._presence.viewing(connection.key) == viewing
        ):
            await self._presence.leave(connection.key)

    def _revoke(self, connection: Connection, sub: Subscription, reason: str) -> None:
        """Say `access.revoked` on the channel; nothing more of it reaches this socket."""
        channel = sub.channel
        del connection.subs[channel]
        self._streams.remove(sub)
        connection.purge(channel)
        connection.send(
            protocol.event(channel, "access.revoked", {"channel": channel, "reason": reason})
        )

    async def _presence_heartbeat(self) -> None:
        watched = [
            cid
            for name in self._streams.names()
            if (cid := protocol.conversation_id(name)) is not None
        ]
        await self._presence.heartbeat(watched)


class _Unavailable(Exception):
    """The policy could not be asked (the database is down, say)."""

    def __init__(self, channel: str) -> None:
        super().__init__(channel)
        self.channel = channel


def _pack(message: list[Any]) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def create_node(
    policy: Policy,
    history: History,
    *,
    redis_url: str | None = None,
    redis_prefix: str = "switchboard:",
    options: NodeOptions | None = None,
) -> Node:
    """A node on the in-process broker, or on Redis when `redis_url` is given."""
    options = options or NodeOptions()
    if not redis_url:
        return Node(policy, history, options=options)
    broker = RedisBroker(redis_url, redis_prefix)
    presence = RedisPresence(redis_client(redis_url), redis_prefix, options.presence_ttl)
    return Node(policy, history, broker, presence, options)
