"""The fault tests' common parts: `serve` processes sharing a database and a Redis, websocket
clients that follow a channel across servers, and checks that nothing was lost or doubled."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import func, select
from websockets.exceptions import ConnectionClosed

from server.settings import Settings
from server.state import AppState
from store import outbox
from store.models import Event, Message
from tests.live.conftest import with_redis
from tests.live.helpers import LiveClient
from tests.support.live_server import ServerProcess, start_server_process

# Every process of a deployment shares one PUBLIC_URL (the load balancer's); Twilio signs it.
PUBLIC_URL = "https://sms.switchboard.test"
# Failure guards only: nothing here is a speed requirement. Generous, as other test runs share
# the machine's two cores.
GUARD = 60.0


def cluster_settings(settings: Settings, redis_url: str | None = None) -> Settings:
    """`settings` as the processes of one deployment run it: one PUBLIC_URL, one Redis."""
    shared = with_redis(settings) if redis_url is None else with_redis(settings, redis_url)
    return replace(shared, public_url=PUBLIC_URL)


@contextlib.contextmanager
def serve_processes(settings: Settings, count: int) -> Iterator[list[ServerProcess]]:
    """`count` `switchboard serve` processes; whatever is still running at the end is killed."""
    started: list[ServerProcess] = []
    try:
        for _ in range(count):
            started.append(start_server_process(settings))
        yield started
    finally:
        for process in started:
            if process.process.poll() is None:
                process.kill()


async def wait_until(condition: Callable[[], bool], within: float = GUARD) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.02)


@dataclass
class Follower:
    """A websocket client reading one channel in the background, as a browser tab does; when
    its server goes away it can resume on another with `since` = the last seq it got."""

    token: str
    channel: str
    events: list[dict[str, Any]] = field(default_factory=list)
    closes: list[tuple[int | None, str | None]] = field(default_factory=list)
    other_frames: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client: LiveClient | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def last_seq(self) -> int:
        return self.events[-1]["seq"] if self.events else 0

    @property
    def seqs(self) -> list[int]:
        return [event["seq"] for event in self.events]

    @property
    def connected(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def connect(self, ws_url: str, *, resume: bool = False) -> dict[str, Any]:
        """Open a socket and subscribe (with `since` when resuming); the `subscribed` frame."""
        self.client = await LiveClient.connect(ws_url, self.token)
        subscribed = await self.client.subscribe(
            self.channel, since=self.last_seq if resume else None
        )
        self._reader = asyncio.create_task(self._read(self.client))
        return subscribed

    async def _read(self, client: LiveClient) -> None:
        try:
            while True:
                frame = await client.recv(within=3600)
                if frame.get("op") == "event" and frame.get("channel") == self.channel:
                    self.events.append(frame)
                else:
                    self.other_frames.append(frame)
        except ConnectionClosed as exc:
            self.closes.append((exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, None))

    async def until_seq(self, seq: int, within: float = GUARD) -> None:
        await wait_until(lambda: self.last_seq >= seq, within)

    async def disconnected(self, within: float = GUARD) -> tuple[int | None, str | None]:
        await wait_until(lambda: not self.connected, within)
        return self.closes[-1]

    async def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 10)


async def head(state: AppState, channel: str) -> int:
    async with state.reading() as session:
        return (await outbox.current_seqs(session, [channel]))[channel]


async def channel_events(state: AppState, channel: str) -> list[Event]:
    async with state.reading() as session:
        return list(await outbox.read_since(session, channel, 0, limit=100_000))


async def copies_by_sid(state: AppState, sids: Iterable[str]) -> dict[str, int]:
    """How many stored messages carry each of `sids` (0 for one never stored)."""
    wanted = list(sids)
    async with state.reading() as session:
        rows = await session.execute(
            select(Message.twilio_sid, func.count())
            .where(Message.twilio_sid.in_(wanted))
            .group_by(Message.twilio_sid)
        )
        found = {sid: int(n) for sid, n in rows}
    return {sid: found.get(sid, 0) for sid in wanted}


async def assert_stored_once(state: AppState, sids: Iterable[str]) -> None:
    copies = await copies_by_sid(state, sids)
    wrong = {sid: n for sid, n in copies.items() if n != 1}
    assert not wrong, f"messages not stored exactly once: {wrong}"


async def assert_channel_announces(state: AppState, channel: str, sids: Iterable[str]) -> int:
    """The channel's outbox has seqs 1..head without a gap, one `message.created` per sid and
    none for anything else; the head."""
    events = await channel_events(state, channel)
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    created = [e.data["twilio_sid"] for e in events if e.type == "message.created"]
    assert sorted(created) == sorted(sids)
    return len(events)


def assert_saw_every_event_once(follower: Follower, upto: int) -> None:
    """Every seq 1..upto reached the follower once, in order (across its reconnections)."""
    assert follower.seqs == list(range(1, upto + 1)), (
        f"{follower.channel}: got {len(follower.seqs)} events, "
        f"first gaps/duplicates near {_first_anomaly(follower.seqs)}"
    )


def _first_anomaly(seqs: list[int]) -> int | None:
    for index, seq in enumerate(seqs, start=1):
        if seq != index:
            return index
    return None
