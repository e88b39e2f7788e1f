"""Fixtures and helpers for the messaging tests: a seeded team, signed webhooks, the stand-in.

`seed_world(state)` writes two messaging services, three inboxes and four numbers straight
into the database (the admin API is not what these tests are about), plus three users with
bearer tokens. Webhooks are signed here with the `twilio` library's RequestValidator, as
Twilio signs them, independently of the app's own signing code.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from twilio.request_validator import RequestValidator

from server.auth import start_session
from server.settings import Settings
from server.state import AppState
from store import outbox
from store.models import (
    Event,
    Inbox,
    InboxMember,
    Message,
    MessagingService,
    PhoneNumber,
    User,
)
from tests.support.live_server import LiveServer, start_live_server
from tests.support.twilio_standin import TwilioStandIn

T = TypeVar("T")


@dataclass
class World:
    service_a: int
    service_b: int
    service_a_sid: str
    service_b_sid: str
    admissions: int  # inbox: n1 (service A) and n2 (service B)
    aid: int  # inbox: n3 (service A)
    empty: int  # inbox without numbers
    n1: str
    n2: str
    n3: str
    n4: str  # service B, routed to no inbox
    admin: int
    member: int  # member of admissions
    outsider: int  # member of aid only
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


async def seed_world(state: AppState) -> World:
    async with state.transaction() as session:
        service_a = MessagingService(sid=new_sid("MG"), name="Admissions 1:1")
        service_b = MessagingService(sid=new_sid("MG"), name="Admissions blasts", purpose="blast")
        admissions = Inbox(name="Admissions")
        aid = Inbox(name="Financial aid")
        empty = Inbox(name="No numbers")
        session.add_all([service_a, service_b, admissions, aid, empty])
        await session.flush()
        numbers = [
            ("+16175550101", service_a.id, admissions.id),
            ("+16175550102", service_b.id, admissions.id),
            ("+16175550103", service_a.id, aid.id),
            ("+16175550104", service_b.id, None),
        ]
        for number, service_id, inbox_id in numbers:
            session.add(
                PhoneNumber(
                    sid=new_sid("PN"),
                    number=number,
                    messaging_service_id=service_id,
                    inbox_id=inbox_id,
                )
            )
        users = {}
        for name, role in (("admin", "admin"), ("member", "staff"), ("outsider", "staff")):
            # No password: these users only ever call the API with their bearer token.
            user = User(email=f"{name}@example.edu", name=name, role=role, password_hash="!")
            session.add(user)
            users[name] = user
        await session.flush()
        session.add(InboxMember(inbox_id=admissions.id, user_id=users["member"].id))
        session.add(InboxMember(inbox_id=aid.id, user_id=users["outsider"].id))
        tokens = {name: await start_session(session, user) for name, user in users.items()}
    return World(
        service_a=service_a.id,
        service_b=service_b.id,
        service_a_sid=service_a.sid,
        service_b_sid=service_b.sid,
        admissions=admissions.id,
        aid=aid.id,
        empty=empty.id,
        n1=numbers[0][0],
        n2=numbers[1][0],
        n3=numbers[2][0],
        n4=numbers[3][0],
        admin=users["admin"].id,
        member=users["member"].id,
        outsider=users["outsider"].id,
        tokens=tokens,
    )


def signature(token: str, url: str, params: Mapping[str, str]) -> str:
    return RequestValidator(token).compute_signature(url, dict(params))


async def signed_post(
    http: httpx.AsyncClient,
    settings: Settings,
    path: str,
    params: Mapping[str, str],
    *,
    signed_url: str | None = None,
    token: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """POST a form to `path`, signed (by default) exactly as Twilio signs for PUBLIC_URL."""
    url = signed_url or settings.public_base + path
    sig = signature(token or settings.webhook_auth_token, url, params)
    return await http.post(
        path, data=dict(params), headers={"X-Twilio-Signature": sig, **(headers or {})}
    )


def inbound_params(
    from_: str, to: str, body: str, sid: str | None = None, **extra: str
) -> dict[str, str]:
    sid = sid or new_sid("SM")
    return {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "1" * 32,
        "From": from_,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def status_params(sid: str, status: str, error_code: str | None = None) -> dict[str, str]:
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": "AC" + "1" * 32,
        "ApiVersion": "2010-04-01",
    }
    if error_code:
        params["ErrorCode"] = error_code
    return params


async def text_in(
    http: httpx.AsyncClient, settings: Settings, from_: str, to: str, body: str, **extra: str
) -> httpx.Response:
    return await signed_post(
        http, settings, "/twilio/messages", inbound_params(from_, to, body, **extra)
    )


async def post_status(
    http: httpx.AsyncClient,
    settings: Settings,
    sid: str,
    status: str,
    error_code: str | None = None,
) -> httpx.Response:
    return await signed_post(
        http, settings, "/twilio/status", status_params(sid, status, error_code)
    )


async def eventually(check: Callable[[], Awaitable[T]], within: float = 10) -> T:
    """Poll `check` until it returns something truthy; the timeout only guards a failure."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {result!r})")
        await asyncio.sleep(0.02)


async def messages(state: AppState, **where: Any) -> list[Message]:
    async with state.reading() as session:
        stmt = select(Message).filter_by(**where).order_by(Message.id)
        return list((await session.scalars(stmt)).all())


async def message(state: AppState, message_id: int) -> Message:
    async with state.reading() as session:
        found = await session.get(Message, message_id)
    assert found is not None
    return found


def commits_of(state: AppState) -> AbstractContextManager[list[object]]:
    """The transactions `state`'s write engine commits while the block runs, one entry each
    (its connection)."""
    return transactions_of(state, "commit")


@contextmanager
def transactions_of(state: AppState, moment: str) -> Iterator[list[object]]:
    """The transactions of `state`'s write engine that reach `moment` ("begin", "commit")
    while the block runs, one entry each (its connection)."""
    seen: list[object] = []
    with _listening(state.engine, moment, seen.append):
        yield seen


@contextmanager
def statements_of(engine: AsyncEngine) -> Iterator[list[tuple[object, str]]]:
    """The statements `engine` runs while the block runs (BEGIN too), each with its
    connection."""
    seen: list[tuple[object, str]] = []

    def note(connection: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append((connection, statement))

    with _listening(engine, "before_cursor_execute", note):
        yield seen


@contextmanager
def _listening(engine: AsyncEngine, name: str, listener: Callable[..., None]) -> Iterator[None]:
    event.listen(engine.sync_engine, name, listener)
    try:
        yield
    finally:
        event.remove(engine.sync_engine, name, listener)


async def count(state: AppState, model: type) -> int:
    async with state.reading() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def events(state: AppState, channel: str, type: str | None = None) -> list[Event]:
    async with state.reading() as session:
        found = list(await outbox.read_since(session, channel, 0))
    return [e for e in found if type is None or e.type == type]


@pytest.fixture
async def world(live_server: LiveServer) -> World:
    """The seeded team on the simulator-mode server (`live_server`)."""
    return await seed_world(live_server.state)


@pytest.fixture
async def standin() -> AsyncIterator[TwilioStandIn]:
    async with TwilioStandIn() as twilio:
        yield twilio


@pytest.fixture
async def twilio_server(settings: Settings, standin: TwilioStandIn) -> AsyncIterator[LiveServer]:
    """The app with real Twilio credentials, its REST calls going to the stand-in."""
    server = await start_live_server(standin.configure(settings))
    yield server
    await server.stop()


@pytest.fixture
async def twilio_http(twilio_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=twilio_server.base_url, timeout=30) as client:
        yield client


@pytest.fixture
async def twilio_world(twilio_server: LiveServer) -> World:
    return await seed_world(twilio_server.state)


@dataclass
class TwilioEnv:
    """The app on real credentials against the stand-in, a client for it, and the seeded team."""

    server: LiveServer
    http: httpx.AsyncClient
    world: World
    standin: TwilioStandIn

    def __iter__(self) -> Iterator[Any]:
        return iter((self.server, self.http, self.world, self.standin))


@pytest.fixture
async def twilio(
    twilio_server: LiveServer,
    twilio_http: httpx.AsyncClient,
    twilio_world: World,
    standin: TwilioStandIn,
) -> TwilioEnv:
    return TwilioEnv(twilio_server, twilio_http, twilio_world, standin)
