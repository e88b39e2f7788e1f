"""PostgreSQL restarted (or crashed) while webhooks and sockets are busy.

While the database is gone every webhook is answered 503 with `Retry-After`, so Twilio sends it
again; never 200 for something not stored, never a 500 or a stack trace. The process stays up
(`/healthz`), says it is not ready (`/readyz`), and carries on by itself once the database is
back: every message stored once, every event delivered once, in order.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from server.settings import Settings
from server.state import AppState
from store.migrate import upgrade_async
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
from tests.support.postgres_cluster import PrivateCluster
from tests.support.twilio_sender import TwilioSender, sids, texts


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"], ids=["restart", "crash"])
async def test_webhooks_are_refused_with_503_while_postgres_is_gone_and_nothing_is_lost(
    pg_cluster: PrivateCluster, tmp_path: Path, mode: str
) -> None:
    url = await pg_cluster.create_database(f"restart_{uuid.uuid4().hex[:10]}")
    await upgrade_async(url)
    shared = cluster_settings(
        Settings(
            database_url=url,
            secret_key="fault-secret-" + tmp_path.name,
            data_dir=tmp_path / "data",
            run_worker_in_process=False,
        )
    )
    state = AppState(shared)
    world = await seed_world(state)
    channel = f"inbox:{world.admissions}"
    burst = texts(world.n1, 80)

    with serve_processes(shared, 1) as (server,):
        sender = TwilioSender(
            shared.public_url, shared.webhook_auth_token, [server.base_url], retry_pause=0.2
        )
        follower = Follower(world.tokens["member"], channel)
        http = httpx.AsyncClient(base_url=server.base_url, timeout=GUARD)
        try:
            await follower.connect(server.ws_url)
            sending = asyncio.create_task(sender.burst(burst, concurrency=4))
            await wait_until(lambda: len(sender.answered_by(200)) >= 20)

            await asyncio.to_thread(pg_cluster.stop, mode)
            await wait_until(lambda: len(sender.answered_by(503)) >= 10)
            assert (await http.get("/healthz")).status_code == 200
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["down"] == ["database"]
            await asyncio.to_thread(pg_cluster.start)

            await asyncio.wait_for(sending, GUARD * 2)
            assert (await http.get("/readyz")).status_code == 200
            # Every answer but 200 was a 503 with Retry-After: nothing else, no dropped request.
            refusals = sender.failures()
            assert refusals and {(a.status, a.retry_after) for a in refusals} == {(503, "5")}
            assert all("Traceback" not in (a.error or "") for a in refusals)

            await assert_stored_once(state, sids(burst))
            last = await assert_channel_announces(state, channel, sids(burst))
            await follower.until_seq(last)
            await asyncio.sleep(1.5)
            assert_saw_every_event_once(follower, last)
            assert follower.connected, "the socket outlived the outage"
        finally:
            await follower.close()
            await http.aclose()
            await sender.close()
            await state.close()
