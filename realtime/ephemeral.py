"""Typing and presence: events on `conversation:` channels that carry no seq, are never
replayed, and end by themselves (typing after a quiet spell, presence when the socket goes)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from realtime import protocol
from realtime.ports import Principal
from realtime.presence import PresenceStore, Viewer

# publish(channel, type, data, exclude): send an ephemeral event to every process.
Publish = Callable[[str, str, dict[str, Any], str | None], Awaitable[None]]


@dataclass(slots=True)
class _Typing:
    principal: Principal
    deadline: float
    announced: float


class TypingTracker:
    """Who types where, for this process's sockets. Each `typing` op holds the indicator for
    `ttl` seconds; when it runs out (or the socket goes) `typing: false` is announced."""

    def __init__(self, ttl: float, publish: Publish) -> None:
        self._ttl = ttl
        # Others need a fresh `typing: true` now and then (a socket that subscribed late).
        self._reannounce = ttl / 3
        self._publish = publish
        self._active: dict[tuple[int, str], _Typing] = {}

    async def typing(self, conversation_id: int, key: str, principal: Principal) -> None:
        now = time.monotonic()
        state = self._active.get((conversation_id, key))
        if state is None:
            state = _Typing(principal, now + self._ttl, now)
            self._active[(conversation_id, key)] = state
        else:
            state.deadline = now + self._ttl
            if now - state.announced < self._reannounce:
                return
            state.announced = now
        await self._announce(conversation_id, key, principal, True)

    def conversations(self, key: str) -> list[int]:
        return [conversation_id for conversation_id, holder in self._active if holder == key]

    async def stop(self, key: str, conversation_id: int | None = None) -> None:
        """The socket `key` stopped typing in `conversation_id` (None: everywhere)."""
        for cid in self.conversations(key):
            if conversation_id is None or cid == conversation_id:
                state = self._active.pop((cid, key))
                await self._announce(cid, key, state.principal, False)

    async def expire(self) -> None:
        now = time.monotonic()
        for entry in [k for k, state in self._active.items() if state.deadline <= now]:
            state = self._active.pop(entry)
            await self._announce(entry[0], entry[1], state.principal, False)

    async def _announce(
        self, conversation_id: int, key: str, principal: Principal, typing: bool
    ) -> None:
        data: dict[str, Any] = {
            "conversation_id": conversation_id,
            "user_id": principal.user_id,
            "name": principal.name,
            "typing": typing,
        }
        if typing:
            data["expires_in"] = self._ttl
        await self._publish(protocol.conversation_channel(conversation_id), "typing", data, key)


class PresenceTracker:
    """Which thread each of this process's sockets shows, kept in a shared `PresenceStore`."""

    def __init__(self, store: PresenceStore, publish: Publish) -> None:
        self._store = store
        self._publish = publish
        self._local: dict[str, tuple[int, Viewer]] = {}

    def viewing(self, key: str) -> int | None:
        entry = self._local.get(key)
        return entry[0] if entry else None

    async def view(self, key: str, principal: Principal, conversation_id: int | None) -> None:
        current = self._local.get(key)
        if current is not None and current[0] == conversation_id:
            return
        await self.leave(key)
        if conversation_id is None:
            return
        viewer = Viewer(key, principal.user_id, principal.name)
        self._local[key] = (conversation_id, viewer)
        await self._announce(conversation_id, await self._store.join(conversation_id, viewer))

    async def leave(self, key: str) -> None:
        entry = self._local.pop(key, None)
        if entry is not None:
            conversation_id, viewer = entry
            await self._announce(conversation_id, await self._store.leave(conversation_id, viewer))

    async def current(self, conversation_id: int) -> protocol.Frame:
        """The presence event describing who views `conversation_id` now."""
        viewers = await self._store.viewers(conversation_id)
        channel = protocol.conversation_channel(conversation_id)
        return protocol.event(channel, "presence", _presence(conversation_id, viewers))

    async def heartbeat(self, watched: Sequence[int]) -> None:
        """Refresh this process's viewers; announce conversations whose stale viewers expired."""
        await self._store.refresh(list(self._local.values()))
        conversations = sorted(set(watched) | {cid for cid, _ in self._local.values()})
        for conversation_id in await self._store.prune(conversations):
            await self._announce(conversation_id, await self._store.viewers(conversation_id))

    async def _announce(self, conversation_id: int, viewers: list[Viewer]) -> None:
        channel = protocol.conversation_channel(conversation_id)
        await self._publish(channel, "presence", _presence(conversation_id, viewers), None)


def _presence(conversation_id: int, viewers: list[Viewer]) -> dict[str, Any]:
    """One entry per user, however many of their tabs show the thread."""
    users: dict[int, str] = {}
    for viewer in viewers:
        users.setdefault(viewer.user_id, viewer.name)
    return {
        "conversation_id": conversation_id,
        "viewers": [{"user_id": uid, "name": name} for uid, name in sorted(users.items())],
    }
