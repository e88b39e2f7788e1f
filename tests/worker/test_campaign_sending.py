"""Campaigns sent by workers through the Twilio stand-in: claims, throttle, crashes, replies."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from server.services import campaign_sender as sending
from server.settings import Settings
from store.models import (
    Campaign,
    CampaignRecipient,
    Conversation,
    Event,
    Inbox,
    Message,
    MessagingService,
    PhoneNumber,
    utcnow,
)
from tests.support.live_server import LiveServer, start_live_server
from tests.support.messaging import commits_of, events, eventually, seed_world, text_in
from tests.worker.conftest import StartWorker
from tests.worker.support import (
    Blast,
    TimedStandIn,
    add_contacts,
    opt_out,
    phone,
    poll,
    seed_blast,
    spawn_worker,
    worker_env,
)


async def create(http: httpx.AsyncClient, blast: Blast, **body: Any) -> dict[str, Any]:
    payload = {"name": "Welcome", "messaging_service_id": blast.service_id, **body}
    response = await http.post("/api/v1/campaigns", json=payload, headers=blast.auth)
    assert response.status_code == 201, response.text
    return response.json()


async def act(http: httpx.AsyncClient, blast: Blast, campaign_id: int, action: str) -> dict:
    response = await http.post(f"/api/v1/campaigns/{campaign_id}/{action}", headers=blast.auth)
    assert response.status_code == 200, response.text
    return response.json()


async def show(http: httpx.AsyncClient, blast: Blast, campaign_id: int) -> dict[str, Any]:
    response = await http.get(f"/api/v1/campaigns/{campaign_id}", headers=blast.auth)
    assert response.status_code == 200, response.text
    return response.json()


async def until_done(http: httpx.AsyncClient, blast: Blast, campaign_id: int, within: float = 60):
    async def done() -> dict[str, Any] | None:
        found = await show(http, blast, campaign_id)
        return found if found["status"] == "done" else None

    return await poll(done, within=within)


async def test_campaign_lands_in_threads_and_replies_come_back_to_them(
    twilio_server: LiveServer,
    twilio_http: httpx.AsyncClient,
    blast: Blast,
    standin: TimedStandIn,
    start_worker: StartWorker,
) -> None:
    contacts = await add_contacts(twilio_server.state, 3, fields={"school": "Elm High"})
    for index in range(3):
        standin.script(phone(2000 + index), [("sent", None), ("delivered", None)])
    created = await create(
        twilio_http, blast, body="Hi {first_name} from {school}!", contact_ids=contacts
    )
    assert created["status"] == "draft"
    assert created["counts"]["total"] == 3
    await act(twilio_http, blast, created["id"], "send")
    await start_worker(twilio_server.settings)

    final = await until_done(twilio_http, blast, created["id"])
    assert sorted(standin.sent_to()) == [phone(2000), phone(2001), phone(2002)]
    bodies = {r.param("To"): r.param("Body") for r in standin.messages()}
    assert bodies[phone(2000)] == "Hi First0 from Elm High!"
    assert {r.param("From") for r in standin.messages()} == {blast.number}
    assert final["counts"]["sent"] == 3

    # Every message is tagged campaign, in the contact's thread of the number's inbox.
    async with twilio_server.state.reading() as session:
        sent = (await session.scalars(select(Message).order_by(Message.id))).all()
        assert {(m.tag, m.direction, m.campaign_id) for m in sent} == {
            ("campaign", "outbound", created["id"])
        }
        conversation = await session.get(Conversation, sent[0].conversation_id)
        assert conversation is not None and conversation.inbox_id == blast.inbox_id

    reply = await text_in(twilio_http, twilio_server.settings, phone(2000), blast.number, "Thanks!")
    assert reply.status_code == 200
    async with twilio_server.state.reading() as session:
        inbound = (
            await session.scalars(select(Message).where(Message.direction == "inbound"))
        ).one()
    assert inbound.conversation_id == sent[0].conversation_id

    stop = await text_in(twilio_http, twilio_server.settings, phone(2001), blast.number, "STOP")
    assert stop.status_code == 200

    async def delivered_and_replied() -> dict[str, Any] | None:
        found = await show(twilio_http, blast, created["id"])
        counts = found["counts"]
        # The STOP is an opt-out, not a reply.
        return found if counts["delivered"] == 3 and counts["opt_outs"] == 1 else None

    final = await eventually(delivered_and_replied, within=20)
    assert final["counts"]["replied"] == 1
    assert final["figures"] == {
        "delivery_rate": 1.0,
        "reply_rate_24h": round(1 / 3, 4),
        "opt_outs_caused": 1,
    }

    # Progress goes out on campaign:{id}, gap-free, and catches up with replies after the end.
    async def progress_with_reply() -> list[Event]:
        found = await events(twilio_server.state, f"campaign:{created['id']}", "campaign.progress")
        last = found[-1].data["counts"] if found else {}
        return found if last.get("replied") == 1 and last.get("opt_outs") == 1 else []

    progress = await eventually(progress_with_reply, within=30)
    assert [e.seq for e in progress] == list(range(1, len(progress) + 1))
    assert progress[0].data["status"] == "sending"
    assert any(e.data["status"] == "done" for e in progress)


def busiest_second(arrivals: list[float]) -> int:
    """The most requests that arrived within any one-second window."""
    times = sorted(arrivals)
    most, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_two_worker_processes_send_1000_once_each_throttled_skipping_opt_outs(
    twilio_server: LiveServer,
    twilio_http: httpx.AsyncClient,
    blast: Blast,
    standin: TimedStandIn,
    tmp_path: Path,
) -> None:
    rate = 100
    contacts = await add_contacts(twilio_server.state, 1000)
    opted_out = [phone(2000 + i) for i in range(0, 1000, 20)]  # 50 of them
    await opt_out(twilio_server.state, blast.service_id, opted_out)
    created = await create(
        twilio_http,
        blast,
        body="Hi {first_name}, orientation is on Monday.",
        contact_ids=contacts,
        rate_per_second=rate,
    )
    workers = [
        spawn_worker(twilio_server.settings, tmp_path / f"worker{n}.log", **worker_env())
        for n in range(2)
    ]
    try:
        for worker in workers:
            await worker.started()
        await act(twilio_http, blast, created["id"], "send")
        # A failure guard only: 950 sends at 100/s take ten seconds on a quiet machine.
        final = await until_done(twilio_http, blast, created["id"], within=600)
    finally:
        for worker in workers:
            worker.stop()

    sent_to = standin.sent_to()
    assert len(sent_to) == len(set(sent_to)) == 950, "someone was messaged twice or not at all"
    assert not set(sent_to) & set(opted_out)
    bodies = {r.param("To"): r.param("Body") for r in standin.messages()}
    assert bodies[phone(2001)] == "Hi First1, orientation is on Monday."
    counts = final["counts"]
    assert (counts["total"], counts["sent"], counts["skipped_opted_out"]) == (1000, 950, 50)
    assert counts["failed"] == counts["unknown"] == counts["queued"] == 0

    # Both workers took part, and together they held the rate: no second carried more than
    # the throttle's bound, (1 + late_seconds) × rate, and the whole took as long as it must.
    # The stand-in notes arrivals on this process's loop, which the API server shares: a stall
    # there bunches them by up to a tenth of a second more.
    async with twilio_server.state.reading() as session:
        claimants = set(
            (
                await session.scalars(
                    select(CampaignRecipient.claimed_by).where(CampaignRecipient.state == "sent")
                )
            ).all()
        )
    assert len(claimants) == 2
    arrivals = [moment for moment, _ in standin.arrivals]
    assert busiest_second(arrivals) <= rate * (1 + sending.SendOptions().late_seconds + 0.1)
    assert max(arrivals) - min(arrivals) >= (950 - 1) / rate * 0.9


async def claimed_by_hand(
    server: LiveServer,
    http: httpx.AsyncClient,
    blast: Blast,
    options: sending.SendOptions,
    count: int,
    *,
    body: str = "Hi {first_name}",
    rate_per_second: int = 1000,
    opted_out: list[str] | None = None,
) -> tuple[dict[str, Any], sending.Sender, sending.Batch]:
    """A sending campaign to `count` new contacts, all claimed for worker "w1" (whose sends
    the test then makes itself)."""
    contacts = await add_contacts(server.state, count)
    created = await create(
        http, blast, body=body, contact_ids=contacts, rate_per_second=rate_per_second
    )
    if opted_out:
        await opt_out(server.state, blast.service_id, opted_out)
    await act(http, blast, created["id"], "send")
    batch = await sending.claim(server.state, created["id"], "w1", count, options)
    sender = await sending.sender_for(server.state, created["id"])
    assert sender is not None and len(batch.claimed) == count
    return created, sender, batch


async def test_a_send_that_missed_its_slot_takes_a_fresh_one_instead_of_catching_up(
    twilio_server: LiveServer,
    twilio_http: httpx.AsyncClient,
    blast: Blast,
    standin: TimedStandIn,
) -> None:
    state = twilio_server.state
    options = sending.SendOptions()
    created, sender, batch = await claimed_by_hand(
        twilio_server, twilio_http, blast, options, 3, body="Hi", rate_per_second=2
    )

    async def next_free_slot() -> datetime:
        async with state.reading() as session:
            campaign = await session.get_one(Campaign, created["id"])
            assert campaign.next_slot_at is not None
            return campaign.next_slot_at

    free = await next_free_slot()
    assert free == batch.claimed[2].slot + timedelta(seconds=0.5)
    dispatcher = sending.Dispatcher(state, "w1", 4, options)
    # The first send's worker fell a second behind: it does not go out at once (which would
    # crowd the sends that are on time) but at the campaign's next free slot, which it takes.
    missed = replace(batch.claimed[0], slot=utcnow() - timedelta(seconds=1))
    assert await dispatcher.send(sender, missed) == "sent"
    assert utcnow() >= free
    assert await next_free_slot() == free + timedelta(seconds=0.5)
    # A send late by less than `late_seconds` still goes at once, on its own slot.
    lenient = sending.Dispatcher(state, "w1", 4, replace(options, late_seconds=5))
    slightly = replace(batch.claimed[1], slot=utcnow() - timedelta(seconds=1))
    assert await lenient.send(sender, slightly) == "sent"
    assert await next_free_slot() == free + timedelta(seconds=0.5)
    assert len(standin.sent_to()) == 2


async def test_sends_due_together_share_their_transactions_and_each_gets_its_outcome(
    twilio_server: LiveServer,
    twilio_http: httpx.AsyncClient,
    blast: Blast,
    standin: TimedStandIn,
) -> None:
    state = twilio_server.state
    options = sending.SendOptions()
    # The opt-out comes after enqueueing: it is caught at send.
    created, sender, batch = await claimed_by_hand(
        twilio_server, twilio_http, blast, options, 20, opted_out=[phone(2003)]
    )
    due = utcnow() + timedelta(seconds=0.3)
    dispatcher = sending.Dispatcher(state, "w1", 20, options)
    with commits_of(state) as commits:
        outcomes = await asyncio.gather(
            *(dispatcher.send(sender, replace(claimed, slot=due)) for claimed in batch.claimed)
        )

    assert sorted(outcomes) == ["sent"] * 19 + ["skipped_opted_out"]
    # Recorded, then answered, in groups: far fewer transactions than sends (one send alone
    # takes three).
    assert len(commits) <= 10, len(commits)
    assert sorted(standin.sent_to()) == sorted(phone(2000 + i) for i in range(20) if i != 3)
    async with state.reading() as session:
        rows = (
            await session.execute(
                select(CampaignRecipient, Message, Conversation)
                .join(Message, Message.id == CampaignRecipient.message_id)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(CampaignRecipient.campaign_id == created["id"])
            )
        ).all()
    assert len(rows) == 19
    for recipient, message, conversation in rows:
        assert recipient.state == "sent"
        assert message.twilio_sid and message.status == "queued"
        assert message.body == f"Hi First{int(message.to_number[-4:]) - 2000}"
        assert conversation.contact_id == recipient.contact_id
        assert conversation.last_message_id == message.id


async def test_worker_killed_mid_send_never_sends_twice_and_shows_unknown(
    twilio_server: LiveServer,
    twilio_http: httpx.AsyncClient,
    blast: Blast,
    standin: TimedStandIn,
    tmp_path: Path,
) -> None:
    contacts = await add_contacts(twilio_server.state, 60)
    stuck = phone(2010)
    standin.fail("timeout", to=stuck)  # Twilio never answers this one: the kill lands mid-call
    created = await create(
        twilio_http, blast, body="Hello {first_name}", contact_ids=contacts, rate_per_second=20
    )
    await act(twilio_http, blast, created["id"], "send")
    env = worker_env(SWITCHBOARD_STALE_SEND_SECONDS="3")

    first = spawn_worker(twilio_server.settings, tmp_path / "first.log", **env)
    try:
        await standin.wait_for(
            lambda: len(standin.messages()) >= 20 and stuck in standin.requested_to(), within=60
        )
    finally:
        first.kill()

    second = spawn_worker(twilio_server.settings, tmp_path / "second.log", **env)
    try:
        final = await until_done(twilio_http, blast, created["id"], within=120)
    finally:
        second.stop()

    requested = standin.requested_to()
    assert len(requested) == len(set(requested)), "a recipient was sent to twice"
    counts = final["counts"]
    assert counts["sent"] + counts["unknown"] == 60
    assert 1 <= counts["unknown"] <= 16  # at most the sends in flight when it was killed

    response = await twilio_http.get(
        f"/api/v1/campaigns/{created['id']}/recipients?state=unknown", headers=blast.auth
    )
    unknown = response.json()["items"]
    unknown_phones = {item["contact"]["phone"] for item in unknown}
    assert len(unknown) == counts["unknown"] and stuck in unknown_phones
    # Whoever was not asked of Twilio at all is among the unknown (killed between the
    # commit of `sending` and the call), never silently dropped nor sent later.
    everyone = {phone(2000 + i) for i in range(60)}
    assert everyone - set(requested) <= unknown_phones
    shown = next(item for item in unknown if item["contact"]["phone"] == stuck)
    assert shown["message"]["status"] == "unknown"
    assert "not sent again" in shown["message"]["error_message"]


async def settled(server: LiveServer, campaign_id: int) -> bool:
    """Nothing of the campaign is claimed or being sent right now."""
    async with server.state.reading() as session:
        busy = await session.scalar(
            select(CampaignRecipient.id).where(
                CampaignRecipient.campaign_id == campaign_id,
                CampaignRecipient.state.in_(("claimed", "sending")),
            )
        )
    return busy is None


async def test_pause_stops_sending_resume_finishes_cancel_drops_the_rest(
    twilio_server: LiveServer,
    twilio_http: httpx.AsyncClient,
    blast: Blast,
    standin: TimedStandIn,
    start_worker: StartWorker,
) -> None:
    contacts = await add_contacts(twilio_server.state, 40)
    first = await create(twilio_http, blast, body="one", contact_ids=contacts, rate_per_second=10)
    await start_worker(twilio_server.settings)
    await act(twilio_http, blast, first["id"], "send")
    await standin.wait_for(lambda: len(standin.messages()) >= 5, within=30)

    paused = await act(twilio_http, blast, first["id"], "pause")
    assert paused["status"] == "paused"
    await eventually(lambda: settled(twilio_server, first["id"]))
    at_pause = len(standin.messages())
    # A second campaign keeps going meanwhile: once it is done, the paused one had its chance.
    other = await create(twilio_http, blast, body="two", contact_ids=contacts[:5])
    await act(twilio_http, blast, other["id"], "send")
    await until_done(twilio_http, blast, other["id"])
    assert len([r for r in standin.messages() if r.param("Body") == "one"]) == at_pause
    shown = await show(twilio_http, blast, first["id"])
    assert shown["counts"]["queued"] == 40 - at_pause

    await act(twilio_http, blast, first["id"], "resume")
    final = await until_done(twilio_http, blast, first["id"])
    ones = [r.param("To") for r in standin.messages() if r.param("Body") == "one"]
    assert sorted(ones) == sorted({phone(2000 + i) for i in range(40)})
    assert final["counts"]["sent"] == 40

    third = await create(twilio_http, blast, body="three", contact_ids=contacts, rate_per_second=5)
    await act(twilio_http, blast, third["id"], "send")
    await standin.wait_for(lambda: any(r.param("Body") == "three" for r in standin.messages()))
    canceled = await act(twilio_http, blast, third["id"], "cancel")
    assert canceled["status"] == "canceled"
    await eventually(lambda: settled(twilio_server, third["id"]))
    final = await show(twilio_http, blast, third["id"])
    threes = [r for r in standin.messages() if r.param("Body") == "three"]
    assert final["counts"]["sent"] == len(threes) < 40
    assert final["counts"]["canceled"] == 40 - len(threes)
    assert final["status"] == "canceled"


async def test_a_scheduled_campaign_starts_at_its_time(
    twilio_server: LiveServer,
    twilio_http: httpx.AsyncClient,
    blast: Blast,
    standin: TimedStandIn,
    start_worker: StartWorker,
) -> None:
    contacts = await add_contacts(twilio_server.state, 2)
    start_at = datetime.now(UTC) + timedelta(seconds=2)
    created = await create(
        twilio_http,
        blast,
        body="Doors open",
        contact_ids=contacts,
        start_at=start_at.isoformat().replace("+00:00", "Z"),
    )
    await start_worker(twilio_server.settings)
    scheduled = await act(twilio_http, blast, created["id"], "send")
    assert (scheduled["status"], scheduled["started_at"]) == ("scheduled", None)
    final = await until_done(twilio_http, blast, created["id"])
    assert final["counts"]["sent"] == 2
    started = datetime.fromisoformat(final["started_at"].replace("Z", "+00:00"))
    assert started >= start_at


async def test_replies_to_a_number_routed_nowhere_come_back_to_the_unrouted_thread(
    twilio_server: LiveServer,
    twilio_http: httpx.AsyncClient,
    blast: Blast,
    standin: TimedStandIn,
    start_worker: StartWorker,
) -> None:
    async with twilio_server.state.transaction() as session:
        service = MessagingService(sid="MG" + "7" * 32, name="Stray blasts", purpose="blast")
        session.add(service)
        await session.flush()
        session.add(
            PhoneNumber(
                sid="PN" + "7" * 32,
                number="+16175550177",
                messaging_service_id=service.id,
                inbox_id=None,
            )
        )
    contacts = await add_contacts(twilio_server.state, 1)
    response = await twilio_http.post(
        "/api/v1/campaigns",
        json={
            "name": "Stray",
            "messaging_service_id": service.id,
            "body": "Hello",
            "contact_ids": contacts,
        },
        headers=blast.auth,
    )
    created = response.json()
    assert [w["code"] for w in created["warnings"]] == ["replies_unrouted"]
    await act(twilio_http, blast, created["id"], "send")
    await start_worker(twilio_server.settings)
    await until_done(twilio_http, blast, created["id"])

    reply = await text_in(
        twilio_http, twilio_server.settings, phone(2000), "+16175550177", "who is this?"
    )
    assert reply.status_code == 200
    async with twilio_server.state.reading() as session:
        sent, answer = (await session.scalars(select(Message).order_by(Message.id))).all()
        inbox = await session.scalar(
            select(Inbox).join(Conversation).where(Conversation.id == sent.conversation_id)
        )
    assert inbox is not None and inbox.is_unrouted
    assert answer.conversation_id == sent.conversation_id


async def test_serve_runs_the_worker_in_process_on_the_simulator(
    settings: Settings, tmp_path: Path
) -> None:
    """The embedded default: `serve` sends campaigns itself, through the built-in simulator."""
    server = await start_live_server(replace(settings, run_worker_in_process=True))
    try:
        world = await seed_world(server.state)
        blast = await seed_blast(server.state, world)
        contacts = await add_contacts(server.state, 3)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            created = await create(http, blast, body="Hi {first_name}", contact_ids=contacts)
            await act(http, blast, created["id"], "send")

            async def delivered() -> dict[str, Any] | None:
                found = await show(http, blast, created["id"])
                return found if found["counts"]["delivered"] == 3 else None

            final = await eventually(delivered, within=60)
    finally:
        await server.stop()
    assert final["status"] == "done"
    assert final["counts"]["sent"] == 3
