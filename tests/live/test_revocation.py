"""Losing access ends everything of the channel at once: subscription, viewing, typing."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete

from realtime import Principal
from server.live import node_of
from server.policy import ChannelPolicy
from server.services import admin
from store.models import InboxMember
from tests.live.helpers import LiveClient, Team, emit, eventually, remove_member
from tests.support.live_server import LiveServer
from tests.support.messaging import statements_of


async def test_a_removed_member_stops_viewing_and_typing(server: LiveServer, team: Team) -> None:
    state = server.state
    inbox, conversation = f"inbox:{team.inbox_a}", f"conversation:{team.conversation_a}"
    ann = await LiveClient.connect(server.ws_url, team.ann.token)
    bob = await LiveClient.connect(server.ws_url, team.bob.token)
    await bob.subscribe(conversation)
    await bob.expect(type="presence")
    for channel in (inbox, conversation):
        await ann.subscribe(channel)
    await ann.expect(type="presence")
    await ann.send({"op": "viewing", "conversation": team.conversation_a})
    await ann.send({"op": "typing", "conversation": team.conversation_a})
    await bob.until(type="typing")
    await ann.until(
        type="presence",
        data={
            "conversation_id": team.conversation_a,
            "viewers": [{"user_id": team.ann.user.id, "name": "Ann"}],
        },
    )

    await remove_member(state, team.inbox_a, team.ann.user.id)

    revoked = [await ann.expect(op="event", type="access.revoked") for _ in range(2)]
    assert {frame["channel"] for frame in revoked} == {inbox, conversation}
    assert {frame["data"]["reason"] for frame in revoked} == {"access_removed"}
    # Bob sees her stop typing and leave, at once rather than when her socket goes.
    seen = [await bob.recv() for _ in range(2)]
    assert {frame["type"] for frame in seen} == {"typing", "presence"}
    for frame in seen:
        if frame["type"] == "typing":
            assert frame["data"]["typing"] is False
        else:
            assert frame["data"]["viewers"] == []
    await emit(state, inbox)
    await emit(state, conversation)
    await bob.expect(op="event", channel=conversation, seq=1)
    await ann.send({"op": "typing", "conversation": team.conversation_a})
    await ann.expect(op="error", code="forbidden", channel=conversation)
    assert await ann.quiet(0.5) == []
    await ann.close()
    await bob.close()


async def test_answers_are_remembered_per_socket_until_access_changes(
    server: LiveServer, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Subscribing to the same channel again and again asks the policy once; a change of
    access (here: being added to the inbox) makes the socket ask afresh."""
    asked: list[str] = []
    authorize = ChannelPolicy.authorize

    async def counting(self: ChannelPolicy, principal: Principal, channels: list[str]):  # noqa: ANN202
        asked.extend(channels)
        return await authorize(self, principal, channels)

    monkeypatch.setattr(ChannelPolicy, "authorize", counting)
    inbox = f"inbox:{team.inbox_a}"
    cy = await LiveClient.connect(server.ws_url, team.cy.token)
    for _ in range(5):
        await cy.send({"op": "subscribe", "channel": inbox})
        await cy.expect(op="error", code="forbidden", channel=inbox)
    assert asked == [inbox]

    async with server.state.transaction() as session:
        assert await admin.add_member(server.state, session, team.inbox_a, team.cy.user.id)

    async def subscribed() -> bool:
        await cy.send({"op": "subscribe", "channel": inbox})
        return (await cy.recv())["op"] == "subscribed"

    await eventually(subscribed)
    for _ in range(3):
        await cy.subscribe(inbox)
    assert asked.count(inbox) == 2
    await cy.close()


async def test_the_access_sweep_asks_about_many_sockets_in_a_few_reads(
    server: LiveServer, team: Team
) -> None:
    """The periodic sweep catches a change nobody announced; its sockets' questions go to the
    policy together (one socket after another cost a read each: 2.7 s of CPU a sweep for
    2,000 sockets)."""
    inbox = f"inbox:{team.inbox_a}"
    clients = await asyncio.gather(
        *(LiveClient.connect(server.ws_url, team.ann.token) for _ in range(300))
    )
    await asyncio.gather(*(client.subscribe(inbox) for client in clients))
    async with server.state.transaction() as session:  # behind the node's back
        await session.execute(
            delete(InboxMember).where(
                InboxMember.inbox_id == team.inbox_a, InboxMember.user_id == team.ann.user.id
            )
        )
    node = node_of(server.state)
    assert node is not None
    with statements_of(server.state.read_engine) as statements:
        await node._recheck_all()
    revoked = await asyncio.gather(
        *(client.expect(op="event", type="access.revoked") for client in clients)
    )
    assert {frame["channel"] for frame in revoked} == {inbox}
    assert len(statements) < 40  # a group of sockets per read, not 300 reads
    await asyncio.gather(*(client.close() for client in clients))
