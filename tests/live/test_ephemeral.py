"""Typing and presence: no seq, never replayed, members only, and they end by themselves."""

from __future__ import annotations

from tests.live.helpers import LiveClient, Team
from tests.support.live_server import LiveServer


def viewers(frame: dict) -> list[int]:
    return [viewer["user_id"] for viewer in frame["data"]["viewers"]]


async def test_typing_reaches_the_others_and_expires(server: LiveServer, team: Team) -> None:
    channel = f"conversation:{team.conversation_a}"
    ann = await LiveClient.connect(server.ws_url, team.ann.token)
    bob = await LiveClient.connect(server.ws_url, team.bob.token, encoding="json")
    for client in (ann, bob):
        await client.subscribe(channel)
        await client.expect(op="event", channel=channel, type="presence")

    await ann.send({"op": "typing", "conversation": team.conversation_a})
    frame = await bob.expect(op="event", channel=channel, type="typing")
    assert "seq" not in frame
    assert frame["data"]["typing"] is True
    assert frame["data"]["user_id"] == team.ann.user.id
    assert frame["data"]["name"] == "Ann"
    assert frame["data"]["conversation_id"] == team.conversation_a

    # Without a refresh it expires by itself (~6 s), and everyone is told.
    frame = await bob.expect(within=12, op="event", channel=channel, type="typing")
    assert frame["data"]["typing"] is False
    assert frame["data"]["user_id"] == team.ann.user.id
    assert ann.frames[-1]["type"] == "presence"  # she never hears her own typing
    assert await ann.quiet(0.3) == []

    # Typing is never replayed to a late subscriber.
    late = await LiveClient.connect(server.ws_url, team.admin.token)
    await late.subscribe(channel, since=0)
    await late.expect(op="event", channel=channel, type="presence")
    assert await late.quiet(0.5) == []
    for client in (ann, bob, late):
        await client.close()


async def test_typing_goes_when_the_socket_goes(server: LiveServer, team: Team) -> None:
    channel = f"conversation:{team.conversation_a}"
    ann = await LiveClient.connect(server.ws_url, team.ann.token)
    bob = await LiveClient.connect(server.ws_url, team.bob.token)
    await bob.subscribe(channel)
    await ann.send({"op": "typing", "conversation": team.conversation_a})
    assert (await bob.until(type="typing"))["data"]["typing"] is True
    await ann.close()
    assert (await bob.until(within=3, type="typing"))["data"]["typing"] is False
    await bob.close()


async def test_typing_and_viewing_are_for_members_only(server: LiveServer, team: Team) -> None:
    cy = await LiveClient.connect(server.ws_url, team.cy.token)
    channel = f"conversation:{team.conversation_a}"
    await cy.send({"op": "typing", "conversation": team.conversation_a})
    await cy.expect(op="error", code="forbidden", channel=channel)
    await cy.send({"op": "viewing", "conversation": team.conversation_a})
    await cy.expect(op="error", code="forbidden", channel=channel)
    await cy.send({"op": "typing", "conversation": 10**9})
    await cy.expect(op="error", code="forbidden")
    await cy.close()


async def test_presence_shows_who_views_a_thread_until_the_socket_goes(
    server: LiveServer, team: Team
) -> None:
    channel = f"conversation:{team.conversation_a}"
    bob = await LiveClient.connect(server.ws_url, team.bob.token)
    await bob.subscribe(channel)
    assert viewers(await bob.expect(op="event", channel=channel, type="presence")) == []

    ann_phone = await LiveClient.connect(server.ws_url, team.ann.token)
    ann_laptop = await LiveClient.connect(server.ws_url, team.ann.token, encoding="json")
    for tab in (ann_phone, ann_laptop):
        await tab.send({"op": "viewing", "conversation": team.conversation_a})
        frame = await bob.expect(op="event", channel=channel, type="presence")
        assert "seq" not in frame
        assert frame["data"]["viewers"] == [{"user_id": team.ann.user.id, "name": "Ann"}]

    # A late subscriber is told who is there right after `subscribed`.
    admin = await LiveClient.connect(server.ws_url, team.admin.token)
    await admin.subscribe(channel)
    assert viewers(await admin.expect(op="event", type="presence")) == [team.ann.user.id]

    await ann_phone.close()  # one tab left: she is still there
    assert viewers(await bob.expect(op="event", type="presence")) == [team.ann.user.id]
    await ann_laptop.send({"op": "viewing", "conversation": None})  # looks away
    assert viewers(await bob.expect(op="event", type="presence")) == []
    await ann_laptop.send({"op": "viewing", "conversation": team.conversation_a})
    assert viewers(await bob.expect(op="event", type="presence")) == [team.ann.user.id]
    await bob.send({"op": "viewing", "conversation": team.conversation_a})
    assert viewers(await bob.expect(op="event", type="presence")) == [
        team.ann.user.id,
        team.bob.user.id,
    ]
    await ann_laptop.close()  # the socket goes: so does she
    assert viewers(await bob.expect(op="event", type="presence")) == [team.bob.user.id]
    # Everyone subscribed saw the same changes, the last one being bob alone.
    await admin.until(type="presence", data=bob.frames[-1]["data"])
    await bob.close()
    await admin.close()
