"""Opt-out and opt-in through inbound keywords: per messaging service, committed before the 200."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select

from server.services.optout import is_opted_out
from store.models import OptOut, OptOutEvent
from tests.support.live_server import LiveServer
from tests.support.messaging import TwilioEnv, World, events, messages, text_in

STUDENT = "+16175550142"


async def opted_out(server: LiveServer, service_id: int, phone: str = STUDENT) -> bool:
    async with server.state.reading() as session:
        return await is_opted_out(session, service_id, phone)


async def history(server: LiveServer) -> list[tuple[str, str, int]]:
    async with server.state.reading() as session:
        rows = (await session.scalars(select(OptOutEvent).order_by(OptOutEvent.id))).all()
    return [(r.action, r.source, r.messaging_service_id) for r in rows]


async def reply(http: httpx.AsyncClient, world: World, conversation_id: int) -> httpx.Response:
    return await http.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"body": "Checking in"},
        headers=world.auth("admin"),
    )


async def test_stop_opts_out_of_the_whole_messaging_service_across_numbers_and_inboxes(
    twilio: TwilioEnv,
) -> None:
    server, http, world, standin = twilio
    settings = server.settings
    await text_in(http, settings, STUDENT, world.n3, "Question about aid")  # service A

    response = await text_in(http, settings, STUDENT, world.n1, "  stop ")  # service A

    assert response.status_code == 200
    # In force the moment the webhook answered: no waiting.
    assert await opted_out(server, world.service_a)
    assert not await opted_out(server, world.service_b)
    aid_thread, stop_message = await messages(server.state)
    assert (stop_message.body, stop_message.opt_change) == ("  stop ", "opted_out")
    assert aid_thread.opt_change is None
    assert await history(server) == [("opt_out", "keyword", world.service_a)]
    for inbox_id, conversation_id in (
        (world.admissions, stop_message.conversation_id),
        (world.aid, aid_thread.conversation_id),
    ):
        [event] = await events(server.state, f"inbox:{inbox_id}", "contact.opted_out")
        assert event.data["conversation_id"] == conversation_id
        assert event.data["messaging_service_id"] == world.service_a
        assert (event.data["phone"], event.data["source"]) == (STUDENT, "keyword")

    # n3 in the aid inbox shares service A: refused before any call to Twilio.
    refused = await reply(http, world, aid_thread.conversation_id)
    assert (refused.status_code, refused.json()["error"]) == (409, "opted_out")
    assert standin.messages() == []

    # n2 is in service B: the student wrote to it, so replies go from it, and may.
    await text_in(http, settings, STUDENT, world.n2, "but this is fine")
    allowed = await reply(http, world, stop_message.conversation_id)
    assert allowed.status_code == 201
    assert allowed.json()["from"] == world.n2
    assert [r.param("From") for r in standin.messages()] == [world.n2]


async def test_start_opts_back_in(
    twilio: TwilioEnv,
) -> None:
    server, http, world, standin = twilio
    settings = server.settings
    await text_in(http, settings, STUDENT, world.n1, "STOP")
    stop = (await messages(server.state))[0]
    assert (await reply(http, world, stop.conversation_id)).status_code == 409

    await text_in(http, settings, STUDENT, world.n1, "Start")

    assert not await opted_out(server, world.service_a)
    start = (await messages(server.state))[-1]
    assert start.opt_change == "opted_in"
    assert await history(server) == [
        ("opt_out", "keyword", world.service_a),
        ("opt_in", "keyword", world.service_a),
    ]
    [event] = await events(server.state, f"inbox:{world.admissions}", "contact.opted_in")
    assert event.data["opted_out"] is False
    assert (await reply(http, world, stop.conversation_id)).status_code == 201
    assert len(standin.messages()) == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", True),
        ("stopall", True),
        ("Unsubscribe", True),
        (" cancel\n", True),
        ("END", True),
        ("quit", True),
        ("REVOKE", True),
        ("OptOut", True),
        ("stop please", False),
        ("don't stop", False),
        ("HELP", False),
        ("", False),
    ],
)
async def test_opt_out_keywords_are_the_whole_trimmed_body_in_any_case(
    live_server: LiveServer, http: httpx.AsyncClient, world: World, body: str, expected: bool
) -> None:
    await text_in(http, live_server.settings, STUDENT, world.n1, body)

    assert await opted_out(live_server, world.service_a) is expected
    [stored] = await messages(live_server.state)
    assert stored.opt_change == ("opted_out" if expected else None)


@pytest.mark.parametrize("word", ["START", "yes", "Unstop"])
async def test_opt_in_keywords(
    live_server: LiveServer, http: httpx.AsyncClient, world: World, word: str
) -> None:
    await text_in(http, live_server.settings, STUDENT, world.n1, "STOP")
    await text_in(http, live_server.settings, STUDENT, world.n1, word)
    assert not await opted_out(live_server, world.service_a)


@pytest.mark.parametrize(
    ("body", "opt_out_type", "expected", "change"),
    [
        ("please no more texts", "STOP", True, "opted_out"),
        ("STOP", "HELP", False, None),
        ("stop", "START", False, "opted_in"),
    ],
)
async def test_twilios_opt_out_type_wins_over_the_body(
    live_server: LiveServer,
    http: httpx.AsyncClient,
    world: World,
    body: str,
    opt_out_type: str,
    expected: bool,
    change: str | None,
) -> None:
    await text_in(http, live_server.settings, STUDENT, world.n1, body, OptOutType=opt_out_type)

    assert await opted_out(live_server, world.service_a) is expected
    [stored] = await messages(live_server.state)
    assert stored.opt_change == change
    if expected:
        assert await history(live_server) == [("opt_out", "opt_out_type", world.service_a)]


async def test_help_changes_nothing(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    await text_in(http, live_server.settings, STUDENT, world.n1, "STOP")
    await text_in(http, live_server.settings, STUDENT, world.n1, "help")

    assert await opted_out(live_server, world.service_a)
    assert (await messages(live_server.state))[-1].opt_change is None
    assert len(await history(live_server)) == 1


async def test_an_unknown_number_opts_out_of_the_service_the_webhook_names(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    await text_in(
        http,
        live_server.settings,
        STUDENT,
        "+16175559999",
        "STOP",
        MessagingServiceSid=world.service_b_sid,
    )

    assert await opted_out(live_server, world.service_b)
    assert not await opted_out(live_server, world.service_a)
    [stored] = await messages(live_server.state)
    assert stored.opt_change == "opted_out"


async def test_concurrent_stops_make_one_change(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    responses = await asyncio.gather(
        *(text_in(http, live_server.settings, STUDENT, world.n1, "STOP") for _ in range(10))
    )

    assert [r.status_code for r in responses] == [200] * 10
    assert await history(live_server) == [("opt_out", "keyword", world.service_a)]
    async with live_server.state.reading() as session:
        assert len((await session.scalars(select(OptOut))).all()) == 1
    assert (
        len(await events(live_server.state, f"inbox:{world.admissions}", "contact.opted_out")) == 1
    )
