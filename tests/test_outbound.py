"""Sending through the HTTP API to the Twilio stand-in: sticky sender, errors, access, bodies."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from server.serializers import message_json
from server.services.outbound import STALE_DETAIL, settle_stale_quick_sends
from store.models import (
    Contact,
    Conversation,
    Message,
    OptOutEvent,
    PendingStatus,
    PhoneNumber,
)
from tests.support.live_server import LiveServer
from tests.support.messaging import (
    TwilioEnv,
    World,
    commits_of,
    count,
    events,
    eventually,
    messages,
    text_in,
)

STUDENT = "+16175550142"


async def thread_with(
    server: LiveServer, http: httpx.AsyncClient, to: str, phone: str = STUDENT
) -> int:
    """The conversation a student starts by texting our number `to`."""
    response = await text_in(http, server.settings, phone, to, "Hi, a question")
    assert response.status_code == 200
    [inbound] = await messages(server.state, from_number=phone, to_number=to)
    return inbound.conversation_id


async def new_contact(server: LiveServer, phone: str = STUDENT) -> int:
    async with server.state.transaction() as session:
        contact = Contact(phone=phone)
        session.add(contact)
        await session.flush()
        return contact.id


async def from_contact(
    http: httpx.AsyncClient, world: World, contact_id: int, inbox_id: int, who: str | None
) -> httpx.Response:
    return await http.post(
        f"/api/v1/contacts/{contact_id}/messages",
        json={"inbox_id": inbox_id, "body": "Hello"},
        headers=world.auth(who) if who else {},
    )


async def quick(
    http: httpx.AsyncClient,
    world: World,
    conversation_id: int,
    body: object,
    who: str | None = "member",
) -> httpx.Response:
    return await http.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"body": body},
        headers=world.auth(who) if who else {},
    )


async def test_a_quick_reply_goes_from_the_sticky_number_with_the_status_callback(
    twilio: TwilioEnv,
) -> None:
    server, http, world, standin = twilio
    conversation_id = await thread_with(server, http, world.n2)

    response = await quick(http, world, conversation_id, "We got your question")

    assert response.status_code == 201
    [request] = standin.messages()
    assert request.authorized
    assert request.path == f"/2010-04-01/Accounts/{standin.account_sid}/Messages.json"
    assert request.param("From") == world.n2
    assert request.param("To") == STUDENT
    assert request.param("Body") == "We got your question"
    assert request.param("StatusCallback") == server.settings.public_base + "/twilio/status"
    assert request.param("MessagingServiceSid") == world.service_b_sid
    sent = response.json()
    assert sent["twilio_sid"] == json.loads(request.response_body)["sid"]
    assert (sent["direction"], sent["tag"], sent["status"]) == ("outbound", "quick", "queued")
    assert (sent["from"], sent["to"], sent["sent_by"]) == (world.n2, STUDENT, world.member)
    assert sent["error_code"] is None
    [stored] = await messages(server.state, direction="outbound")
    assert message_json(stored) == sent

    created = await events(server.state, f"conversation:{conversation_id}")
    assert [e.type for e in created] == ["message.created", "message.created", "message.status"]
    assert created[1].data["status"] == "sending"
    assert created[1].data["twilio_sid"] is None
    assert created[2].data == sent
    inbox_types = [e.type for e in await events(server.state, f"inbox:{world.admissions}")]
    assert inbox_types[-3:] == ["message.created", "conversation.updated", "message.status"]


async def test_without_a_sticky_number_the_inboxs_first_number_sends(
    twilio: TwilioEnv,
) -> None:
    server, http, world, standin = twilio
    contact_id = await new_contact(server)

    response = await from_contact(http, world, contact_id, world.admissions, "member")

    assert response.status_code == 201
    assert response.json()["from"] == world.n1
    assert [r.param("From") for r in standin.messages()] == [world.n1]
    async with server.state.reading() as session:
        conversation = await session.get(Conversation, response.json()["conversation_id"])
    assert conversation is not None
    assert (conversation.inbox_id, conversation.contact_id) == (world.admissions, contact_id)
    assert conversation.last_message_id == response.json()["id"]


async def test_sending_from_a_contact_reuses_their_thread_and_its_sticky_number(
    twilio: TwilioEnv,
) -> None:
    server, http, world, standin = twilio
    conversation_id = await thread_with(server, http, world.n2)
    [inbound] = await messages(server.state)
    async with server.state.reading() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        contact_id = conversation.contact_id

    response = await from_contact(http, world, contact_id, world.admissions, "admin")

    assert response.status_code == 201
    assert response.json()["conversation_id"] == inbound.conversation_id
    assert response.json()["from"] == world.n2
    assert await count(server.state, Conversation) == 1


@pytest.mark.parametrize(
    ("failure", "code"),
    [(21211, "21211"), (429, "20429"), (500, "20500"), (503, "503"), ("timeout", "timeout")],
)
async def test_a_twilio_error_leaves_a_failed_message_with_its_code_and_no_retry(
    twilio: TwilioEnv,
    failure: int | str,
    code: str,
) -> None:
    server, http, world, standin = twilio
    conversation_id = await thread_with(server, http, world.n1)
    server.state.gateway.timeout = 1.0  # type: ignore[attr-defined]
    standin.fail(failure, to=STUDENT)

    response = await quick(http, world, conversation_id, "Are you there?")

    assert response.status_code == 201
    sent = response.json()
    assert (sent["status"], sent["error_code"], sent["twilio_sid"]) == ("failed", code, None)
    assert sent["error_message"]
    assert len(standin.messages()) == 1
    [stored] = await messages(server.state, direction="outbound")
    assert (stored.status, stored.error_code) == ("failed", code)
    [status_event] = await events(server.state, f"conversation:{conversation_id}", "message.status")
    assert status_event.data == sent
    await asyncio.sleep(0.3)
    assert len(standin.messages()) == 1


async def test_twilio_21610_fails_the_message_and_records_the_opt_out(
    twilio: TwilioEnv,
) -> None:
    server, http, world, standin = twilio
    conversation_id = await thread_with(server, http, world.n1)
    standin.fail(21610, to=STUDENT)

    response = await quick(http, world, conversation_id, "Hello?")

    assert (response.json()["status"], response.json()["error_code"]) == ("failed", "21610")
    async with server.state.reading() as session:
        history = (await session.scalars(select(OptOutEvent))).all()
    assert [(h.action, h.source, h.messaging_service_id) for h in history] == [
        ("opt_out", "error_21610", world.service_a)
    ]
    assert history[0].message_id == response.json()["id"]
    opted = await events(server.state, f"inbox:{world.admissions}", "contact.opted_out")
    assert opted[0].data["source"] == "error_21610"

    refused = await quick(http, world, conversation_id, "Hello again?")
    assert refused.status_code == 409
    assert refused.json()["error"] == "opted_out"
    assert len(standin.messages()) == 1


async def test_a_callback_that_beats_the_create_response_is_not_lost(
    twilio: TwilioEnv,
) -> None:
    server, http, world, standin = twilio
    conversation_id = await thread_with(server, http, world.n1)
    standin.script(STUDENT, callbacks=[], early_callbacks=[("sent", None)])

    response = await quick(http, world, conversation_id, "Race me")

    [early] = standin.sent_callbacks
    assert early.early and early.status_code == 200
    assert response.json()["twilio_sid"] == early.params["MessageSid"]
    assert response.json()["status"] == "sent"
    [stored] = await messages(server.state, direction="outbound")
    assert stored.status == "sent"
    assert await count(server.state, PendingStatus) == 0


async def test_a_quick_send_with_no_early_callback_commits_twice(twilio: TwilioEnv) -> None:
    """Recorded as sending, then Twilio's answer stored; whether a status beat that answer is
    a read, not a third write transaction taking its turn on the database's write lock."""
    server, http, world, standin = twilio
    conversation_id = await thread_with(server, http, world.n1)
    standin.script(STUDENT, callbacks=[])
    with commits_of(server.state) as commits:
        response = await quick(http, world, conversation_id, "Just the two")

    assert response.status_code == 201 and response.json()["status"] == "queued"
    assert len(commits) == 2


async def test_concurrent_sends_with_racing_callbacks_all_end_delivered(
    twilio: TwilioEnv,
) -> None:
    """Callbacks fired the instant the create response leaves race the app storing the sid."""
    server, http, world, standin = twilio
    standin.callback_delay = 0
    standin.callbacks = [("sent", None), ("delivered", None)]
    threads = [
        await thread_with(server, http, world.n1, phone=f"+1617555{n:04d}") for n in range(200, 215)
    ]

    responses = await asyncio.gather(*(quick(http, world, t, "Go") for t in threads))

    assert [r.status_code for r in responses] == [201] * len(threads)
    await standin.settle()

    async def all_delivered() -> bool:
        outbound = await messages(server.state, direction="outbound")
        return {m.status for m in outbound} == {"delivered"}

    await eventually(all_delivered)
    assert await count(server.state, PendingStatus) == 0


async def test_an_opted_out_contact_is_refused_before_any_twilio_call(
    twilio: TwilioEnv,
) -> None:
    server, http, world, standin = twilio
    conversation_id = await thread_with(server, http, world.n1)
    await text_in(http, server.settings, STUDENT, world.n1, "STOP")
    before = await count(server.state, Message)

    response = await quick(http, world, conversation_id, "But wait")

    assert response.status_code == 409
    assert response.json()["error"] == "opted_out"
    assert STUDENT in response.json()["detail"]
    assert standin.messages() == []
    assert await count(server.state, Message) == before


@pytest.mark.parametrize(
    ("body", "status"),
    [("", 422), ("   ", 422), ("x" * 1601, 422), (None, 422), (42, 422), ("x" * 1600, 201)],
)
async def test_the_body_must_be_one_to_1600_characters(
    twilio: TwilioEnv,
    body: object,
    status: int,
) -> None:
    server, http, world, standin = twilio
    conversation_id = await thread_with(server, http, world.n1)

    response = await quick(http, world, conversation_id, body)

    assert response.status_code == status
    assert len(standin.messages()) == (1 if status == 201 else 0)
    if status == 422:
        assert response.json()["error"] == "invalid"
        assert "body" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "segments"),
    [("a" * 160, 1), ("a" * 161, 2), ("{" * 80, 1), ("{" * 81, 2), ("é😀" * 35, 2), ("ü" * 70, 1)],
)
async def test_segments_are_counted_for_gsm7_and_ucs2(
    twilio: TwilioEnv,
    body: str,
    segments: int,
) -> None:
    server, http, world, standin = twilio
    conversation_id = await thread_with(server, http, world.n1)

    response = await quick(http, world, conversation_id, body)

    assert response.json()["segments"] == segments


async def test_admins_answer_a_stray_in_the_unrouted_inbox_from_the_number_it_came_to(
    twilio: TwilioEnv,
) -> None:
    server, http, world, standin = twilio
    stray = await thread_with(server, http, world.n4)  # n4 feeds no inbox

    response = await quick(http, world, stray, "You reached the admissions office", "admin")

    assert response.status_code == 201
    assert response.json()["from"] == world.n4
    assert [r.param("From") for r in standin.messages()] == [world.n4]
    assert (await quick(http, world, stray, "hi", "member")).status_code == 404


async def test_a_sticky_number_moved_to_another_inbox_no_longer_sends_for_this_one(
    twilio: TwilioEnv,
) -> None:
    server, http, world, standin = twilio
    conversation_id = await thread_with(server, http, world.n2)
    async with server.state.transaction() as session:
        moved = await session.scalar(select(PhoneNumber).where(PhoneNumber.number == world.n2))
        assert moved is not None
        moved.inbox_id = world.aid

    response = await quick(http, world, conversation_id, "Still here")

    assert response.json()["from"] == world.n1


async def test_an_inbox_without_numbers_cannot_send(
    twilio: TwilioEnv,
) -> None:
    server, http, world, standin = twilio
    contact_id = await new_contact(server)

    response = await from_contact(http, world, contact_id, world.empty, "admin")

    assert response.status_code == 409
    assert response.json()["error"] == "no_number"
    assert standin.messages() == []
    assert await count(server.state, Conversation) == 0


async def test_who_may_send(
    twilio: TwilioEnv,
) -> None:
    server, http, world, standin = twilio
    admissions_thread = await thread_with(server, http, world.n1)
    aid_thread = await thread_with(server, http, world.n3, phone="+16175550177")
    fresh_contact = await new_contact(server, "+16175550188")
    async with server.state.reading() as session:
        aid_conversation = await session.get(Conversation, aid_thread)
        assert aid_conversation is not None
        aid_contact = aid_conversation.contact_id

    async def to_contact(contact_id: int, inbox_id: int, who: str | None) -> int:
        return (await from_contact(http, world, contact_id, inbox_id, who)).status_code

    async def in_thread(conversation_id: int, who: str | None) -> int:
        return (await quick(http, world, conversation_id, "hi", who)).status_code

    assert await in_thread(admissions_thread, None) == 401
    assert await in_thread(admissions_thread, "outsider") == 404
    assert await in_thread(admissions_thread, "member") == 201
    assert await in_thread(aid_thread, "member") == 404
    assert await in_thread(aid_thread, "admin") == 201
    assert await in_thread(999_999, "admin") == 404
    assert await to_contact(fresh_contact, world.admissions, None) == 401
    assert await to_contact(fresh_contact, world.aid, "member") == 404
    assert await to_contact(aid_contact, world.admissions, "member") == 404
    assert await to_contact(999_999, world.admissions, "member") == 404
    assert await to_contact(fresh_contact, world.admissions, "member") == 201
    assert await to_contact(aid_contact, world.admissions, "admin") == 201
    assert len(standin.messages()) == 4
    forbidden_writes = await messages(server.state, direction="outbound", sent_by=world.outsider)
    assert forbidden_writes == []


async def test_a_bad_request_body_is_a_clear_error(twilio: TwilioEnv) -> None:
    server, http, world, standin = twilio
    contact_id = await new_contact(server)
    url = f"/api/v1/contacts/{contact_id}/messages"
    headers = world.auth("admin")

    not_json = await http.post(
        url, content=b"{", headers={**headers, "content-type": "application/json"}
    )
    no_inbox = await http.post(url, json={"body": "hi"}, headers=headers)
    unknown_inbox = await http.post(url, json={"body": "hi", "inbox_id": 9999}, headers=headers)

    assert (not_json.status_code, not_json.json()["error"]) == (400, "bad_request")
    assert (no_inbox.status_code, no_inbox.json()["error"]) == (422, "invalid")
    assert unknown_inbox.status_code == 404


async def test_a_quick_send_left_sending_by_a_dead_process_becomes_unknown(
    twilio: TwilioEnv,
) -> None:
    """A process that dies between storing a quick message and storing Twilio's answer leaves
    it `sending` with no sid; the worker's sweep settles it as `unknown` (never sends it
    again), announced on the inbox, and leaves alone what is still within the send window."""
    server, http, world, _standin = twilio
    conversation_id = await thread_with(server, http, world.n2)
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    async with server.state.transaction() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        rows = {}
        for name, tag, created_at in [
            ("stale", "quick", long_ago),
            ("in_flight", "quick", datetime.now(UTC)),
            ("campaign", "campaign", long_ago),  # the campaign sweep's business
        ]:
            rows[name] = Message(
                conversation_id=conversation_id,
                direction="outbound",
                tag=tag,
                body=name,
                status="sending",
                from_number=world.n2,
                to_number=STUDENT,
                created_at=created_at,
            )
            session.add(rows[name])
    ids = {name: row.id for name, row in rows.items()}

    assert await settle_stale_quick_sends(server.state, timedelta(seconds=60)) == 1

    statuses = {
        m.body: (m.status, m.error_message) for m in await messages(server.state, tag="quick")
    }
    assert statuses["stale"] == ("unknown", STALE_DETAIL)
    assert statuses["in_flight"] == ("sending", None)
    [campaign] = await messages(server.state, id=ids["campaign"])
    assert campaign.status == "sending"
    announced = await events(server.state, f"inbox:{conversation.inbox_id}", "message.status")
    assert [(e.data["id"], e.data["status"]) for e in announced] == [(ids["stale"], "unknown")]
    assert await settle_stale_quick_sends(server.state, timedelta(seconds=60)) == 0
