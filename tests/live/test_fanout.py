"""Fan-out of committed events to several users' sockets, and who may subscribe to what."""

from __future__ import annotations

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
