"""Helpers for the live tests: a websocket client speaking the protocol, a seeded team, and
events written through the real unit of work (`state.transaction()` + the outbox)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.auth import SESSION_COOKIE, authenticate_token, start_session
from server.passwords import hash_password
from server.settings import Settings
from server.state import AppState
from store import outbox
from store.models import Contact, Conversation, Inbox, InboxMember, User
from tests.support.live_server import (
    LiveServer,
    ServerProcess,
    start_live_server,
    start_server_process,
)

TIMEOUT = 15.0


class LiveClient:
    """One socket; every frame it receives is kept in order in `frames`."""

    def __init__(self, ws: ClientConnection, encoding: str) -> None:
        self.ws = ws
        self.encoding = encoding
        self.frames: list[dict[str, Any]] = []

    @classmethod
    async def connect(
        cls,
        url: str,
        token: str | None = None,
        *,
        encoding: str = "msgpack",
        cookie: str | None = None,
        origin: str | None = None,
        subprotocols: Sequence[str] | None = None,
        **options: Any,
    ) -> LiveClient:
        headers: dict[str, str] = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if cookie is not None:
            headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
        ws = await connect(
            url,
            additional_headers=headers,
            subprotocols=list(subprotocols if subprotocols is not None else [encoding]) or None,
            origin=origin,  # type: ignore[arg-type]
            open_timeout=TIMEOUT,
            max_size=None,
            **options,
        )
        return cls(ws, encoding)

    async def send(self, frame: dict[str, Any]) -> None:
        if self.encoding == "msgpack":
            await self.ws.send(msgpack.packb(frame))
        else:
            await self.ws.send(json.dumps(frame))

    async def recv(self, within: float = TIMEOUT) -> dict[str, Any]:
        data = await asyncio.wait_for(self.ws.recv(), within)
        if self.encoding == "msgpack":
            assert isinstance(data, bytes), "msgpack frames are binary"
            frame = msgpack.unpackb(data, raw=False)
        else:
            assert isinstance(data, str), "json frames are text"
            frame = json.loads(data)
        assert isinstance(frame, dict)
        self.frames.append(frame)
        return frame

    async def expect(self, within: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The next frame, which must carry `fields`."""
        frame = await self.recv(within)
        for key, value in fields.items():
            assert frame.get(key) == value, f"expected {key}={value!r} in {frame!r}"
        return frame

    async def subscribe(self, channel: str, since: int | None = None) -> dict[str, Any]:
        frame: dict[str, Any] = {"op": "subscribe", "channel": channel}
        if since is not None:
            frame["since"] = since
        await self.send(frame)
        return await self.expect(op="subscribed", channel=channel)

    async def events(self, channel: str, count: int, within: float = TIMEOUT) -> list[dict]:
        """The next `count` frames, all of which must be events on `channel`."""
        got = []
        for _ in range(count):
            frame = await self.recv(within)
            assert frame.get("op") == "event" and frame.get("channel") == channel, frame
            got.append(frame)
        return got

    async def until(self, within: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """Skip frames until one carries `fields` (the skipped ones stay in `frames`)."""
        async with asyncio.timeout(within):
            while True:
                frame = await self.recv(within)
                if all(frame.get(k) == v for k, v in fields.items()):
                    return frame

    async def quiet(self, seconds: float) -> list[dict[str, Any]]:
        """Everything that arrives within `seconds`."""
        got = []
        try:
            async with asyncio.timeout(seconds):
                while True:
                    got.append(await self.recv(seconds + 1))
        except TimeoutError:
            pass
        return got

    async def closed(self, within: float = TIMEOUT) -> tuple[int | None, str | None]:
        """Read until the server closes; the close code and reason."""
        try:
            async with asyncio.timeout(within):
                while True:
                    await self.recv(within)
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, None)
        raise AssertionError("the socket stayed open")

    async def close(self) -> None:
        await self.ws.close()


def seqs(frames: Sequence[dict[str, Any]], channel: str) -> list[int]:
    return [f["seq"] for f in frames if f.get("op") == "event" and f.get("channel") == channel]


@dataclass
class Member:
    user: User
    token: str
    session_id: int


@dataclass
class Team:
    """Two inboxes; staff `ann` and `bob` in inbox A, `cy` in inbox B, and an admin."""

    admin: Member
    ann: Member
    bob: Member
    cy: Member
    inbox_a: int
    inbox_b: int
    conversation_a: int
    conversation_b: int
    members: dict[str, Member] = field(default_factory=dict)


@functools.cache
def _password_hash() -> str:
    return hash_password("password-123")  # Argon2 is slow on purpose: hash once per run


@dataclass
class Cluster:
    """Two server processes on one database and one Redis, and a team seeded in it."""

    a: LiveServer  # in this process, so a test can commit through its unit of work
    b: ServerProcess  # a child `switchboard serve`
    team: Team


@asynccontextmanager
async def two_processes(settings: Settings) -> AsyncIterator[Cluster]:
    a = await start_live_server(settings)
    try:
        team = await seed_team(a.state)
        b = start_server_process(settings)
        try:
            yield Cluster(a, b, team)
        finally:
            if b.process.poll() is None:
                b.terminate()
    finally:
        await a.stop()


async def add_user(state: AppState, email: str, role: str = "staff", name: str = "") -> Member:
    async with state.transaction() as session:
        user = User(email=email, password_hash=_password_hash(), name=name, role=role)
        session.add(user)
        await session.flush()
        token = await start_session(session, user)
        found = await authenticate_token(session, token)
        assert found is not None
    return Member(user, token, found[1].id)


async def sign_in(state: AppState, user: User) -> str:
    async with state.transaction() as session:
        return await start_session(session, await session.get(User, user.id))  # type: ignore[arg-type]


async def seed_team(state: AppState) -> Team:
    admin = await add_user(state, "admin@example.edu", "admin", "Ada Admin")
    ann = await add_user(state, "ann@example.edu", name="Ann")
    bob = await add_user(state, "bob@example.edu", name="Bob")
    cy = await add_user(state, "cy@example.edu", name="Cy")
    async with state.transaction() as session:
        inbox_a, inbox_b = Inbox(name="Admissions"), Inbox(name="Financial aid")
        session.add_all([inbox_a, inbox_b])
        await session.flush()
        session.add_all(
            [
                InboxMember(inbox_id=inbox_a.id, user_id=ann.user.id),
                InboxMember(inbox_id=inbox_a.id, user_id=bob.user.id),
                InboxMember(inbox_id=inbox_b.id, user_id=cy.user.id),
            ]
        )
        contact = Contact(phone="+15555550100", first_name="Stu")
        session.add(contact)
        await session.flush()
        conv_a = Conversation(inbox_id=inbox_a.id, contact_id=contact.id)
        conv_b = Conversation(inbox_id=inbox_b.id, contact_id=contact.id)
        session.add_all([conv_a, conv_b])
        await session.flush()
        ids = inbox_a.id, inbox_b.id, conv_a.id, conv_b.id
    return Team(admin, ann, bob, cy, *ids)


async def emit(
    state: AppState, channel: str, count: int = 1, type: str = "message.created", **data: Any
) -> None:
    """`count` events on `channel`, committed together through the unit of work."""
    async with state.transaction() as session:
        for n in range(count):
            outbox.emit(session, channel, type, {"n": n, **data})


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], within: float = TIMEOUT
) -> None:
    """Wait for `condition` to hold (the timeout is only a failure guard)."""

    async def holds() -> bool:
        result = condition()
        return bool(await result) if inspect.isawaitable(result) else bool(result)

    for _ in range(int(within / 0.05)):
        if await holds():
            return
        await asyncio.sleep(0.05)
    assert await holds(), "condition never held"
