"""SIGTERM to a `serve` process (a deploy, a scale-down): it stops taking new connections,
finishes the webhooks it is in the middle of (200, stored), closes every socket with 1012 and a
reason telling the client to resume elsewhere with `since`, and nothing is lost."""

from __future__ import annotations

import asyncio
import signal
import socket
from urllib.parse import urlencode, urlsplit

import pytest

from server.settings import Settings
from server.state import AppState
from tests.faults.harness import (
    GUARD,
    Follower,
    assert_nothing_lost,
    cluster_settings,
    head,
    serve_processes,
    wait_until,
)
from tests.support.messaging import seed_world, signature
from tests.support.twilio_sender import WEBHOOK_PATH, TwilioSender, texts


class HalfSentWebhook:
    """A signed webhook whose body is only half sent: a request in flight at the server."""

    def __init__(self, base_url: str, public_url: str, token: str, params: dict[str, str]):
        self.address = urlsplit(base_url)
        body = urlencode(params).encode()
        sig = signature(token, public_url + WEBHOOK_PATH, params)
        self.head = (
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: {self.address.netloc}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nX-Twilio-Signature: {sig}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        self.body = body
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        host, port = self.address.hostname, self.address.port
        self.reader, self.writer = await asyncio.open_connection(host, port)
        self.writer.write(self.head + self.body[: len(self.body) // 2])
        await self.writer.drain()

    async def finish(self) -> int:
        """Send the rest of the body; the HTTP status of the answer."""
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.body[len(self.body) // 2 :])
        await self.writer.drain()
        status_line = await asyncio.wait_for(self.reader.readline(), GUARD)
        answer = await asyncio.wait_for(self.reader.read(), GUARD)
        self.writer.close()
        assert answer.endswith(b"<Response/>"), answer
        return int(status_line.split()[1])


def refuses_connections(base_url: str) -> bool:
    address = urlsplit(base_url)
    try:
        with socket.create_connection((address.hostname, address.port), timeout=0.5):
            return False
    except OSError:
        return True


@pytest.mark.slow
async def test_sigterm_finishes_in_flight_webhooks_and_sends_sockets_elsewhere(
    settings: Settings,
) -> None:
    shared = cluster_settings(settings)
    state = AppState(shared)
    world = await seed_world(state)
    channel = f"inbox:{world.admissions}"
    in_flight = texts(world.n1, 5, prefix="in flight")
    burst = texts(world.n1, 60, prefix="burst", first_phone=16175558100)

    with serve_processes(shared, 2) as (leaving, staying):
        sender = TwilioSender(
            shared.public_url, shared.webhook_auth_token, [leaving.base_url, staying.base_url]
        )
        on_leaving = Follower(world.tokens["member"], channel)
        on_staying = Follower(world.tokens["admin"], channel)
        half_sent = [
            HalfSentWebhook(leaving.base_url, shared.public_url, shared.webhook_auth_token, p)
            for p in in_flight
        ]
        try:
            await on_leaving.connect(leaving.ws_url)
            await on_staying.connect(staying.ws_url)
            for request in half_sent:
                await request.start()
            sending = asyncio.create_task(sender.burst(burst, concurrency=4))
            await wait_until(lambda: len(sender.answered_by(200)) >= 10)

            leaving.process.send_signal(signal.SIGTERM)
            await wait_until(lambda: refuses_connections(leaving.base_url))
            # The requests it was in the middle of still complete, stored.
            finished = await asyncio.gather(*(request.finish() for request in half_sent))
            assert finished == [200] * len(in_flight)
            code, reason = await on_leaving.disconnected()
            assert code == 1012 and "resume with since" in (reason or ""), (code, reason)
            assert await asyncio.to_thread(leaving.process.wait, GUARD) in (0, -signal.SIGTERM)
            await asyncio.wait_for(sending, GUARD)

            # No webhook got an error: at worst a refused connection, sent again elsewhere.
            assert {a.status for a in sender.failures()} <= {None}
            resumed = await on_leaving.connect(staying.ws_url, resume=True)
            assert resumed["seq"] == await head(state, channel)
            await assert_nothing_lost(
                state, channel, [*in_flight, *burst], [on_leaving, on_staying]
            )
        finally:
            for follower in (on_leaving, on_staying):
                await follower.close()
            await sender.close()
            await state.close()
