"""Redis stopped and restarted while webhooks arrive at two `serve` processes.

Redis only carries news between processes; the database is the record. So while Redis is
gone every webhook is still answered 200 and stored, and every socket, on either process,
still gets every event once and in order: from the outbox (polled) while Redis is away, from
Redis again once it is back. A client that connects during the outage replays with `since`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from server.settings import Settings
from server.state import AppState
from tests.faults.harness import (
    GUARD,
    Follower,
    assert_nothing_lost,
    cluster_settings,
    serve_processes,
    wait_until,
)
from tests.support.live_server import free_port
from tests.support.messaging import seed_world
from tests.support.private_redis import PrivateRedis
from tests.support.twilio_sender import TwilioSender, texts


@pytest.mark.slow
async def test_webhooks_and_sockets_ride_out_a_redis_restart(
    settings: Settings, tmp_path: Path
) -> None:
    redis = PrivateRedis(free_port(), tmp_path)
    redis.start()
    shared = cluster_settings(settings, redis.url)
    state = AppState(shared)
    world = await seed_world(state)
    channel = f"inbox:{world.admissions}"
    burst = texts(world.n1, 90)

    with serve_processes(shared, 2) as (a, b):
        sender = TwilioSender(
            shared.public_url, shared.webhook_auth_token, [a.base_url, b.base_url]
        )
        on_a = Follower(world.tokens["member"], channel)
        on_b = Follower(world.tokens["admin"], channel)
        late = Follower(world.tokens["member"], channel)
        try:
            await on_a.connect(a.ws_url)
            await on_b.connect(b.ws_url)
            sending = asyncio.create_task(sender.burst(burst, concurrency=4))
            await wait_until(lambda: len(sender.answered_by(200)) >= 20)

            redis.stop()
            answered = len(sender.answered_by(200))
            await wait_until(lambda: len(sender.answered_by(200)) >= answered + 20)
            await late.connect(b.ws_url, resume=True)  # since=0 while Redis is gone
            redis.start()

            await asyncio.wait_for(sending, GUARD)
            assert sender.failures() == [], "Redis is not needed to take a webhook"
            await assert_nothing_lost(state, channel, burst, [on_a, on_b, late])
            assert all(follower.connected for follower in (on_a, on_b, late))
        finally:
            for follower in (on_a, on_b, late):
                await follower.close()
            await sender.close()
            await state.close()
            redis.stop()
