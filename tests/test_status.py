"""Status callbacks through the real route: forward-only, error codes kept, unknown sids kept."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from server.services.optout import is_opted_out
from store.models import PendingStatus
from tests.support.live_server import LiveServer
from tests.support.messaging import (
    TwilioEnv,
    World,
    count,
    events,
    message,
    messages,
    new_sid,
    post_status,
    signed_post,
    status_params,
    text_in,
)

STUDENT = "+16175550142"


async def sent_message(
    server: LiveServer, http: httpx.AsyncClient, world: World
) -> tuple[int, str]:
    """A quick reply Twilio has accepted (status `queued`): its id and sid."""
    await text_in(http, server.settings, STUDENT, world.n1, "Hi")
    [inbound] = await messages(server.state)
    response = await http.post(
        f"/api/v1/conversations/{inbound.conversation_id}/messages",
        json={"body": "Hello"},
        headers=world.auth("member"),
    )
    assert response.status_code == 201
    assert response.json()["status"] == "queued"
    return response.json()["id"], response.json()["twilio_sid"]


async def status_events(server: LiveServer, message_id: int) -> list[str]:
    found = await events(
        server.state,
        f"conversation:{(await message(server.state, message_id)).conversation_id}",
        "message.status",
    )
    return [e.data["status"] for e in found if e.data["id"] == message_id]


@pytest.mark.parametrize(
    ("sequence", "final", "announced"),
    [
        (["sent", "delivered", "read"], "read", ["sent", "delivered", "read"]),
        (["delivered", "sent"], "delivered", ["delivered"]),
        (["sending", "queued", "accepted"], "sending", ["sending"]),
        (["delivered", "undelivered", "failed", "sent"], "delivered", ["delivered"]),
        (["undelivered", "delivered", "read"], "read", ["undelivered", "read"]),
        (["read", "delivered"], "read", ["read"]),
        (["sent", "sent", "canceled"], "canceled", ["sent", "canceled"]),
    ],
)
async def test_statuses_only_move_forward(
    twilio: TwilioEnv,
    sequence: list[str],
    final: str,
    announced: list[str],
) -> None:
    server, http, world, standin = twilio
    message_id, sid = await sent_message(server, http, world)
    before = await status_events(server, message_id)

    for status in sequence:
        response = await post_status(http, server.settings, sid, status)
        assert response.status_code == 200

    assert (await message(server.state, message_id)).status == final
    assert (await status_events(server, message_id))[len(before) :] == announced


async def test_the_error_code_of_a_failed_delivery_is_kept_and_shown(
    twilio: TwilioEnv,
) -> None:
    server, http, world, standin = twilio
    message_id, sid = await sent_message(server, http, world)

    await post_status(http, server.settings, sid, "sent")
    await post_status(http, server.settings, sid, "undelivered", "30003")

    stored = await message(server.state, message_id)
    assert (stored.status, stored.error_code) == ("undelivered", "30003")
    assert stored.error_message == "Unreachable destination handset"
    conversation = f"conversation:{stored.conversation_id}"
    [*_, last] = await events(server.state, conversation, "message.status")
    assert (last.data["status"], last.data["error_code"]) == ("undelivered", "30003")


async def test_an_unknown_sid_answers_200_and_is_kept_pending(
    twilio: TwilioEnv,
) -> None:
    server, http, world, standin = twilio
    await sent_message(server, http, world)
    stranger = new_sid("SM")

    response = await post_status(http, server.settings, stranger, "delivered")

    assert response.status_code == 200
    async with server.state.reading() as session:
        [pending] = (await session.scalars(select(PendingStatus))).all()
    assert (pending.twilio_sid, pending.status) == (stranger, "delivered")
    assert [m.status for m in await messages(server.state, direction="outbound")] == ["queued"]


async def test_a_status_callback_with_a_bad_signature_changes_nothing(
    twilio: TwilioEnv,
) -> None:
    server, http, world, standin = twilio
    message_id, sid = await sent_message(server, http, world)
    settings = server.settings
    params = status_params(sid, "delivered")

    forged = await signed_post(http, settings, "/twilio/status", params, token="guess")
    wrong_scheme = await signed_post(
        http,
        settings,
        "/twilio/status",
        params,
        signed_url=settings.public_base.replace("http://", "https://") + "/twilio/status",
    )
    unsigned = await http.post("/twilio/status", data=params)

    assert [r.status_code for r in (forged, wrong_scheme, unsigned)] == [403, 403, 403]
    assert (await message(server.state, message_id)).status == "queued"
    assert await count(server.state, PendingStatus) == 0


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"MessageStatus": "delivered"}, 400),
        ({"MessageSid": "SM123", "MessageStatus": "delivered"}, 400),
        ({"MessageSid": "SM" + "a" * 32}, 400),
        ({"MessageSid": "SM" + "a" * 32, "MessageStatus": "teleported"}, 200),
    ],
)
async def test_malformed_or_unknown_callbacks(
    twilio: TwilioEnv,
    params: dict[str, str],
    code: int,
) -> None:
    server, http, world, standin = twilio
    response = await signed_post(http, server.settings, "/twilio/status", params)

    assert response.status_code == code
    assert await count(server.state, PendingStatus) == 0


async def test_a_status_reporting_21610_records_the_opt_out(
    twilio: TwilioEnv,
) -> None:
    server, http, world, standin = twilio
    message_id, sid = await sent_message(server, http, world)

    await post_status(http, server.settings, sid, "failed", "21610")

    stored = await message(server.state, message_id)
    assert (stored.status, stored.error_code) == ("failed", "21610")
    async with server.state.reading() as session:
        assert await is_opted_out(session, world.service_a, STUDENT)
