"""Inbound SMS through the real webhook route: signatures, idempotency, routing, bad input."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select

from server.serializers import message_json
from server.services.inbound import parse_inbound
from server.services.optout import is_opted_out
from store.models import Contact, Conversation, Event, Inbox, Message
from tests.support.live_server import LiveServer
from tests.support.messaging import (
    World,
    commits_of,
    count,
    events,
    inbound_params,
    messages,
    new_sid,
    signature,
    signed_post,
    text_in,
)

STUDENT = "+16175550142"


async def nothing_stored(server: LiveServer) -> None:
    for model in (Message, Contact, Conversation, Event):
        assert await count(server.state, model) == 0, model.__name__


async def test_signed_inbound_is_stored_routed_and_announced(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    response = await text_in(http, live_server.settings, "(617) 555-0142", world.n1, "Hello there")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text.endswith("<Response/>")
    [stored] = await messages(live_server.state)
    assert (stored.direction, stored.tag, stored.status) == ("inbound", "inbound", "received")
    assert (stored.from_number, stored.to_number, stored.body) == (STUDENT, world.n1, "Hello there")
    assert stored.messaging_service_id == world.service_a
    async with live_server.state.reading() as session:
        conversation = await session.get(Conversation, stored.conversation_id)
        assert conversation is not None
        assert conversation.inbox_id == world.admissions
        assert conversation.contact.phone == STUDENT
        assert conversation.last_message_id == stored.id
        assert conversation.last_inbound_message_id == stored.id
        assert conversation.sticky_number == world.n1

    expected = message_json(stored)
    [on_inbox] = await events(live_server.state, f"inbox:{world.admissions}", "message.created")
    [on_thread] = await events(live_server.state, f"conversation:{conversation.id}")
    assert on_inbox.data == expected
    assert (on_thread.type, on_thread.data) == ("message.created", expected)
    [updated] = await events(live_server.state, f"inbox:{world.admissions}", "conversation.updated")
    assert updated.data["id"] == conversation.id
    assert updated.data["last_message"] == expected
    assert updated.data["contact"]["phone"] == STUDENT


async def test_the_contact_last_written_to_number_becomes_sticky(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    await text_in(http, live_server.settings, STUDENT, world.n1, "first")
    await text_in(http, live_server.settings, STUDENT, world.n2, "second")

    first, second = await messages(live_server.state)
    assert first.conversation_id == second.conversation_id
    async with live_server.state.reading() as session:
        conversation = await session.get(Conversation, second.conversation_id)
    assert conversation is not None
    assert conversation.sticky_number == world.n2
    assert conversation.last_message_id == second.id
    assert await count(live_server.state, Contact) == 1


def _forge(case: str, settings_url: str, params: dict[str, str]) -> tuple:
    """(signed URL, signing token, params actually sent, extra headers) for one bad request."""
    if case == "forged":
        return settings_url, "not-the-auth-token", params, {}
    if case == "tampered":
        return settings_url, None, {**params, "Body": "something else"}, {}
    if case == "proxy_scheme_mismatch":
        return settings_url.replace("http://", "https://", 1), None, params, {}
    if case == "host_header":
        return "http://evil.example/twilio/messages", None, params, {"Host": "evil.example"}
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["forged", "tampered", "proxy_scheme_mismatch", "host_header"])
async def test_a_bad_signature_is_refused_and_nothing_stored(
    live_server: LiveServer, http: httpx.AsyncClient, world: World, case: str
) -> None:
    settings = live_server.settings
    params = inbound_params(STUDENT, world.n1, "Hi")
    url, token, sent, headers = _forge(case, settings.public_base + "/twilio/messages", params)
    sig = signature(token or settings.webhook_auth_token, url, params)

    response = await http.post(
        "/twilio/messages", data=sent, headers={"X-Twilio-Signature": sig, **headers}
    )

    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    await nothing_stored(live_server)


async def test_a_missing_signature_is_refused(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    response = await http.post("/twilio/messages", data=inbound_params(STUDENT, world.n1, "Hi"))

    assert response.status_code == 403
    assert "X-Twilio-Signature" in response.json()["detail"]
    await nothing_stored(live_server)


async def test_the_signed_url_is_public_url_whatever_host_the_request_names(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    """Behind a proxy the Host header is the proxy's business; PUBLIC_URL is what Twilio signed."""
    response = await signed_post(
        http,
        live_server.settings,
        "/twilio/messages",
        inbound_params(STUDENT, world.n1, "via a proxy"),
        headers={"Host": "10.0.0.5:8000"},
    )

    assert response.status_code == 200
    assert len(await messages(live_server.state)) == 1


async def test_the_query_string_is_part_of_the_signed_url(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    settings = live_server.settings
    params = inbound_params(STUDENT, world.n1, "with a query")
    path = "/twilio/messages?inbox=admissions"

    unsigned_query = await signed_post(
        http, settings, path, params, signed_url=settings.public_base + "/twilio/messages"
    )
    assert unsigned_query.status_code == 403
    signed = await signed_post(http, settings, path, params)
    assert signed.status_code == 200
    assert len(await messages(live_server.state)) == 1


async def test_a_retried_message_sid_stores_and_announces_nothing_new(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    params = inbound_params(STUDENT, world.n1, "once")
    first = await signed_post(http, live_server.settings, "/twilio/messages", params)
    before = await count(live_server.state, Event)

    again = await signed_post(http, live_server.settings, "/twilio/messages", params)

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.text == first.text
    assert len(await messages(live_server.state)) == 1
    assert await count(live_server.state, Event) == before


async def test_concurrent_duplicate_webhooks_store_one_message(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    params = inbound_params(STUDENT, world.n1, "Twilio retried me")

    responses = await asyncio.gather(
        *(signed_post(http, live_server.settings, "/twilio/messages", params) for _ in range(20))
    )

    assert [r.status_code for r in responses] == [200] * 20
    assert len(await messages(live_server.state)) == 1
    assert len(await events(live_server.state, f"inbox:{world.admissions}", "message.created")) == 1
    assert await count(live_server.state, Contact) == 1


async def test_concurrent_first_messages_from_one_phone_share_one_contact_and_thread(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    responses = await asyncio.gather(
        *(text_in(http, live_server.settings, STUDENT, world.n1, f"part {n}") for n in range(12))
    )

    assert [r.status_code for r in responses] == [200] * 12
    stored = await messages(live_server.state)
    assert len(stored) == 12
    assert len({m.conversation_id for m in stored}) == 1
    assert await count(live_server.state, Contact) == 1
    assert await count(live_server.state, Conversation) == 1
    seqs = [e.seq for e in await events(live_server.state, f"inbox:{world.admissions}")]
    assert seqs == list(range(1, len(seqs) + 1))
    async with live_server.state.reading() as session:
        conversation = await session.get(Conversation, stored[0].conversation_id)
    assert conversation is not None
    assert conversation.last_message_id == max(m.id for m in stored)


async def test_unknown_and_unrouted_numbers_land_in_the_one_unrouted_inbox(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    senders = [f"+1617555{n:04d}" for n in range(300, 310)]
    responses = await asyncio.gather(
        *(text_in(http, live_server.settings, phone, "+16175559999", "who?") for phone in senders),
        text_in(http, live_server.settings, STUDENT, world.n4, "routed nowhere"),
    )

    assert [r.status_code for r in responses] == [200] * 11
    async with live_server.state.reading() as session:
        unrouted = (await session.scalars(select(Inbox).where(Inbox.is_unrouted))).all()
        assert len(unrouted) == 1
        assert unrouted[0].name == "Unrouted"
        inboxes = set(
            (await session.scalars(select(Conversation.inbox_id).join(Message).distinct())).all()
        )
    assert inboxes == {unrouted[0].id}
    to_n4 = await messages(live_server.state, to_number=world.n4)
    assert to_n4[0].messaging_service_id == world.service_b


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"MessageSid": ""}, "MessageSid"),
        ({"MessageSid": "not-a-sid"}, "MessageSid"),
        ({"From": ""}, "From"),
        ({"To": ""}, "To"),
        ({"From": "call me maybe"}, "From"),
    ],
)
async def test_a_malformed_webhook_is_a_clear_400_and_stores_nothing(
    live_server: LiveServer, http: httpx.AsyncClient, world: World, change: dict, detail: str
) -> None:
    params = {**inbound_params(STUDENT, world.n1, "Hi"), **change}
    params["SmsMessageSid"] = params["SmsSid"] = params["MessageSid"]

    response = await signed_post(http, live_server.settings, "/twilio/messages", params)

    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert detail in response.json()["detail"]
    await nothing_stored(live_server)


async def test_a_media_only_message_is_stored_with_an_empty_body(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    params = inbound_params(STUDENT, world.n1, "", NumMedia="1")
    params["MediaUrl0"] = "https://api.twilio.com/media/ME" + "0" * 32
    del params["Body"]

    response = await signed_post(http, live_server.settings, "/twilio/messages", params)

    assert response.status_code == 200
    [stored] = await messages(live_server.state)
    assert (stored.body, stored.num_media) == ("", 1)


async def test_a_new_sid_each_time_is_a_new_message(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    for _ in range(3):
        await text_in(
            http, live_server.settings, STUDENT, world.n1, "same words", sid=new_sid("SM")
        )
    assert len(await messages(live_server.state)) == 3


async def test_webhooks_arriving_together_commit_together_each_stored_once_in_order(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    state = live_server.state
    earlier = inbound_params(STUDENT, world.n1, "sent before the burst")
    assert (await signed_post(http, live_server.settings, "/twilio/messages", earlier)).status_code
    twice = inbound_params("+16175550177", world.n3, "delivered twice in the burst")
    burst = [
        *(inbound_params(STUDENT, world.n1, f"part {n}") for n in range(5)),
        earlier,  # Twilio retrying what was stored already
        twice,
        inbound_params("+16175550178", world.n3, "new to financial aid"),
        twice,
        inbound_params("+16175550179", world.n1, "STOP"),
        inbound_params("+16175550180", "+16175559999", "to a number we do not have"),
    ]
    with commits_of(state) as commits:
        # Submitted in one go, before the receiver's transaction can start: one group.
        results = await asyncio.gather(
            *(live_server.app.state.inbound.receive(parse_inbound(p)) for p in burst)
        )

    assert len(commits) == 1
    stored = [r is not None for r in results]
    assert stored == [True] * 5 + [False, True, True, False, True, True]
    assert len(await messages(state)) == 1 + 9
    parts = [r for r in results[:5] if r is not None]
    assert [m.body for m in sorted(parts, key=lambda m: m.id)] == [f"part {n}" for n in range(5)]
    async with state.reading() as session:
        thread = await session.get(Conversation, parts[0].conversation_id)
        assert thread is not None and thread.last_message_id == max(m.id for m in parts)
        assert await is_opted_out(session, world.service_a, "+16175550179")
    inbox_events = await events(state, f"inbox:{world.admissions}")
    assert [e.seq for e in inbox_events] == list(range(1, len(inbox_events) + 1))
    # Each message's own events stay together and in order: created, then its summary.
    burst_events = [
        (e.type, e.data.get("body") or e.data["last_message"]["body"])
        for e in inbox_events[2:]
        if e.type != "contact.opted_out"
    ]
    bodies = [f"part {n}" for n in range(5)] + ["STOP"]
    assert burst_events == [
        (kind, body) for body in bodies for kind in ("message.created", "conversation.updated")
    ]
    assert inbox_events[-1].type == "contact.opted_out"
