"""Who is viewing which conversation: in process memory, or in Redis shared by all processes.

In Redis each conversation is a sorted set of viewers scored by when their entry expires. The
process holding a viewer's socket refreshes its entries on a heartbeat; entries of a process
that crashed stop being refreshed and are pruned, so no ghost viewer outlives it for long.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis


@dataclass(frozen=True, slots=True)
class Viewer:
    key: str  # one socket, unique across processes
    user_id: int
    name: str


class PresenceStore(Protocol):
    async def join(self, conversation_id: int, viewer: Viewer) -> list[Viewer]:
        """Add the viewer; answer everyone viewing the conversation now."""
        ...

    async def leave(self, conversation_id: int, viewer: Viewer) -> list[Viewer]: ...

    async def viewers(self, conversation_id: int) -> list[Viewer]: ...

    async def refresh(self, entries: Sequence[tuple[int, Viewer]]) -> None:
        """Heartbeat: the viewers this process still holds are still there."""
        ...

    async def prune(self, conversation_ids: Sequence[int]) -> list[int]:
        """Drop expired viewers; answer the conversations that lost some."""
        ...

    async def close(self) -> None: ...


class MemoryPresence:
    """One process: a viewer leaves when its socket goes, and nothing can outlive the process."""

    def __init__(self) -> None:
        self._viewers: dict[int, dict[str, Viewer]] = {}

    async def join(self, conversation_id: int, viewer: Viewer) -> list[Viewer]:
        self._viewers.setdefault(conversation_id, {})[viewer.key] = viewer
        return await self.viewers(conversation_id)

    async def leave(self, conversation_id: int, viewer: Viewer) -> list[Viewer]:
        here = self._viewers.get(conversation_id, {})
        here.pop(viewer.key, None)
        if not here:
            self._viewers.pop(conversation_id, None)
        return await self.viewers(conversation_id)

    async def viewers(self, conversation_id: int) -> list[Viewer]:
        return list(self._viewers.get(conversation_id, {}).values())

    async def refresh(self, entries: Sequence[tuple[int, Viewer]]) -> None:
        return None

    async def prune(self, conversation_ids: Sequence[int]) -> list[int]:
        return []

    async def close(self) -> None:
        self._viewers.clear()


class RedisPresence:
    def __init__(self, client: aioredis.Redis, prefix: str, ttl: float) -> None:
        self._client = client
        self._prefix = prefix + "presence:"
        self._ttl_ms = int(ttl * 1000)

    def _key(self, conversation_id: int) -> str:
        return f"{self._prefix}{conversation_id}"

    @staticmethod
    def _member(viewer: Viewer) -> str:
        return json.dumps([viewer.key, viewer.user_id, viewer.name], separators=(",", ":"))

    @staticmethod
    def _viewer(member: bytes | str) -> Viewer:
        key, user_id, name = json.loads(member)
        return Viewer(str(key), int(user_id), str(name))

    async def join(self, conversation_id: int, viewer: Viewer) -> list[Viewer]:
        key = self._key(conversation_id)
        now = _now_ms()
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {self._member(viewer): now + self._ttl_ms})
            pipe.pexpire(key, 3 * self._ttl_ms)
            pipe.zrangebyscore(key, now, "+inf")
            *_, members = await pipe.execute()
        return [self._viewer(member) for member in members]

    async def leave(self, conversation_id: int, viewer: Viewer) -> list[Viewer]:
        key = self._key(conversation_id)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zrem(key, self._member(viewer))
            pipe.zrangebyscore(key, _now_ms(), "+inf")
            _, members = await pipe.execute()
        return [self._viewer(member) for member in members]

    async def viewers(self, conversation_id: int) -> list[Viewer]:
        members = await self._client.zrangebyscore(self._key(conversation_id), _now_ms(), "+inf")
        return [self._viewer(member) for member in members]

    async def refresh(self, entries: Sequence[tuple[int, Viewer]]) -> None:
        if not entries:
            return
        expires = _now_ms() + self._ttl_ms
        async with self._client.pipeline(transaction=False) as pipe:
            for conversation_id, viewer in entries:
                key = self._key(conversation_id)
                pipe.zadd(key, {self._member(viewer): expires})
                pipe.pexpire(key, 3 * self._ttl_ms)
            await pipe.execute()

    async def prune(self, conversation_ids: Sequence[int]) -> list[int]:
        if not conversation_ids:
            return []
        now = _now_ms()
        async with self._client.pipeline(transaction=False) as pipe:
            for conversation_id in conversation_ids:
                pipe.zremrangebyscore(self._key(conversation_id), "-inf", now)
            removed = await pipe.execute()
        return [cid for cid, count in zip(conversation_ids, removed, strict=True) if count]

    async def close(self) -> None:
        await self._client.aclose()


def _now_ms() -> int:
    return int(time.time() * 1000)
