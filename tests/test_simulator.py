"""The built-in simulator (no Twilio credentials): sids, signed callbacks, texting in."""

from __future__ import annotations

import httpx

from server.twilio.simulator import SimulatorGateway, text_in
from store.models import Contact
from tests.support.live_server import LiveServer, run_cli, settings_env
from tests.support.messaging import World, events, eventually, messages

STUDENT = "+16175550142"


def simulator(server: LiveServer) -> SimulatorGateway:
    gateway = server.state.gateway  # type: ignore[attr-defined]
    assert isinstance(gateway, SimulatorGateway)
    gateway.step_delay = 0.02
    return gateway


async def test_a_sent_message_is_delivered_through_signed_status_callbacks(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    simulator(live_server)
    response = await text_in(
        live_server.settings, from_=STUDENT, to=world.n1, body="Hi", client=http
    )
    assert response.status_code == 200
    [inbound] = await messages(live_server.state)

    sent = await http.post(
        f"/api/v1/conversations/{inbound.conversation_id}/messages",
        json={"body": "Hello from the office"},
        headers=world.auth("member"),
    )

    assert sent.status_code == 201
    sid = sent.json()["twilio_sid"]
    assert sid.startswith("SM") and len(sid) == 34
    assert sent.json()["status"] == "queued"

    async def delivered() -> bool:
        [outbound] = await messages(live_server.state, direction="outbound")
        return outbound.status == "delivered"

    await eventually(delivered)
    channel = f"conversation:{inbound.conversation_id}"
    statuses = [
        e.data["status"] for e in await events(live_server.state, channel, "message.status")
    ]
    assert statuses == ["queued", "sent", "delivered"]


async def test_twilios_magic_failing_numbers_fail_in_the_simulator(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    async with live_server.state.transaction() as session:
        contact = Contact(phone="+15005550001")
        session.add(contact)
        await session.flush()

    sent = await http.post(
        f"/api/v1/contacts/{contact.id}/messages",
        json={"inbox_id": world.admissions, "body": "Hi"},
        headers=world.auth("admin"),
    )

    assert sent.status_code == 201
    assert (sent.json()["status"], sent.json()["error_code"]) == ("failed", "21211")


async def test_text_in_from_the_command_line(live_server: LiveServer, world: World) -> None:
    status, out, err = await run_cli(
        settings_env(live_server.settings),
        "text-in",
        "--from",
        "617-555-0142",
        "--to",
        world.n2,
        "Is the deadline Friday?",
    )

    assert status == 0, err
    assert "delivered" in out
    [stored] = await messages(live_server.state)
    assert (stored.from_number, stored.to_number) == (STUDENT, world.n2)
    assert stored.body == "Is the deadline Friday?"


async def test_text_in_reports_a_refusal(live_server: LiveServer, world: World) -> None:
    env = settings_env(live_server.settings)
    env["SECRET_KEY"] = "not-the-servers-key"
    status, _, err = await run_cli(env, "text-in", "--from", STUDENT, "--to", world.n1, "hello")

    assert status == 1
    assert "403" in err
    assert await messages(live_server.state) == []
