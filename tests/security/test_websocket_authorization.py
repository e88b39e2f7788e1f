"""Who may follow which live channel: every channel kind × anonymous, staff member, staff
non-member, staff in no inbox, deactivated user, admin.

A refused subscription answers `error` `forbidden` naming only the channel asked for, replays
nothing (even with `since=0`), and lets nothing of the channel through afterwards. A user
deactivated while connected loses every channel at once and cannot subscribe again, not even to
their own `user:` channel. The HTTP side of the same matrix is tests/api/test_access_matrix.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from store import outbox
from tests.api.conftest import World, build_world
from tests.live.helpers import LiveClient
from tests.support.live_server import LiveServer
from tests.support.messaging import statements_of

GUARD = 30.0
OK, NO = "subscribed", "forbidden"


@pytest.fixture
async def world(live_server: LiveServer) -> World:
    return await build_world(live_server.state)


def channels(world: World) -> dict[str, str]:
    ids, users = world.ids, world.users
    return {
        "own inbox": f"inbox:{ids['inbox_a']}",
        "other inbox": f"inbox:{ids['inbox_b']}",
        "unrouted inbox": f"inbox:{ids['unrouted']}",
        "missing inbox": "inbox:987654321",
        "own conversation": f"conversation:{ids['conv_a']}",
        "other conversation": f"conversation:{ids['conv_b']}",
        "unrouted conversation": f"conversation:{ids['conv_u']}",
        "missing conversation": "conversation:987654321",
        "alice's user": f"user:{users['alice']}",
        "bob's user": f"user:{users['bob']}",
        "carol's user": f"user:{users['carol']}",
        "admin's user": f"user:{users['admin']}",
        "campaign": f"campaign:{ids['campaign_draft']}",
        "unknown kind": f"mailbox:{ids['inbox_a']}",
    }


# "own" is inbox A, whose member is alice; bob is in inbox B only; carol is in no inbox.
EXPECTED: dict[str, dict[str, str]] = {
    "alice": {
        "own inbox": OK,
        "own conversation": OK,
        "alice's user": OK,
    },
    "bob": {
        "other inbox": OK,
        "other conversation": OK,
        "bob's user": OK,
    },
    "carol": {"carol's user": OK},
    "admin": {
        "own inbox": OK,
        "other inbox": OK,
        "unrouted inbox": OK,
        "missing inbox": OK,  # admins see every inbox; one that does not exist shows nothing
        "own conversation": OK,
        "other conversation": OK,
        "unrouted conversation": OK,
        "admin's user": OK,
        "campaign": OK,
    },
}


async def open_as(server: LiveServer, world: World, who: str) -> LiveClient:
    return await LiveClient.connect(server.ws_url, world.tokens[who], encoding="json")


async def answers(client: LiveClient, asked: list[str]) -> dict[str, dict[str, Any]]:
    """Subscribe (with since=0) to each of `asked`; the answer to each, by channel."""
    for channel in asked:
        await client.send({"op": "subscribe", "channel": channel, "since": 0})
    found: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(GUARD):
        while len(found) < len(asked):
            frame = await client.recv()
            if frame["op"] in ("subscribed", "error"):
                assert frame.get("channel") in asked and frame["channel"] not in found, frame
                found[frame["channel"]] = frame
    return found


async def emit_everywhere(server: LiveServer, names: list[str], tag: str) -> None:
    """One event on each channel, committed through the unit of work."""
    async with server.state.transaction() as session:
        for channel in names:
            outbox.emit(session, channel, "message.created", {"tag": tag, "channel": channel})


async def until_live(client: LiveClient, channels: set[str]) -> None:
    """Read until the "live" event of every one of `channels` has come."""
    seen: set[str] = set()
    async with asyncio.timeout(GUARD):
        while not channels <= seen:
            frame = await client.recv()
            if frame.get("op") == "event" and frame["data"].get("tag") == "live":
                seen.add(frame["channel"])


def events_seen(client: LiveClient) -> set[str]:
    return {f["channel"] for f in client.frames if f.get("op") == "event"}


async def test_every_channel_kind_for_every_kind_of_user(
    live_server: LiveServer, world: World
) -> None:
    named = channels(world)
    asked = list(named.values())
    await emit_everywhere(live_server, asked, "history")  # something for since=0 to replay

    for who in (None, "dave"):  # nobody; deactivated with a token from before
        with pytest.raises(InvalidStatus) as refused:
            await LiveClient.connect(
                live_server.ws_url, world.tokens[who] if who else None, encoding="json"
            )
        assert refused.value.response.status_code == 401

    clients = {who: await open_as(live_server, world, who) for who in EXPECTED}
    try:
        for who, client in clients.items():
            got = await answers(client, asked)
            for name, channel in named.items():
                expected = EXPECTED[who].get(name, NO)
                frame = got[channel]
                if expected == OK:
                    assert frame["op"] == "subscribed", (who, name, frame)
                else:
                    assert frame == {
                        "op": "error",
                        "channel": channel,
                        "code": "forbidden",
                        "detail": frame["detail"],
                    }, (who, name, frame)
        await emit_everywhere(live_server, asked, "live")
        for who, client in clients.items():
            allowed = {named[name] for name, answer in EXPECTED[who].items() if answer == OK}
            await until_live(client, allowed)
            await client.quiet(1.0)  # anything leaking alongside would have arrived by now
            assert events_seen(client) == allowed, who
    finally:
        for client in clients.values():
            await client.close()


async def test_a_user_deactivated_while_connected_loses_every_channel(
    live_server: LiveServer, world: World, http: httpx.AsyncClient
) -> None:
    named = channels(world)
    erin_user = f"user:{world.users['erin']}"
    mine = [named["own inbox"], named["own conversation"], erin_user]
    erin = await open_as(live_server, world, "erin")
    try:
        got = await answers(erin, mine)
        assert {frame["op"] for frame in got.values()} == {"subscribed"}

        response = await http.patch(
            f"/api/v1/users/{world.users['erin']}",
            json={"active": False},
            headers=world.auth("admin"),
        )
        assert response.status_code == 200, response.text
        revoked = set()
        async with asyncio.timeout(GUARD):
            while revoked != set(mine):
                frame = await erin.recv()
                if frame.get("type") == "access.revoked":
                    revoked.add(frame["channel"])

        again = await answers(erin, mine)
        assert {frame.get("code") for frame in again.values()} == {"forbidden"}
        await emit_everywhere(live_server, mine, "after")
        assert [f for f in await erin.quiet(1.5) if f.get("op") == "event"] == []
    finally:
        await erin.close()


async def test_a_storm_of_sockets_each_gets_its_own_answers(
    live_server: LiveServer, world: World
) -> None:
    """Sockets of every kind of user open and subscribe all at once, as after a deploy: their
    sign-ins and subscriptions are looked up together, and each still gets exactly its own
    user's answers (and a refused sign-in stays refused)."""
    named = channels(world)
    asked = list(named.values())
    crowd = [who for who in EXPECTED for _ in range(6)]
    with statements_of(live_server.state.read_engine) as executed:
        refused, clients = await asyncio.gather(
            asyncio.gather(
                *(
                    LiveClient.connect(live_server.ws_url, token, encoding="json")
                    for token in [world.tokens["dave"], "not-a-token"] * 3
                ),
                return_exceptions=True,
            ),
            asyncio.gather(*(open_as(live_server, world, who) for who in crowd)),
        )
        try:
            got = await asyncio.gather(*(answers(client, asked) for client in clients))
        finally:
            await asyncio.gather(*(client.close() for client in clients))
    looked_up = [statement for _, statement in executed if "FROM auth_sessions" in statement]

    assert all(
        isinstance(error, InvalidStatus) and error.response.status_code == 401 for error in refused
    ), refused
    for who, frames in zip(crowd, got, strict=True):
        for name, channel in named.items():
            expected = EXPECTED[who].get(name, NO)
            frame = frames[channel]
            assert frame["op"] == ("subscribed" if expected == OK else "error"), (who, name, frame)
    # Unbatched, each socket would have read its sign-in session twice (handshake, subscribe).
    assert len(looked_up) < 2 * len(crowd + refused)
