"""Whatever a client sends, the answer is an `error` frame or a close with a reason, never a
crash: the socket (when it stays open) and everyone else carry on."""

from __future__ import annotations

import json

import msgpack

from tests.live.helpers import LiveClient, Team, emit
from tests.support.live_server import LiveServer

BAD_MSGPACK: list[bytes | str] = [
    b"\xc1\xff\x00garbage",
    b"",
    msgpack.packb([1, 2, 3]),
    msgpack.packb("subscribe"),
    msgpack.packb({"op": 7}),
    msgpack.packb({"channel": "inbox:1"}),
    msgpack.packb({"op": "shout"}),
    msgpack.packb({"op": "subscribe"}),
    msgpack.packb({"op": "subscribe", "channel": 12}),
    msgpack.packb({"op": "subscribe", "channel": "inbox:abc"}),
    msgpack.packb({"op": "subscribe", "channel": "inbox:1 OR 1=1"}),
    msgpack.packb({"op": "subscribe", "channel": "x" * 500}),
    msgpack.packb({"op": "subscribe", "channel": msgpack.ExtType(1, b"inbox:1")}),
    msgpack.packb({"op": "subscribe", "channel": "inbox:1", "since": -1}),
    msgpack.packb({"op": "subscribe", "channel": "inbox:1", "since": "3"}),
    msgpack.packb({"op": "subscribe", "channel": "inbox:1", "since": True}),
    msgpack.packb({"op": "subscribe", "channel": "inbox:1", "since": 2.5}),
    msgpack.packb({"op": "subscribe", "channel": "inbox:1", "since": 2**64 - 1}),
    msgpack.packb({"op": "unsubscribe", "channel": None}),
    msgpack.packb({"op": "typing"}),
    msgpack.packb({"op": "typing", "conversation": "1"}),
    msgpack.packb({"op": "typing", "conversation": 0}),
    msgpack.packb({"op": "viewing", "conversation": [1]}),
    msgpack.packb({b"op": b"ping"}),
    '{"op": "ping"}',  # a text frame on the binary subprotocol
]

BAD_JSON: list[bytes | str] = [
    "{not json",
    "",
    "[]",
    "null",
    '{"op": "subscribe", "channel": "inbox:1", "since": 1e3}',
    json.dumps({"op": "ping"}).encode(),  # a binary frame on the text subprotocol
]


async def test_malformed_frames_get_an_error_and_the_socket_carries_on(
    server: LiveServer, team: Team
) -> None:
    channel = f"inbox:{team.inbox_a}"
    for encoding, frames in (("msgpack", BAD_MSGPACK), ("json", BAD_JSON)):
        client = await LiveClient.connect(server.ws_url, team.ann.token, encoding=encoding)
        for data in frames:
            await client.ws.send(data)
            frame = await client.expect(op="error", code="bad_request")
            assert isinstance(frame["detail"], str) and frame["detail"]
        await client.subscribe(channel)
        await emit(server.state, channel)
        await client.until(op="event", channel=channel)
        await client.close()


async def test_an_oversized_frame_closes_with_a_reason(server: LiveServer, team: Team) -> None:
    client = await LiveClient.connect(server.ws_url, team.ann.token)
    await client.send({"op": "ping", "padding": "x" * 70_000})
    code, reason = await client.closed()
    assert code == 1009 and "65536" in (reason or "")

    # Multi-byte text counts in bytes, not characters.
    client = await LiveClient.connect(server.ws_url, team.ann.token, encoding="json")
    await client.send({"op": "ping", "padding": "é" * 40_000})
    assert (await client.closed())[0] == 1009


async def test_a_flood_of_bad_frames_closes_the_socket(server: LiveServer, team: Team) -> None:
    client = await LiveClient.connect(server.ws_url, team.bob.token)
    for _ in range(60):
        await client.ws.send(b"\xc1")
    code, reason = await client.closed()
    assert code == 1008 and reason == "too many bad frames"
    assert sum(frame["op"] == "error" for frame in client.frames) == 51


async def test_too_many_subscriptions(server: LiveServer, team: Team) -> None:
    client = await LiveClient.connect(server.ws_url, team.admin.token)
    for n in range(1, 201):
        await client.send({"op": "subscribe", "channel": f"inbox:{n}"})
    for n in range(1, 201):
        await client.expect(op="subscribed", channel=f"inbox:{n}")
    await client.send({"op": "subscribe", "channel": "inbox:201"})
    await client.expect(op="error", channel="inbox:201", code="too_many_subscriptions")
    # Re-subscribing to a channel it has is not one more.
    await client.subscribe("inbox:1", since=0)
    await client.send({"op": "unsubscribe", "channel": "inbox:2"})
    await client.subscribe("inbox:201")
    await client.close()
