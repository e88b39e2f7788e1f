"""Fan-out of committed events to several users' sockets, and who may subscribe to what."""

from __future__ import annotations

from collections import Counter

import pytest

from realtime.protocol import Frame
from tests.live.helpers import LiveClient, Team, emit, seqs
from tests.support.live_server import LiveServer


async def test_every_member_gets_every_event_in_order(server: LiveServer, team: Team) -> None:
    channel = f"inbox:{team.inbox_a}"
    clients = [
        await LiveClient.connect(server.ws_url, member.token, encoding=encoding)
        for member, encoding in [
            (team.ann, "msgpack"),
            (team.ann, "json"),
            (team.bob, "msgpack"),
            (team.admin, "json"),
        ]
    ]
    for client in clients:
        assert (await client.subscribe(channel))["seq"] == 0
    await emit(server.state, channel, 3, body="hello")
    await emit(server.state, f"inbox:{team.inbox_b}", 2)
    await emit(server.state, channel, 2)
    for client in clients:
        frames = await client.events(channel, 5)
        assert seqs(frames, channel) == [1, 2, 3, 4, 5]
        assert frames[0]["type"] == "message.created"
        assert frames[0]["data"] == {"n": 0, "body": "hello"}
        assert await client.quiet(0.3) == []
        await client.close()


async def test_subscriptions_follow_inbox_membership(server: LiveServer, team: Team) -> None:
    ann = await LiveClient.connect(server.ws_url, team.ann.token)
    allowed = [
        f"inbox:{team.inbox_a}",
        f"conversation:{team.conversation_a}",
        f"user:{team.ann.user.id}",
    ]
    forbidden = [
        f"inbox:{team.inbox_b}",
        f"conversation:{team.conversation_b}",
        f"user:{team.bob.user.id}",
        "campaign:1",
        "inbox:999999",
        "conversation:999999",
        "nonsense:1",
    ]
    for channel in allowed:
        await ann.subscribe(channel)
        if channel.startswith("conversation:"):
            await ann.expect(op="event", channel=channel, type="presence")
    for channel in forbidden:
        await ann.send({"op": "subscribe", "channel": channel})
        await ann.expect(op="error", channel=channel, code="forbidden")

    admin = await LiveClient.connect(server.ws_url, team.admin.token)
    for channel in [f"inbox:{team.inbox_a}", f"inbox:{team.inbox_b}", "campaign:7"]:
        await admin.subscribe(channel)
    await admin.send({"op": "subscribe", "channel": f"user:{team.ann.user.id}"})
    await admin.expect(op="error", channel=f"user:{team.ann.user.id}", code="forbidden")

    # Nothing of a forbidden channel arrives, while the allowed ones flow.
    for channel in forbidden[:4]:
        await emit(server.state, channel)
    await emit(server.state, f"inbox:{team.inbox_a}")
    frame = await ann.expect(op="event", channel=f"inbox:{team.inbox_a}", seq=1)
    assert frame["type"] == "message.created"
    assert await ann.quiet(0.5) == []
    await ann.close()
    await admin.close()


async def test_unsubscribe_stops_the_flow(server: LiveServer, team: Team) -> None:
    channel = f"inbox:{team.inbox_a}"
    client = await LiveClient.connect(server.ws_url, team.bob.token)
    await client.subscribe(channel)
    await emit(server.state, channel)
    await client.expect(op="event", channel=channel, seq=1)
    await client.send({"op": "unsubscribe", "channel": channel})
    await client.send({"op": "ping"})
    await client.expect(op="pong")
    await emit(server.state, channel)
    assert await client.quiet(0.5) == []
    # Subscribing again picks up where it left off.
    await client.subscribe(channel, since=1)
    await client.expect(op="event", channel=channel, seq=2)
    await client.close()


async def test_each_event_is_encoded_once_per_encoding(
    server: LiveServer, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many sockets an event goes to, it is encoded (and framed) once per subprotocol."""
    encodes: Counter[str] = Counter()
    original = Frame.wire

    def counting(self: Frame, encoding: str) -> bytes:
        if (
            self.message.get("op") == "event"
            and (self._msgpack if encoding == "msgpack" else self._json) is None
        ):
            encodes[encoding] += 1
        return original(self, encoding)

    monkeypatch.setattr(Frame, "wire", counting)
    channel = f"inbox:{team.inbox_a}"
    clients = [
        await LiveClient.connect(server.ws_url, team.bob.token, encoding=encoding)
        for encoding in ["msgpack"] * 6 + ["json"] * 4
    ]
    for client in clients:
        await client.subscribe(channel)
    await emit(server.state, channel)
    for client in clients:
        await client.expect(op="event", channel=channel, seq=1)
        await client.close()
    assert encodes == {"msgpack": 1, "json": 1}
