"""A client that stops reading is cut (4008, "resume with since") without hurting others, and
resumes where it stopped with nothing lost."""

from __future__ import annotations

import asyncio

from tests.live.helpers import LiveClient, Team, emit, eventually, seqs
from tests.support.live_server import LiveServer

PAD = "x" * 32_000
BATCHES, PER_BATCH = 40, 10
TOTAL = BATCHES * PER_BATCH


async def test_a_client_that_stops_reading_is_cut_and_resumes(
    server: LiveServer, team: Team
) -> None:
    channel = f"inbox:{team.inbox_a}"
    node_stats = server.state.publisher.stats  # type: ignore[union-attr]
    # max_queue=1: the client library stops reading the socket as soon as a frame waits.
    slow = await LiveClient.connect(server.ws_url, team.ann.token, max_queue=1)
    fast = await LiveClient.connect(server.ws_url, team.bob.token)
    await slow.subscribe(channel)
    await fast.subscribe(channel)

    async def read_everything() -> list[int]:
        return seqs(await fast.events(channel, TOTAL, within=60), channel)

    reader = asyncio.create_task(read_everything())
    for _ in range(BATCHES):
        await emit(server.state, channel, PER_BATCH, pad=PAD)
    assert await reader == list(range(1, TOTAL + 1))

    # The slow socket got a gap-free prefix, then the close telling it to resume.
    code, reason = await slow.closed(within=60)
    got = seqs(slow.frames, channel)
    assert code == 4008 and "since" in (reason or "")
    assert got == list(range(1, len(got) + 1)) and len(got) < TOTAL
    await eventually(lambda: node_stats()["connections"] == 1)  # the server let go of it
    assert node_stats()["slow_consumers_closed"] == 1

    resumed = await LiveClient.connect(server.ws_url, team.ann.token)
    await resumed.subscribe(channel, since=len(got))
    rest = seqs(await resumed.events(channel, TOTAL - len(got), within=60), channel)
    assert rest == list(range(len(got) + 1, TOTAL + 1))
    await resumed.close()
    await fast.close()
