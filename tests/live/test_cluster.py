"""Several `switchboard serve` processes behind one Redis act as one server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import redis.asyncio as aioredis
from sqlalchemy import delete

from server.auth import revoke_session
from server.settings import Settings
from store.models import InboxMember, User
from tests.live.conftest import REDIS_URL, with_redis
from tests.live.helpers import (
    Cluster,
    LiveClient,
    emit,
    eventually,
    seed_team,
    seqs,
    two_processes,
)
from tests.support.live_server import start_live_server


@pytest.fixture
async def cluster(settings: Settings) -> AsyncIterator[Cluster]:
    # No outbox polling: whatever reaches process B must have come through Redis.
    async with two_processes(with_redis(replace(settings, live_poll_seconds=0))) as both:
        yield both


async def test_an_event_committed_on_one_process_reaches_a_socket_on_another(
    cluster: Cluster,
) -> None:
    team = cluster.team
    channel = f"inbox:{team.inbox_a}"
    on_b = await LiveClient.connect(cluster.b.ws_url, team.ann.token)
    on_a = await LiveClient.connect(cluster.a.ws_url, team.bob.token)
    await on_b.subscribe(channel)
    await on_a.subscribe(channel)
    await emit(cluster.a.state, channel, 3)
    await emit(cluster.a.state, f"inbox:{team.inbox_b}")
    await emit(cluster.a.state, channel)
    for client in (on_a, on_b):
        assert seqs(await client.events(channel, 4), channel) == [1, 2, 3, 4]
        assert await client.quiet(0.3) == []
        await client.close()


async def test_removing_a_member_cuts_their_subscriptions_on_another_process(
    cluster: Cluster,
) -> None:
    team, state = cluster.team, cluster.a.state
    inbox, conversation = f"inbox:{team.inbox_a}", f"conversation:{team.conversation_a}"
    mine = f"user:{team.ann.user.id}"
    ann = await LiveClient.connect(cluster.b.ws_url, team.ann.token)
    bob = await LiveClient.connect(cluster.b.ws_url, team.bob.token)
    for channel in (inbox, conversation, mine):
        await ann.subscribe(channel)
        if channel == conversation:
            await ann.expect(op="event", channel=conversation, type="presence")
    await bob.subscribe(inbox)

    async with state.transaction() as session:
        await session.execute(
            delete(InboxMember).where(
                InboxMember.inbox_id == team.inbox_a, InboxMember.user_id == team.ann.user.id
            )
        )
    await state.access_changed(team.ann.user.id)
    revoked = [await ann.expect(op="event", type="access.revoked") for _ in range(2)]
    assert {frame["channel"] for frame in revoked} == {inbox, conversation}
    assert all("seq" not in frame for frame in revoked)

    await emit(state, inbox)
    await emit(state, conversation)
    await emit(state, mine)
    await bob.expect(op="event", channel=inbox, seq=1)
    # Only the user channel still flows to ann; the socket itself stays open.
    assert await ann.expect(op="event", channel=mine, seq=1)
    await ann.send({"op": "ping"})
    await ann.expect(op="pong")
    await ann.send({"op": "subscribe", "channel": inbox})
    await ann.expect(op="error", channel=inbox, code="forbidden")
    await ann.close()
    await bob.close()


async def test_logout_and_deactivation_revoke_every_channel(cluster: Cluster) -> None:
    team, state = cluster.team, cluster.a.state
    inbox, mine = f"inbox:{team.inbox_a}", f"user:{team.bob.user.id}"
    bob = await LiveClient.connect(cluster.b.ws_url, team.bob.token)
    for channel in (inbox, mine):
        await bob.subscribe(channel)
    async with state.transaction() as session:
        await revoke_session(session, team.bob.session_id)
    await state.access_changed(team.bob.user.id)
    revoked = [await bob.expect(op="event", type="access.revoked") for _ in range(2)]
    assert {frame["channel"] for frame in revoked} == {inbox, mine}
    assert {frame["data"]["reason"] for frame in revoked} == {"signed_out"}
    await emit(state, inbox)
    await bob.send({"op": "ping"})
    await bob.expect(op="pong")  # the socket stays open, silent on the revoked channels
    await bob.close()

    ann = await LiveClient.connect(cluster.b.ws_url, team.ann.token)
    await ann.subscribe(inbox, since=1)
    async with state.transaction() as session:
        user = await session.get(User, team.ann.user.id)
        assert user is not None
        user.active = False
    await state.access_changed(team.ann.user.id)
    frame = await ann.expect(op="event", channel=inbox, type="access.revoked")
    assert frame["data"]["reason"] == "signed_out"
    await ann.close()


async def test_a_process_listens_in_redis_only_to_channels_it_has_sockets_on(
    settings: Settings,
) -> None:
    shared = with_redis(settings)
    server = await start_live_server(shared)
    listening = aioredis.Redis.from_url(REDIS_URL)
    try:
        team = await seed_team(server.state)

        async def channels() -> set[str]:
            names = await listening.pubsub_channels(shared.redis_prefix + "*")
            return {name.decode().removeprefix(shared.redis_prefix) for name in names}

        async def has_only(expected: set[str]) -> bool:
            return await channels() == expected

        assert await channels() == {"_control"}
        first = await LiveClient.connect(server.ws_url, team.ann.token)
        second = await LiveClient.connect(server.ws_url, team.bob.token)
        for client in (first, second):
            await client.subscribe(f"inbox:{team.inbox_a}")
        await first.subscribe(f"user:{team.ann.user.id}")
        assert await channels() == {"_control", f"inbox:{team.inbox_a}", f"user:{team.ann.user.id}"}
        await first.close()
        await eventually(lambda: has_only({"_control", f"inbox:{team.inbox_a}"}))
        await second.send({"op": "unsubscribe", "channel": f"inbox:{team.inbox_a}"})
        await eventually(lambda: has_only({"_control"}))
        await second.close()
    finally:
        await listening.aclose()
        await server.stop()
