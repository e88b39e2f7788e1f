"""`kill -9` of a `serve` process in the middle of a burst of inbound webhooks.

Two processes share the database and Redis behind one PUBLIC_URL. Twilio's webhooks go to
both; one process is killed without warning while requests are in flight on it. Twilio sends
again whatever got no 200, and the survivor answers. Every message is stored exactly once,
every event is in the outbox once with gap-free seqs, and the browsers that were connected to
the dead process resume on the survivor with `since` and see every event once, in order.
"""

from __future__ import annotations

import asyncio

import pytest

from server.settings import Settings
from server.state import AppState
from tests.faults.harness import (
    GUARD,
    Follower,
    assert_channel_announces,
    assert_saw_every_event_once,
    assert_stored_once,
    cluster_settings,
    serve_processes,
    wait_until,
)
from tests.support.messaging import seed_world
from tests.support.twilio_sender import TwilioSender, sids, texts


@pytest.mark.slow
async def test_kill_9_mid_burst_stores_everything_once_and_clients_resume(
    settings: Settings,
) -> None:
    shared = cluster_settings(settings)
    state = AppState(shared)
    world = await seed_world(state)
    admissions, aid = f"inbox:{world.admissions}", f"inbox:{world.aid}"
    to_admissions = texts(world.n1, 90, prefix="admissions")
    to_aid = texts(world.n3, 60, prefix="aid", first_phone=16175558000)
    burst = [m for pair in zip(to_admissions, to_aid, strict=False) for m in pair]
    burst += to_admissions[len(to_aid) :]

    with serve_processes(shared, 2) as (doomed, survivor):
        sender = TwilioSender(
            shared.public_url, shared.webhook_auth_token, [doomed.base_url, survivor.base_url]
        )
        followers = {
            "member on the doomed process": Follower(world.tokens["member"], admissions),
            "admin on the doomed process": Follower(world.tokens["admin"], aid),
            "outsider on the survivor": Follower(world.tokens["outsider"], aid),
        }
        try:
            for name, follower in followers.items():
                await follower.connect(
                    (survivor if "survivor" in name else doomed).ws_url, resume=False
                )
            sending = asyncio.create_task(sender.burst(burst, concurrency=8))
            await wait_until(lambda: len(sender.answered_by(200)) >= len(burst) // 3)
            doomed.kill()  # SIGKILL: no shutdown, requests cut mid-way
            await asyncio.wait_for(sending, GUARD * 2)

            # The kill hit traffic: some requests to it got no answer and were sent again.
            lost = [a for a in sender.failures() if a.target == doomed.base_url]
            assert lost and all(a.status is None for a in lost)
            assert not [a for a in sender.failures() if a.target == survivor.base_url]

            await assert_stored_once(state, sids(burst))
            heads = {
                admissions: await assert_channel_announces(state, admissions, sids(to_admissions)),
                aid: await assert_channel_announces(state, aid, sids(to_aid)),
            }

            for name, follower in followers.items():
                if "doomed" in name:
                    code, _ = await follower.disconnected()
                    assert code != 1000, f"{name}: the dead process cannot close cleanly"
                    subscribed = await follower.connect(survivor.ws_url, resume=True)
                    assert subscribed["seq"] == heads[follower.channel]
                await follower.until_seq(heads[follower.channel])
            await asyncio.sleep(1.5)  # anything doubled or stray would arrive by now
            for follower in followers.values():
                assert_saw_every_event_once(follower, heads[follower.channel])
                created = {
                    e["data"]["twilio_sid"]
                    for e in follower.events
                    if e["type"] == "message.created"
                }
                expected = to_admissions if follower.channel == admissions else to_aid
                assert created == set(sids(expected))
        finally:
            for follower in followers.values():
                await follower.close()
            await sender.close()
            await state.close()
