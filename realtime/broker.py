"""Brokers carry opaque payloads between the processes of one deployment (a tiny interface, in
the spirit of encode/broadcaster): the in-process broker for one process, Redis pub/sub for many.

A broker is only the news service: payloads it loses (Redis down, a crash between commit and
publish) are recovered by the node from the outbox, so delivery is best effort here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

MessageHandler = Callable[[str, bytes], None]
ReconnectHandler = Callable[[], None]


class Broker(Protocol):
    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        """Begin delivering: `on_message(channel, payload)` for each payload on a subscribed
        channel; `on_reconnect()` each time the broker (re)connects, since payloads may have
        been missed while it was away."""
        ...

    async def stop(self) -> None: ...

    async def publish(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Send each payload to the subscribers of its channel in every process, this one
        included (at once, before this returns). Never raises for a broker outage."""
        ...

    async def subscribe(self, channel: str) -> None:
        """Receive `channel` in this process from now on (once the broker confirms it)."""
        ...

    async def unsubscribe(self, channel: str) -> None: ...


class MemoryBroker:
    """One process: publishing is a direct call to this process's handler."""

    def __init__(self) -> None:
        self._channels: set[str] = set()
        self._on_message: MessageHandler | None = None

    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        self._on_message = on_message

    async def stop(self) -> None:
        self._on_message = None
        self._channels.clear()

    async def publish(self, items: Sequence[tuple[str, bytes]]) -> None:
        handler = self._on_message
        if handler is None:
            return
        for channel, payload in items:
            if channel in self._channels:
                handler(channel, payload)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
