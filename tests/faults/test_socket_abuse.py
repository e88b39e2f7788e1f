"""Sockets that misbehave, against a real `serve` process: one that stops reading, one that
sends 10,000 subscribe frames, 10 MiB frames, 1,000 sockets opened and dropped at once.

Each time the process stays up and a bystander — a member following the inbox on the same
process — still gets every event of the texts that arrive meanwhile, within a failure guard.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgpack
import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from server.settings import Settings
from server.state import AppState
from tests.faults.harness import (
    GUARD,
    Follower,
    assert_saw_every_event_once,
    cluster_settings,
    head,
    serve_processes,
    wait_until,
)
from tests.live.helpers import LiveClient
from tests.support.live_server import ServerProcess
from tests.support.messaging import World, seed_world
from tests.support.twilio_sender import TwilioSender, texts

MIB = 1024 * 1024


@dataclass
class Target:
    process: ServerProcess
    settings: Settings
    state: AppState
    world: World
    sender: TwilioSender
    bystander: Follower
    http: httpx.AsyncClient

    @property
    def channel(self) -> str:
        return f"inbox:{self.world.admissions}"

    @property
    def port(self) -> int:
        return int(self.process.base_url.rsplit(":", 1)[1])

    async def texts_reach_the_bystander(self, count: int = 3, body_chars: int = 20) -> None:
        """`count` texts arrive and the bystander gets every event of them, in order."""
        batch = texts(self.world.n1, count, prefix="x" * body_chars)
        await self.sender.burst(batch, concurrency=count)
        await self.bystander.until_seq(await head(self.state, self.channel), within=GUARD)

    async def metric(self, name: str) -> float:
        text = (await self.http.get("/metrics")).text
        found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        assert found, f"/metrics has no {name}"
        return float(found.group(1))

    async def open_sockets(self) -> int:
        return int(await self.metric("switchboard_ws_connections"))

    def peak_rss(self) -> int:
        """The serve process's peak resident memory so far, in bytes."""
        status = Path(f"/proc/{self.process.process.pid}/status").read_text()
        found = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.MULTILINE)
        assert found
        return int(found.group(1)) * 1024

    def assert_alive(self) -> None:
        assert self.process.process.poll() is None, "the serve process died"


@pytest.fixture
async def target(settings: Settings) -> AsyncIterator[Target]:
    shared = cluster_settings(settings)
    state = AppState(shared)
    world = await seed_world(state)
    with serve_processes(shared, 1) as (process,):
        sender = TwilioSender(shared.public_url, shared.webhook_auth_token, [process.base_url])
        bystander = Follower(world.tokens["member"], f"inbox:{world.admissions}")
        http = httpx.AsyncClient(base_url=process.base_url, timeout=GUARD)
        await bystander.connect(process.ws_url)
        found = Target(process, shared, state, world, sender, bystander, http)
        try:
            yield found
            found.assert_alive()
            assert (await http.get("/healthz")).status_code == 200
            await found.texts_reach_the_bystander()
            assert_saw_every_event_once(bystander, await head(state, found.channel))
        finally:
            await bystander.close()
            await http.aclose()
            await sender.close()
            await state.close()


class RawSocket:
    """A websocket client written by hand, so it can do what no library lets it: never read
    (with a tiny receive buffer), or send one frame of any size."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self, receive_buffer: int | None = None) -> None:
        sock = socket.socket()
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: msgpack\r\n"
                f"Authorization: Bearer {self.token}\r\n\r\n"
            ).encode()
        )
        response = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), GUARD)
        assert response.startswith(b"HTTP/1.1 101"), response

    async def send(self, payload: bytes, opcode: int = 0x2, announce: int | None = None) -> None:
        """One frame carrying `payload`, or only its start when the header `announce`s more."""
        assert self.writer is not None
        length = len(payload) if announce is None else announce
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        # A zero mask leaves the payload as it is (masking is mandatory, its value is not).
        self.writer.write(header + b"\0\0\0\0" + payload)
        await self.writer.drain()

    async def close_code(self) -> int:
        """Read to the server's close frame; its code."""
        assert self.reader is not None
        while True:
            first, second = await asyncio.wait_for(self.reader.readexactly(2), GUARD)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(length)
            if first & 0x0F == 0x8:
                return int(struct.unpack("!H", payload[:2])[0])

    def drop(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()


@pytest.mark.slow
async def test_a_client_that_stops_reading_is_cut_and_delays_nobody(target: Target) -> None:
    mute = RawSocket(target.port, target.world.tokens["admin"])
    await mute.open(receive_buffer=4096)
    await mute.send(msgpack.packb({"op": "subscribe", "channel": target.channel}))
    # Big texts (9,000 characters each): megabytes of events the mute client never takes.
    # The bystander gets each batch while the server's buffers to the mute client fill up,
    # its sends stall, and the server cuts it.
    deadline = asyncio.get_running_loop().time() + GUARD * 3
    while await target.open_sockets() > 1:
        assert asyncio.get_running_loop().time() < deadline, "the mute socket was never cut"
        await target.texts_reach_the_bystander(count=25, body_chars=9000)
    # Operators see it: one slow consumer cut, nothing left waiting in send queues.
    assert await target.metric("switchboard_ws_slow_consumer_disconnects_total") == 1
    assert await target.metric("switchboard_ws_send_queue_depth") == 0
    mute.drop()


@pytest.mark.slow
async def test_ten_thousand_subscribe_frames(target: Target) -> None:
    world = target.world
    # The flooder queues its own pings behind its flood: it must not time itself out.
    flood = await LiveClient.connect(
        target.process.ws_url, world.tokens["member"], ping_interval=None
    )
    frames = []
    for n in range(10_000):
        # Half its own inbox, the rest another inbox or ones that do not exist.
        channel = target.channel if n % 2 else f"inbox:{world.aid if n % 4 else 10**6 + n}"
        frames.append(msgpack.packb({"op": "subscribe", "channel": channel}))

    async def send_all() -> None:
        for frame in frames:
            await flood.ws.send(frame)

    sending = asyncio.create_task(send_all())
    answers: dict[str, int] = {}

    async def read_answers() -> tuple[int | None, str | None] | None:
        """Answers until every frame has one; or the close, if the server cut the flooder."""
        try:
            while sum(answers.values()) < len(frames):
                frame = await flood.recv(within=GUARD)
                if frame["op"] == "event":  # the texts of the bystander's check
                    continue
                key = frame["op"] if frame["op"] != "error" else f"error:{frame['code']}"
                answers[key] = answers.get(key, 0) + 1
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, None)
        return None

    reading = asyncio.create_task(read_answers())
    await wait_until(lambda: sum(answers.values()) >= 1000, within=GUARD * 2)
    await target.texts_reach_the_bystander()  # in the middle of the flood
    closed = await asyncio.wait_for(reading, GUARD * 5)
    sending.cancel()
    await asyncio.gather(sending, return_exceptions=True)
    # Only answers it asked for: its own channel subscribed (again and again), the others
    # refused one by one. Either every frame was answered, or the server cut the flooder with
    # a reason when its backlog kept its pings unanswered.
    assert set(answers) <= {"subscribed", "error:forbidden"}
    if closed is None:
        assert answers == {"subscribed": 5_000, "error:forbidden": 5_000}
    else:
        code, reason = closed
        assert code in (1008, 1011, 4008) and reason, closed
    await flood.close()


@pytest.mark.slow
async def test_ten_mib_frames_are_refused_from_their_header(target: Target) -> None:
    token = target.world.tokens["member"]
    before = target.peak_rss()
    # A frame announcing 10 MiB is refused once its header is read: the server neither waits
    # for the rest nor keeps any of it (binary for msgpack, text for json alike).
    for opcode in (0x2, 0x1):
        raw = RawSocket(target.port, token)
        await raw.open()
        await raw.send(b"\x81\xa2op", opcode, announce=10 * MIB)
        assert await raw.close_code() == 1009
        raw.drop()

    # Eight clients each pushing a whole 10 MiB frame at once.
    huge = msgpack.packb({"op": "ping", "padding": b"\xab" * (10 * MIB)})
    crowd = [RawSocket(target.port, token) for _ in range(8)]
    for raw in crowd:
        await raw.open()

    async def push(raw: RawSocket) -> None:
        with contextlib.suppress(ConnectionError):  # refused before it was all sent
            await raw.send(huge)

    await asyncio.gather(*(push(raw) for raw in crowd))
    for raw in crowd:
        raw.drop()
    await target.texts_reach_the_bystander()
    grown = target.peak_rss() - before
    assert grown < 32 * MIB, f"80 MiB of frames made the server grow by {grown // MIB} MiB"


@pytest.mark.slow
async def test_a_thousand_sockets_opened_and_dropped_at_once(target: Target) -> None:
    token = target.world.tokens["admin"]  # the crowd follows the bystander's inbox too
    gate = asyncio.Semaphore(50)

    async def open_one() -> LiveClient:
        """One socket, subscribed; a handshake the busy server dropped is tried again, as a
        browser would."""
        for attempt in range(5):
            try:
                async with gate:
                    client = await LiveClient.connect(target.process.ws_url, token)
                    await client.subscribe(target.channel)
                    return client
            except (InvalidHandshake, OSError, TimeoutError):
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    crowd = await asyncio.gather(*(open_one() for _ in range(1000)))
    assert await target.open_sockets() == 1001
    await target.texts_reach_the_bystander()  # fanned out to a thousand sockets more
    for client in crowd:
        client.ws.transport.abort()  # gone, without a close handshake
    await target.texts_reach_the_bystander()

    async def back_to_one() -> bool:
        return await target.open_sockets() == 1

    deadline = asyncio.get_running_loop().time() + GUARD
    while not await back_to_one():
        assert asyncio.get_running_loop().time() < deadline, "dropped sockets were not let go"
        await asyncio.sleep(0.2)
