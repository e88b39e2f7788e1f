"""Redis pub/sub as the broker between server processes.

One pub/sub connection per process, subscribed only to the channels that have local
subscribers (plus whatever the node always wants, such as its control channel). The
connection reconnects by itself with backoff, resubscribes, and reports each (re)connection so
the node can catch up from the outbox. Publishing never waits for Redis: payloads are queued
and a sender pipelines them; when Redis is down they are dropped (the outbox still has them).
Every channel name is prefixed, so deployments and test runs can share one Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from realtime.broker import MessageHandler, ReconnectHandler

log = logging.getLogger("switchboard.realtime.redis")

_ORIGIN_BYTES = 8
_PUBLISH_BATCH = 500
_CONFIRM_TIMEOUT = 2.0


def redis_client(url: str) -> aioredis.Redis:
    """A client that fails fast instead of retrying: callers decide what an outage means."""
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=5,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


class RedisBroker:
    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        queue_size: int = 20_000,
        idle_ping: float = 5.0,
        backoff_max: float = 2.0,
    ) -> None:
        self._url = url
        self._prefix = prefix
        self._origin = os.urandom(_ORIGIN_BYTES)
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(queue_size)
        self._idle_ping = idle_ping
        self._backoff_max = backoff_max
        self._wanted: set[str] = set()  # channels this process has subscribers on
        self._active: set[str] = set()  # channels the current pub/sub connection was sent
        self._wanted_changed = asyncio.Event()
        self._confirmations: dict[str, list[asyncio.Future[None]]] = {}
        self._pubsub: PubSub | None = None
        self._command_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._on_message: MessageHandler | None = None
        self._on_reconnect: ReconnectHandler | None = None
        self._publish_failing = False
        self.connected = asyncio.Event()
        self.client: aioredis.Redis | None = None

    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        self._on_message = on_message
        self._on_reconnect = on_reconnect
        self.client = redis_client(self._url)
        self._tasks = [
            asyncio.create_task(self._listen(), name="redis-broker-listen"),
            asyncio.create_task(self._send(), name="redis-broker-send"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    # Publishing ---------------------------------------------------------------------------

    async def publish(self, items: Sequence[tuple[str, bytes]]) -> None:
        handler = self._on_message
        for channel, payload in items:
            if handler is not None and channel in self._wanted:
                handler(channel, payload)
            try:
                self._queue.put_nowait((self._prefix + channel, self._origin + payload))
            except asyncio.QueueFull:
                log.warning("redis publish queue full; dropping a payload for %s", channel)

    async def _send(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _PUBLISH_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                assert self.client is not None
                async with self.client.pipeline(transaction=False) as pipe:
                    for name, payload in batch:
                        pipe.publish(name, payload)
                    await pipe.execute()
                if self._publish_failing:
                    log.info("redis publishing works again")
                self._publish_failing = False
            except Exception as exc:
                if not self._publish_failing:
                    log.warning(
                        "redis publish failed (%s); subscribers catch up from the outbox", exc
                    )
                self._publish_failing = True
                await asyncio.sleep(0.05)

    # Subscribing --------------------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        self._wanted.add(channel)
        self._wanted_changed.set()
        await self._reconcile(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)
        await self._reconcile(channel)

    async def _reconcile(self, channel: str) -> None:
        """Make the live pub/sub connection match `_wanted` for `channel`, whatever the order
        in which subscribes and unsubscribes ran; wait for Redis to confirm a subscribe."""
        confirmed: asyncio.Future[None] | None = None
        try:
            async with self._command_lock:
                pubsub = self._pubsub
                if pubsub is None:
                    return  # done on (re)connection; the node polls meanwhile
                name = self._prefix + channel
                if channel in self._wanted and channel not in self._active:
                    confirmed = asyncio.get_running_loop().create_future()
                    self._confirmations.setdefault(channel, []).append(confirmed)
                    self._active.add(channel)
                    await pubsub.subscribe(name)
                elif channel not in self._wanted and channel in self._active:
                    self._active.discard(channel)
                    await pubsub.unsubscribe(name)
            if confirmed is not None:
                await asyncio.wait_for(asyncio.shield(confirmed), _CONFIRM_TIMEOUT)
        except Exception as exc:
            log.warning("redis (un)subscribe of %s failed (%s); relying on polling", channel, exc)
        finally:
            waiting = self._confirmations.get(channel, [])
            if confirmed in waiting:
                waiting.remove(confirmed)
            if not waiting:
                self._confirmations.pop(channel, None)

    async def _listen(self) -> None:
        delay = 0.05
        failing = False
        while True:
            while not self._wanted:
                self._wanted_changed.clear()
                await self._wanted_changed.wait()
            assert self.client is not None
            pubsub = self.client.pubsub()
            self._pubsub = pubsub
            try:
                async with self._command_lock:
                    self._active = set(self._wanted)
                    await pubsub.subscribe(*(self._prefix + name for name in self._active))
                self.connected.set()
                if failing:
                    log.info("redis pub/sub reconnected")
                failing = False
                delay = 0.05
                if self._on_reconnect is not None:
                    self._on_reconnect()
                await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("redis pub/sub connection lost (%s); reconnecting", exc)
                failing = True
            finally:
                self._pubsub = None
                self._active = set()
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max)

    async def _read(self, pubsub: PubSub) -> None:
        """Dispatch messages until the connection fails; pings when idle to notice a dead one."""
        last_seen = time.monotonic()
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=self._idle_ping)
            now = time.monotonic()
            if message is None:
                if pinged and now - last_seen > 2 * self._idle_ping:
                    raise ConnectionError("redis stopped answering pings")
                if not pinged:
                    async with self._command_lock:
                        await pubsub.ping()
                    pinged = True
                continue
            last_seen = now
            pinged = False
            kind = message["type"]
            name = _text(message["channel"]) if message["channel"] is not None else ""
            if not name.startswith(self._prefix):
                continue
            channel = name[len(self._prefix) :]
            if kind == "message":
                data = message["data"]
                if data[:_ORIGIN_BYTES] != self._origin and self._on_message is not None:
                    self._on_message(channel, data[_ORIGIN_BYTES:])
            elif kind == "subscribe":
                for confirmed in self._confirmations.pop(channel, []):
                    if not confirmed.done():
                        confirmed.set_result(None)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
