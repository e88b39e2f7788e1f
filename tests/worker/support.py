"""Helpers for the worker tests: a real SMTP server, worker processes, seeded campaigns."""

from __future__ import annotations

import asyncio
import email
import email.policy
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy import select, update
from starlette.requests import Request

from server.services import sql
from server.settings import Settings
from server.state import AppState
from store.models import (
    Contact,
    Inbox,
    MessagingService,
    OptOut,
    PhoneNumber,
    ReadMarker,
    User,
    utcnow,
)
from tests.support.live_server import REPO, free_port, settings_env
from tests.support.messaging import World, eventually, new_sid
from tests.support.twilio_standin import RecordedRequest, TwilioStandIn

T = TypeVar("T")


@dataclass
class ReceivedEmail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    at: float

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert body is not None
        return str(body.get_content())


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd) on a loopback port, that can be stopped and restarted."""

    port: int = field(default_factory=free_port)
    received: list[ReceivedEmail] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?from=alerts@switchboard.test"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.received.append(
                ReceivedEmail(str(envelope.mail_from), list(envelope.rcpt_tos), parsed, time.time())
            )
        return "250 OK"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def emails(self, conversation_id: int | None = None) -> list[ReceivedEmail]:
        """What arrived (only the emails linking to `conversation_id`, if given)."""
        with self._lock:
            found = list(self.received)
        if conversation_id is None:
            return found
        link = f"/conversations/{conversation_id}"
        return [e for e in found if e.text.rstrip().endswith(link)]

    async def wait(
        self, conversation_id: int | None = None, count: int = 1, within: float = 20
    ) -> list[ReceivedEmail]:
        """Wait until `count` emails (about `conversation_id`, if given) arrived; them all."""

        async def enough() -> list[ReceivedEmail]:
            found = self.emails(conversation_id)
            return found if len(found) >= count else []

        return await eventually(enough, within=within)


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    async def started(self, within: float = 60) -> None:
        """Wait until the worker says it runs (its loops have begun claiming)."""
        deadline = time.monotonic() + within
        while "worker " not in self.output() or " started" not in self.output():
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}: {self.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError("the worker process did not start")
            await asyncio.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def spawn_worker(settings: Settings, log: Path, **env: str) -> WorkerProcess:
    """`switchboard worker` as a child process on `settings`, logging to `log`."""
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "worker"],
            cwd=REPO,
            env={**settings_env(settings), **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return WorkerProcess(process, log)


class TimedStandIn(TwilioStandIn):
    """The Twilio stand-in, also noting when each create-message request arrived."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.arrivals: list[tuple[float, str]] = []

    async def _record(self, request: Request) -> RecordedRequest:
        recorded = await super()._record(request)
        if recorded.path.endswith("/Messages.json"):
            self.arrivals.append((time.monotonic(), recorded.param("To") or ""))
        return recorded

    def requested_to(self) -> list[str]:
        """The `To` of every create request received, answered or not."""
        return [r.param("To") or "" for r in self.messages()]

    def sent_to(self) -> list[str]:
        """The `To` of every create request the stand-in accepted."""
        return [r.param("To") or "" for r in self.messages() if r.response_status == 201]


@dataclass
class Blast:
    world: World
    service_id: int
    number: str  # routed to the replies inbox
    inbox_id: int

    @property
    def auth(self) -> dict[str, str]:
        return self.world.auth("admin")


async def seed_blast(state: AppState, world: World) -> Blast:
    """A blast messaging service whose one number routes to its own "Campaign replies" inbox."""
    async with state.transaction() as session:
        service = MessagingService(sid=new_sid("MG"), name="Blasts", purpose="blast")
        inbox = Inbox(name="Campaign replies")
        session.add_all([service, inbox])
        await session.flush()
        number = "+16175550190"
        session.add(
            PhoneNumber(
                sid=new_sid("PN"), number=number, messaging_service_id=service.id, inbox_id=inbox.id
            )
        )
    return Blast(world, service.id, number, inbox.id)


async def poll(check: Callable[[], Awaitable[T]], within: float = 60, every: float = 0.25) -> T:
    """`check()` once it is truthy, asked every `every` seconds: for checks that cost queries
    (`eventually` asks fifty times a second). The timeout only guards a failure."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {result!r})")
        await asyncio.sleep(every)


def phone(index: int) -> str:
    return f"+1617555{index:04d}"


async def add_contacts(
    state: AppState, count: int, *, start: int = 2000, fields: Mapping[str, Any] | None = None
) -> list[int]:
    now = utcnow()
    rows = [
        {
            "phone": phone(start + i),
            "first_name": f"First{i}",
            "last_name": f"Last{i}",
            "email": "",
            "fields": dict(fields or {}),
            "created_at": now,
            "updated_at": now,
        }
        for i in range(count)
    ]
    async with state.transaction() as session:
        for offset in range(0, len(rows), 500):
            await session.execute(sql.insert(session, Contact).values(rows[offset : offset + 500]))
        found = await session.scalars(
            select(Contact.id)
            .where(Contact.phone.in_([r["phone"] for r in rows]))
            .order_by(Contact.id)
        )
        return list(found.all())


async def opt_out(state: AppState, service_id: int, phones: list[str]) -> None:
    async with state.transaction() as session:
        session.add_all(
            OptOut(messaging_service_id=service_id, phone=p, opted_out=True, source="keyword")
            for p in phones
        )


async def mark_read(state: AppState, user_id: int, conversation_id: int, message_id: int) -> None:
    async with state.transaction() as session:
        await session.execute(
            sql.insert(session, ReadMarker)
            .values(user_id=user_id, conversation_id=conversation_id, message_id=message_id)
            .on_conflict_do_update(
                index_elements=[ReadMarker.user_id, ReadMarker.conversation_id],
                set_={"message_id": message_id},
            )
        )


async def set_notifications(
    state: AppState, inbox_id: int, *, delay: int, to: Any = "members", enabled: bool = True
) -> None:
    async with state.transaction() as session:
        await session.execute(
            update(Inbox)
            .where(Inbox.id == inbox_id)
            .values(notify_enabled=enabled, notify_delay_seconds=delay, notify_to=to)
        )


async def user_email(state: AppState, user_id: int) -> str:
    async with state.reading() as session:
        return str(await session.scalar(select(User.email).where(User.id == user_id)))


def worker_env(**overrides: str) -> dict[str, str]:
    """Fast polling and short timeouts for worker processes under test."""
    env = {
        "SWITCHBOARD_WORKER_POLL_SECONDS": "0.1",
        "SWITCHBOARD_NOTIFY_POLL_SECONDS": "0.1",
        "SWITCHBOARD_NOTIFY_RETRY_SECONDS": "0.2",
    }
    env.update(overrides)
    return env
