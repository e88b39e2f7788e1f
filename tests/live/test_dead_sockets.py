"""Sockets that vanish without a goodbye: the server's pings find them, and their presence
goes with them — also when a whole server process dies (its Redis entries expire)."""

from __future__ import annotations

import asyncio
import base64
import json
import os

import pytest

from server.settings import Settings
from tests.live.conftest import with_redis
from tests.live.helpers import LiveClient, eventually, seed_team, two_processes
from tests.support.live_server import start_live_server


def viewers(frame: dict) -> list[int]:
    return [viewer["user_id"] for viewer in frame["data"]["viewers"]]


async def mute_client(port: int, token: str, frame: dict) -> asyncio.StreamWriter:
    """A client that opens a socket, sends one frame, then never reads (nor answers a ping)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: json\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    response = await reader.readuntil(b"\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 101"), response
    payload = json.dumps(frame).encode()
    mask = os.urandom(4)
    assert len(payload) < 126
    writer.write(
        bytes([0x81, 0x80 | len(payload)])
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )
    await writer.drain()
    return writer


async def test_a_silent_socket_is_reaped_and_leaves(live_settings: Settings) -> None:
    server = await start_live_server(live_settings, ws_ping_interval=0.3, ws_ping_timeout=0.3)
    try:
        team = await seed_team(server.state)
        channel = f"conversation:{team.conversation_a}"
        bob = await LiveClient.connect(server.ws_url, team.bob.token)
        await bob.subscribe(channel)
        assert viewers(await bob.expect(type="presence")) == []
        port = int(server.base_url.rsplit(":", 1)[1])
        mute = await mute_client(
            port, team.ann.token, {"op": "viewing", "conversation": team.conversation_a}
        )
        assert viewers(await bob.expect(type="presence")) == [team.ann.user.id]
        # No pong comes back: the server drops the socket, and ann stops viewing.
        assert viewers(await bob.expect(type="presence")) == []
        stats = server.state.publisher.stats  # type: ignore[union-attr]
        await eventually(lambda: stats()["connections"] == 1)
        mute.close()
        await bob.close()
    finally:
        await server.stop()


@pytest.mark.slow
async def test_no_ghost_viewers_after_a_server_process_dies(settings: Settings) -> None:
    async with two_processes(with_redis(settings)) as both:
        team = both.team
        channel = f"conversation:{team.conversation_a}"
        bob = await LiveClient.connect(both.a.ws_url, team.bob.token)
        await bob.subscribe(channel)
        assert viewers(await bob.expect(type="presence")) == []
        ann = await LiveClient.connect(both.b.ws_url, team.ann.token)
        await ann.send({"op": "viewing", "conversation": team.conversation_a})
        assert viewers(await bob.expect(type="presence")) == [team.ann.user.id]
        both.b.kill()  # SIGKILL: no goodbye, no cleanup
        frame = await bob.expect(within=40, op="event", channel=channel, type="presence")
        assert viewers(frame) == []
        await bob.close()
