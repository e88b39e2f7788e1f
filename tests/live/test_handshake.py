"""The handshake: who may open `/ws`, how, and with which subprotocol."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import InvalidStatus

from tests.live.helpers import LiveClient, Team, sign_in
from tests.support.live_server import LiveServer


async def refused(server: LiveServer, **options) -> int:
    with pytest.raises(InvalidStatus) as caught:
        await LiveClient.connect(server.ws_url, **options)
    response = caught.value.response
    body = json.loads(response.body)
    assert set(body) == {"error", "detail"}
    return response.status_code


async def test_bearer_token_opens_a_socket(server: LiveServer, team: Team) -> None:
    client = await LiveClient.connect(server.ws_url, team.ann.token)
    assert client.ws.subprotocol == "msgpack"
    await client.send({"op": "ping"})
    await client.expect(op="pong")
    await client.close()


async def test_session_cookie_needs_this_sites_origin(server: LiveServer, team: Team) -> None:
    client = await LiveClient.connect(
        server.ws_url, cookie=team.ann.token, origin=server.settings.public_url
    )
    await client.subscribe(f"inbox:{team.inbox_a}")
    await client.close()

    cross_site = {"cookie": team.ann.token, "origin": "https://evil.example"}
    assert await refused(server, **cross_site) == 403
    other_port = server.settings.public_url.rsplit(":", 1)[0] + ":1"
    assert await refused(server, cookie=team.ann.token, origin=other_port) == 403
    assert await refused(server, cookie=team.ann.token) == 403  # no Origin at all


async def test_bearer_token_decides_over_the_cookie(server: LiveServer, team: Team) -> None:
    # A bearer header cannot be set cross-site by a browser, so no Origin check is needed.
    client = await LiveClient.connect(
        server.ws_url, team.bob.token, cookie="garbage", origin="https://evil.example"
    )
    await client.subscribe(f"inbox:{team.inbox_a}")
    await client.close()


async def test_unauthenticated_handshakes_are_refused(server: LiveServer, team: Team) -> None:
    assert await refused(server) == 401
    assert await refused(server, token="not-a-token") == 401
    assert await refused(server, cookie="not-a-token", origin=server.settings.public_url) == 401

    # A revoked session (logout) or a deactivated user cannot open a socket either.
    from server.auth import revoke_user_sessions
    from store.models import User

    token = await sign_in(server.state, team.cy.user)
    async with server.state.transaction() as session:
        await revoke_user_sessions(session, team.cy.user.id)
    assert await refused(server, token=token) == 401
    token = await sign_in(server.state, team.bob.user)
    async with server.state.transaction() as session:
        user = await session.get(User, team.bob.user.id)
        assert user is not None
        user.active = False
    assert await refused(server, token=token) == 401


async def test_subprotocols(server: LiveServer, team: Team) -> None:
    client = await LiveClient.connect(server.ws_url, team.ann.token, encoding="json")
    assert client.ws.subprotocol == "json"
    await client.send({"op": "ping"})
    await client.expect(op="pong")  # a text frame holding JSON (checked by recv)
    await client.close()

    # No subprotocol offered: msgpack, the default.
    client = await LiveClient.connect(server.ws_url, team.ann.token, subprotocols=[])
    assert client.ws.subprotocol is None
    await client.send({"op": "ping"})
    await client.expect(op="pong")
    await client.close()

    assert await refused(server, token=team.ann.token, subprotocols=["xml"]) == 400
