"""An SMTP server that accepts connections and then never answers (the worst way for email to
be down: a refused connection is covered by the worker's own tests).

Alerts wait, time out and are retried; nothing else waits on them — webhooks are taken and
stored meanwhile — and once the server answers again each alert goes out exactly once.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select

from server import mailer
from store.models import Notification
from tests.faults.harness import GUARD
from tests.support.live_server import LiveServer, free_port
from tests.support.messaging import World, eventually, messages, text_in
from tests.worker.conftest import StartWorker
from tests.worker.support import SmtpSink, set_notifications

PHONES = ["+16175557301", "+16175557302", "+16175557303"]


class BlackHole:
    """Accepts TCP connections on a port and never says a word."""

    def __init__(self) -> None:
        self.port = free_port()
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", self.port)

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()


async def alerts(server: LiveServer) -> list[Notification]:
    async with server.state.reading() as session:
        return list((await session.scalars(select(Notification))).all())


async def test_a_hanging_smtp_server_holds_up_nothing_and_each_alert_goes_once(
    live_server: LiveServer,
    http: httpx.AsyncClient,
    world: World,
    start_worker: StartWorker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mailer, "SEND_TIMEOUT_SECONDS", 1.0)
    hole = BlackHole()
    await hole.start()
    sink = SmtpSink(port=hole.port)
    await set_notifications(live_server.state, world.admissions, delay=0)
    await start_worker(replace(live_server.settings, smtp_url=sink.url))

    for phone in PHONES:
        assert (
            await text_in(http, live_server.settings, phone, world.n1, "hello?")
        ).status_code == 200

    async def each_timed_out_twice() -> list[Notification]:
        rows = await alerts(live_server)  # `attempts` counts the one under way too
        done = len(rows) == len(PHONES) and all(r.attempts >= 3 for r in rows)
        return rows if done else []

    rows = await eventually(each_timed_out_twice, within=GUARD)
    assert {r.state for r in rows} == {"pending"}
    assert all("Timeout" in (r.last_error or "") for r in rows)
    assert hole.accepted >= 2 * len(PHONES)
    # Meanwhile texts are answered and stored as usual.
    for phone in PHONES:
        assert (
            await text_in(http, live_server.settings, phone, world.n1, "anyone?")
        ).status_code == 200
    assert len(await messages(live_server.state, body="anyone?")) == len(PHONES)

    await hole.close()
    sink.start()
    try:

        async def all_sent() -> list[Notification]:
            rows = await alerts(live_server)
            return rows if rows and all(r.state == "sent" for r in rows) else []

        await eventually(all_sent, within=GUARD)
        await asyncio.sleep(1.5)
        emails = sink.emails()
        conversations = {r.conversation_id for r in await alerts(live_server)}
        assert len(conversations) == len(PHONES)
        links = sorted(e.text.rstrip().rsplit("/", 1)[1] for e in emails)
        assert links == sorted(str(c) for c in conversations), "one email per conversation"
    finally:
        sink.stop()
