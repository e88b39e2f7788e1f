"""Twilio's REST API slow, hanging, or answering 500 and 429 (the stand-in plays it).

Sends waiting on Twilio hold up nothing else: webhooks are taken and stored, events reach the
sockets, lists answer. Every send ends visible — `failed` with Twilio's code, or `timeout` —
and nothing is sent twice: no retry of ours after an error, a timeout or a crash of the call.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from server.settings import Settings
from tests.faults.harness import GUARD, Follower, wait_until
from tests.support.live_server import LiveServer, start_live_server
from tests.support.messaging import (
    TwilioEnv,
    messages,
    seed_world,
    text_in,
)
from tests.support.twilio_standin import RecordedRequest, TwilioStandIn
from tests.worker.conftest import StartWorker
from tests.worker.support import add_contacts, phone, poll, seed_blast


class GatedStandIn(TwilioStandIn):
    """Twilio being slow: every create call waits until the test opens the gate, then is
    answered as scripted (accepted, or a failure set with `fail`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.gate = asyncio.Event()
        self.waiting = 0

    async def _record(self, request: Request) -> RecordedRequest:
        recorded = await super()._record(request)  # received, whatever happens next
        self.waiting += 1
        await self.gate.wait()
        return recorded


@pytest.fixture
async def standin() -> AsyncIterator[TwilioStandIn]:
    async with GatedStandIn() as twilio:
        yield twilio


STUDENTS = [f"+1617555{7100 + n}" for n in range(6)]
HANGS, SERVER_ERROR, TOO_MANY, ACCEPTED = STUDENTS[:2], STUDENTS[2], STUDENTS[3], STUDENTS[4:]


async def quick(http: httpx.AsyncClient, env: TwilioEnv, conversation_id: int) -> dict[str, Any]:
    response = await http.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"body": "We got your question"},
        headers=env.world.auth("member"),
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_slow_twilio_holds_up_nothing_and_every_send_ends_once(twilio: TwilioEnv) -> None:
    server, http, world, standin = twilio
    assert isinstance(standin, GatedStandIn)
    conversations = {}
    for student in STUDENTS:
        assert (await text_in(http, server.settings, student, world.n1, "hello")).status_code == 200
        [inbound] = await messages(server.state, from_number=student)
        conversations[student] = inbound.conversation_id
    gateway = server.state.gateway  # type: ignore[attr-defined]
    follower = Follower(world.tokens["member"], f"inbox:{world.admissions}")
    await follower.connect(server.ws_url)
    try:
        # Twilio does not answer within our timeout: `failed` with `timeout`, at once visible.
        gateway.timeout = 1.0
        for student in HANGS:
            sent = await quick(http, twilio, conversations[student])
            assert (sent["status"], sent["error_code"], sent["twilio_sid"]) == (
                "failed",
                "timeout",
                None,
            )
        gateway.timeout = GUARD * 2
        standin.fail(500, to=SERVER_ERROR)
        standin.fail(429, to=TOO_MANY)
        sends = {
            s: asyncio.create_task(quick(http, twilio, conversations[s])) for s in STUDENTS[2:]
        }
        await wait_until(lambda: standin.waiting == len(STUDENTS))

        # While four sends wait on Twilio, the inbox works as usual.
        before = len(follower.events)
        texted = await text_in(http, server.settings, "+16175557199", world.n1, "still there?")
        assert texted.status_code == 200
        await wait_until(
            lambda: any(
                e["type"] == "message.created" and e["data"]["body"] == "still there?"
                for e in follower.events[before:]
            )
        )
        listed = await http.get(
            f"/api/v1/inboxes/{world.admissions}/conversations", headers=world.auth("member")
        )
        assert listed.status_code == 200
        pending = await messages(server.state, direction="outbound", status="sending")
        assert sorted(m.to_number for m in pending) == sorted(STUDENTS[2:])
        assert not any(task.done() for task in sends.values())

        standin.gate.set()
        outcomes = {s: await asyncio.wait_for(task, GUARD) for s, task in sends.items()}
        assert (outcomes[SERVER_ERROR]["status"], outcomes[SERVER_ERROR]["error_code"]) == (
            "failed",
            "20500",
        )
        assert (outcomes[TOO_MANY]["status"], outcomes[TOO_MANY]["error_code"]) == (
            "failed",
            "20429",
        )
        for student in ACCEPTED:
            assert outcomes[student]["twilio_sid"] and outcomes[student]["status"] != "failed"

        # Each message was asked of Twilio once, the timed-out ones included; no retries.
        await standin.wait_for(lambda: len(standin.messages()) == len(STUDENTS), within=GUARD)
        await asyncio.sleep(1.0)
        assert Counter(r.param("To") for r in standin.messages()) == Counter(STUDENTS)
        stored = await messages(server.state, direction="outbound")
        assert Counter(m.to_number for m in stored) == Counter(STUDENTS)
        status_events = {
            e["data"]["to"]: e["data"]["status"]
            for e in follower.events
            if e["type"] == "message.status"
        }
        assert set(status_events) == set(STUDENTS)
    finally:
        await follower.close()


@pytest.fixture
async def campaign_server(settings: Settings) -> AsyncIterator[tuple[LiveServer, TwilioStandIn]]:
    async with TwilioStandIn() as twilio:
        server = await start_live_server(twilio.configure(settings))
        try:
            yield server, twilio
        finally:
            await server.stop()


async def test_a_campaign_against_twilio_errors_fails_each_once_and_finishes(
    campaign_server: tuple[LiveServer, TwilioStandIn], start_worker: StartWorker
) -> None:
    server, twilio = campaign_server
    world = await seed_world(server.state)
    blast = await seed_blast(server.state, world)
    contacts = await add_contacts(server.state, 30)
    refused = {phone(2000 + n): "20429" for n in range(1, 6)}
    refused |= {phone(2000 + n): "20500" for n in range(6, 11)}
    refused[phone(2011)] = "timeout"
    for number, code in refused.items():
        twilio.fail({"20429": 429, "20500": 500}.get(code, "timeout"), to=number)

    async with httpx.AsyncClient(base_url=server.base_url, timeout=GUARD) as http:
        created = await http.post(
            "/api/v1/campaigns",
            json={
                "name": "Deadline reminder",
                "messaging_service_id": blast.service_id,
                "body": "Hi {first_name}, the deadline is Friday.",
                "contact_ids": contacts,
                "rate_per_second": 30,
            },
            headers=blast.auth,
        )
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]
        worker = await start_worker(server.settings)
        worker.state.gateway.timeout = 1.0  # type: ignore[attr-defined]
        started = await http.post(f"/api/v1/campaigns/{campaign_id}/send", headers=blast.auth)
        assert started.status_code == 200, started.text

        async def finished() -> dict[str, Any] | None:
            shown = await http.get(f"/api/v1/campaigns/{campaign_id}", headers=blast.auth)
            return shown.json() if shown.json()["status"] == "done" else None

        final = await poll(finished, within=GUARD * 2)
        # Replies still come in while a campaign meets Twilio's errors.
        reply = await text_in(http, server.settings, phone(2001), blast.number, "stop texting?")
        assert reply.status_code == 200

    counts = final["counts"]
    assert (counts["total"], counts["failed"], counts["sent"]) == (30, 11, 19)
    await asyncio.sleep(1.0)
    assert Counter(r.param("To") for r in twilio.messages()) == Counter(
        phone(2000 + n) for n in range(30)
    )
    outbound = await messages(server.state, direction="outbound", campaign_id=campaign_id)
    failed = {m.to_number: m.error_code for m in outbound if m.status == "failed"}
    assert failed == refused
    assert {m.tag for m in outbound} == {"campaign"}
