"""A database that goes away: 503 with Retry-After (so Twilio retries), never a 200 or a trace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from websockets.exceptions import InvalidStatus

from server.settings import Settings
from store.models import Contact
from tests.live.helpers import LiveClient
from tests.ops.conftest import TcpRelay, drop_database
from tests.ops.test_health import POSTGRES_ONLY
from tests.support.live_server import LiveServer, free_port, start_live_server
from tests.support.messaging import (
    events,
    inbound_params,
    messages,
    seed_world,
    signed_post,
    text_in,
)


async def store_contact(request: Request) -> JSONResponse:
    """Writes through the real unit of work, like every handler that stores something."""
    state = request.app.state.switchboard
    phone = request.query_params["phone"]
    async with state.transaction() as session:
        session.add(Contact(phone=phone))
    return JSONResponse({"stored": phone})


async def count_contacts(request: Request) -> JSONResponse:
    async with request.app.state.switchboard.reading() as session:
        phones = (await session.scalars(select(Contact.phone))).all()
    return JSONResponse({"phones": list(phones)})


def add_test_routes(server: LiveServer) -> None:
    # The router reads its route list at each request, so routes may be added once it runs.
    server.app.router.routes.append(Route("/_store", store_contact, methods=["POST"]))
    server.app.router.routes.append(Route("/_contacts", count_contacts))


@pytest.fixture
async def writer(settings: Settings) -> AsyncIterator[LiveServer]:
    """The real app with two extra routes that write and read through its unit of work."""
    server = await start_live_server(settings)
    add_test_routes(server)
    yield server
    await server.stop()


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"] == "unavailable"
    assert "Traceback" not in response.text


@pytest.mark.parametrize("database_url", POSTGRES_ONLY, indirect=True)
async def test_dropped_database_answers_503_with_retry_after(
    settings: Settings, writer: LiveServer
) -> None:
    async with httpx.AsyncClient(base_url=writer.base_url, timeout=15) as http:
        stored = await http.post("/_store", params={"phone": "+15550000001"})
        assert stored.status_code == 200, stored.text

        await drop_database(settings.database_url)

        for _ in range(3):  # pooled connections died with it; new ones cannot be made
            assert_unavailable(await http.post("/_store", params={"phone": "+15550000002"}))
            assert_unavailable(await http.get("/_contacts"))


@pytest.mark.parametrize("database_url", POSTGRES_ONLY, indirect=True)
async def test_database_port_where_nothing_listens_answers_503(settings: Settings) -> None:
    dead_port = free_port()  # bound and released: nothing listens there
    url = settings.database_url.replace(":5432/", f":{dead_port}/")
    assert url != settings.database_url
    server = await start_live_server(replace(settings, database_url=url))
    add_test_routes(server)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=15) as http:
            assert_unavailable(await http.post("/_store", params={"phone": "+15550000003"}))
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 503
    finally:
        await server.stop()


async def test_a_bug_in_a_query_stays_a_500(writer: LiveServer) -> None:
    """Only outages are 503: a constraint violated is a bug, answered 500 and logged."""
    async with httpx.AsyncClient(base_url=writer.base_url, timeout=15) as http:
        assert (await http.post("/_store", params={"phone": "+15550000004"})).status_code == 200
        duplicate = await http.post("/_store", params={"phone": "+15550000004"})
        assert duplicate.status_code == 500
        assert duplicate.json()["error"] == "internal"
        assert "retry-after" not in duplicate.headers
        assert (await http.get("/_contacts")).json() == {"phones": ["+15550000004"]}


@pytest.mark.parametrize("database_url", POSTGRES_ONLY, indirect=True)
async def test_webhook_during_a_database_outage_is_refused_then_stored_once_on_retry(
    settings: Settings, pg_relay: TcpRelay
) -> None:
    """Twilio retries what did not get a 200: the message is stored exactly once, never lost."""
    through_relay = settings.database_url.replace(":5432/", f":{pg_relay.port}/")
    server = await start_live_server(replace(settings, database_url=through_relay))
    try:
        world = await seed_world(server.state)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            first = await text_in(http, server.settings, "+16175552101", world.n1, "before")
            assert first.status_code == 200, first.text

            params = inbound_params("+16175552101", world.n1, "during the outage")
            await pg_relay.cut()
            for _ in range(2):  # Twilio's retries while the database is still away
                refused = await signed_post(http, server.settings, "/twilio/messages", params)
                assert_unavailable(refused)
            await pg_relay.start()
            retried = await signed_post(http, server.settings, "/twilio/messages", params)
            assert retried.status_code == 200, retried.text
            again = await signed_post(http, server.settings, "/twilio/messages", params)
            assert again.status_code == 200

        stored = await messages(server.state, twilio_sid=params["MessageSid"])
        assert [m.body for m in stored] == ["during the outage"]
        assert len(await events(server.state, f"inbox:{world.admissions}", "message.created")) == 2
    finally:
        await server.stop()


@pytest.mark.parametrize("database_url", POSTGRES_ONLY, indirect=True)
async def test_websocket_handshake_during_a_database_outage_is_refused_not_crashed(
    settings: Settings, pg_relay: TcpRelay
) -> None:
    through_relay = settings.database_url.replace(":5432/", f":{pg_relay.port}/")
    server = await start_live_server(replace(settings, database_url=through_relay))
    try:
        world = await seed_world(server.state)
        token = world.tokens["member"]
        await pg_relay.cut()
        with pytest.raises(InvalidStatus) as refused:
            await LiveClient.connect(server.ws_url, token)
        assert refused.value.response.status_code in (403, 503)
        await pg_relay.start()
        client = await LiveClient.connect(server.ws_url, token)
        try:
            subscribed = await client.subscribe(f"inbox:{world.admissions}")
            assert subscribed["op"] == "subscribed"
        finally:
            await client.close()
    finally:
        await server.stop()
