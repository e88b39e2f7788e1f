"""Switchboard under benchmark: a database, a seeded team, `serve` processes, signed webhooks
and a websocket client adapter — shared by fanout, ingest, connections and replay.

Everything is real: a migrated SQLite file or a fresh PostgreSQL database, `switchboard serve`
child processes (the command operators run), webhooks signed with the `twilio` library's
RequestValidator against PUBLIC_URL, and websockets speaking the live protocol (msgpack).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import asyncpg
import msgpack
from twilio.request_validator import RequestValidator

from bench.common import (
    REPO,
    FanoutResult,
    MessageSocket,
    ServedProcess,
    free_port,
    http_session,
    measure_fanout,
    spawn,
    wait_healthy,
)
from server.auth import start_session
from server.settings import Settings
from server.state import AppState
from store.migrate import upgrade_async
from store.models import Inbox, InboxMember, MessagingService, PhoneNumber, User

PG_ADMIN_DSN = os.environ.get(
    "SWITCHBOARD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
INBOX_NUMBER = "+16175550100"
BODY_PREFIX = "bench "


# --- databases ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def bench_database(kind: str, workdir: Path) -> AsyncIterator[str]:
    """A freshly migrated database of `kind` (sqlite | postgres), dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        await upgrade_async(url)
        yield url
        return
    if kind != "postgres":
        raise ValueError(f"unknown database {kind!r}")
    name = f"sbbench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    url = f"{base}/{name}"
    try:
        await upgrade_async(url)
        yield url
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# --- the seeded team ---------------------------------------------------------------------


@dataclass(frozen=True)
class Team:
    """One inbox fed by one number, one staff member of it, and that member's bearer token."""

    inbox_id: int
    service_sid: str
    number: str
    user_id: int
    token: str

    @property
    def channel(self) -> str:
        return f"inbox:{self.inbox_id}"


async def seed_team(database_url: str) -> Team:
    state = AppState(Settings(database_url=database_url, secret_key="seed"))
    try:
        async with state.transaction() as session:
            service = MessagingService(sid="MG" + secrets.token_hex(16), name="Bench 1:1")
            inbox = Inbox(name="Bench inbox")
            user = User(email="bench@example.edu", name="Bench", role="staff", password_hash="!")
            session.add_all([service, inbox, user])
            await session.flush()
            session.add(
                PhoneNumber(
                    sid="PN" + secrets.token_hex(16),
                    number=INBOX_NUMBER,
                    messaging_service_id=service.id,
                    inbox_id=inbox.id,
                )
            )
            session.add(InboxMember(inbox_id=inbox.id, user_id=user.id))
            token = await start_session(session, user)
        return Team(inbox.id, service.sid, INBOX_NUMBER, user.id, token)
    finally:
        await state.close()


# --- serve processes ---------------------------------------------------------------------


@dataclass
class Deployment:
    """`processes` serve processes on one database (and one Redis when there are several)."""

    servers: list[ServedProcess]
    public_url: str
    secret_key: str

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in self.servers]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def serve_env(
    database_url: str,
    public_url: str,
    secret_key: str,
    workdir: Path,
    redis_url: str | None = None,
    redis_prefix: str = "switchboard:",
    **extra: str,
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "SMTP_URL")
    }
    env.update(
        DATABASE_URL=database_url,
        PUBLIC_URL=public_url,
        SECRET_KEY=secret_key,
        SWITCHBOARD_DATA_DIR=str(workdir),
        SWITCHBOARD_REDIS_PREFIX=redis_prefix,
        SWITCHBOARD_IN_PROCESS_WORKER="0",
        SWITCHBOARD_LOG_LEVEL=os.environ.get("SWITCHBOARD_BENCH_LOG_LEVEL", "WARNING"),
        # Replay reaches back further than the benchmarks go.
        SWITCHBOARD_EVENT_RETENTION_COUNT="1000000",
        PYTHONPATH=str(REPO),
        **extra,
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


async def deploy(
    database_url: str,
    workdir: Path,
    processes: int = 1,
    redis_url: str | None = None,
    log: Any = None,
) -> Deployment:
    """Start `processes` × `switchboard serve`; with more than one they share `redis_url`."""
    ports = [free_port() for _ in range(processes)]
    public_url = f"http://127.0.0.1:{ports[0]}"  # the load balancer's address, as Twilio sees it
    secret_key = secrets.token_urlsafe(32)
    prefix = f"bench{uuid.uuid4().hex[:8]}:"
    env = serve_env(
        database_url,
        public_url,
        secret_key,
        workdir,
        redis_url=redis_url if processes > 1 or redis_url else None,
        redis_prefix=prefix,
    )
    servers = [
        spawn([sys.executable, "-m", "server.cli", "serve", "--port", str(port)], env, port, log)
        for port in ports
    ]
    deployment = Deployment(servers, public_url, secret_key)
    try:
        for server in servers:
            await wait_healthy(server)
    except BaseException:
        deployment.stop()
        raise
    return deployment


@contextlib.asynccontextmanager
async def one_server(kind: str) -> AsyncIterator[tuple[str, Team, Deployment]]:
    """A fresh database of `kind`, its seeded team and one serve process; all gone after."""
    with tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp:
        async with bench_database(kind, Path(tmp)) as url:
            team = await seed_team(url)
            deployment = await deploy(url, Path(tmp))
            try:
                yield url, team, deployment
            finally:
                deployment.stop()


# --- webhooks ----------------------------------------------------------------------------


def inbound_form(team: Team, index: int, contacts: int = 100) -> dict[str, str]:
    """An inbound SMS as Twilio posts it; the body carries the benchmark's event id."""
    return {
        "ToCountry": "US",
        "SmsMessageSid": (sid := "SM" + uuid.uuid4().hex),
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": f"{BODY_PREFIX}{index}",
        "To": team.number,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": f"+1617555{2000 + index % contacts:04d}",
        "MessagingServiceSid": team.service_sid,
        "ApiVersion": "2010-04-01",
    }


@dataclass(frozen=True)
class SignedWebhook:
    index: int
    form: dict[str, str]
    signature: str


class WebhookSender:
    """Posts signed inbound webhooks round-robin over the deployment's processes (aiohttp:
    the load generator shares the machine with the server, so it must be cheap)."""

    def __init__(self, deployment: Deployment, team: Team, http: aiohttp.ClientSession) -> None:
        self.deployment = deployment
        self.team = team
        self.http = http
        self.validator = RequestValidator(deployment.secret_key)
        self.signed_url = deployment.public_url + "/twilio/messages"

    def sign(self, index: int) -> SignedWebhook:
        form = inbound_form(self.team, index)
        return SignedWebhook(index, form, self.validator.compute_signature(self.signed_url, form))

    async def post(self, webhook: SignedWebhook, attempts: int = 5) -> None:
        """Post it, retrying what did not get a 200 on the next process, as Twilio retries."""
        servers = self.deployment.servers
        status, text = 0, ""
        for attempt in range(attempts):
            server = servers[(webhook.index + attempt) % len(servers)]
            async with self.http.post(
                f"{server.base_url}/twilio/messages",
                data=webhook.form,
                headers={"X-Twilio-Signature": webhook.signature},
            ) as response:
                status, text = response.status, await response.text()
            if status == 200:
                return
        raise RuntimeError(f"webhook {webhook.index}: {status} {text[:200]}")

    async def send(self, index: int) -> None:
        await self.post(self.sign(index))


# --- websocket clients -------------------------------------------------------------------


def decode(message: str | bytes) -> dict[str, Any]:
    return msgpack.unpackb(message, raw=False) if isinstance(message, bytes) else {}


@dataclass(frozen=True)
class SwitchboardClient:
    """A staff client of the live protocol (msgpack), subscribed to one inbox channel."""

    ports: tuple[int, ...]
    token: str
    channel: str
    subscribe: bool = True
    event_marker: ClassVar[bytes] = b"message.created"
    text_ping: ClassVar[tuple[str, str] | None] = None

    def url(self, index: int) -> str:
        return f"ws://127.0.0.1:{self.ports[index % len(self.ports)]}/ws"

    def headers(self, index: int) -> dict[str, str]:
        return {"Sec-WebSocket-Protocol": "msgpack", "Authorization": f"Bearer {self.token}"}

    async def handshake(self, ws: MessageSocket, index: int) -> None:
        if not self.subscribe:
            return
        await ws.send(msgpack.packb({"op": "subscribe", "channel": self.channel}))
        while True:
            frame = decode(await ws.recv())
            if frame.get("op") == "subscribed" and frame.get("channel") == self.channel:
                return
            if frame.get("op") == "error":
                raise RuntimeError(f"subscribe refused: {frame}")

    def event_id(self, message: str | bytes) -> int | None:
        frame = decode(message)
        if frame.get("op") != "event" or frame.get("type") != "message.created":
            return None
        return body_event_id(frame.get("data", {}).get("body", ""))


def body_event_id(body: str) -> int | None:
    if not body.startswith(BODY_PREFIX):
        return None
    return int(body[len(BODY_PREFIX) :])


def subscribe_frame(channel: str, since: int | None = None) -> bytes:
    frame: dict[str, Any] = {"op": "subscribe", "channel": channel}
    if since is not None:
        frame["since"] = since
    return msgpack.packb(frame)


# --- fan-out -----------------------------------------------------------------------------


async def run_switchboard_fanout(
    processes: int,
    clients: int,
    events: int,
    rate: float,
    *,
    probes: int = 50,
    client_processes: int = 1,
    redis_url: str = "redis://127.0.0.1:6379/0",
    database: str = "postgres",
) -> FanoutResult:
    """One fan-out run on Switchboard, measured exactly as the peer is (`measure_fanout`):
    staff sockets on one inbox, signed inbound webhooks round-robin over the processes."""
    with tempfile.TemporaryDirectory(prefix="sb-fanout-") as tmp:
        async with bench_database(database, Path(tmp)) as url:
            team = await seed_team(url)
            deployment = await deploy(
                url, Path(tmp), processes, redis_url if processes > 1 else None
            )
            try:
                async with http_session() as http:
                    return await measure_fanout(
                        "switchboard",
                        deployment.pids,
                        SwitchboardClient(
                            tuple(s.port for s in deployment.servers), team.token, team.channel
                        ),
                        WebhookSender(deployment, team, http).send,
                        clients=clients,
                        events=events,
                        rate=rate,
                        probes=probes,
                        client_processes=client_processes,
                    )
            finally:
                deployment.stop()
