"""`since`: missed events replayed in order with no duplicates, then live with no gap at the
seam, or `resync` when the gap is older than the retained backlog."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from store import outbox
from tests.live.helpers import LiveClient, Team, emit, seqs
from tests.support.live_server import LiveServer


async def test_reconnect_with_since_replays_then_continues_live(
    server: LiveServer, team: Team
) -> None:
    channel = f"inbox:{team.inbox_a}"
    client = await LiveClient.connect(server.ws_url, team.ann.token)
    await client.subscribe(channel)
    await emit(server.state, channel, 3)
    assert seqs(await client.events(channel, 3), channel) == [1, 2, 3]
    await client.close()

    await emit(server.state, channel, 7)  # missed while away
    client = await LiveClient.connect(server.ws_url, team.ann.token, encoding="json")
    assert (await client.subscribe(channel, since=3))["seq"] == 10
    assert seqs(await client.events(channel, 7), channel) == list(range(4, 11))
    await emit(server.state, channel, 2)
    assert seqs(await client.events(channel, 2), channel) == [11, 12]
    assert await client.quiet(0.3) == []

    # Since the current seq: nothing to replay, straight to live.
    other = await LiveClient.connect(server.ws_url, team.bob.token)
    assert (await other.subscribe(channel, since=12))["seq"] == 12
    await emit(server.state, channel)
    await other.expect(op="event", channel=channel, seq=13)
    await client.expect(op="event", channel=channel, seq=13)
    await client.close()
    await other.close()


async def test_no_gap_or_duplicate_at_the_seam_under_concurrent_writes(
    server: LiveServer, team: Team
) -> None:
    """Writers commit concurrently (so publishes arrive out of seq order) while clients join
    with `since` at random points; each must see exactly since+1 … last, in order."""
    channel = f"inbox:{team.inbox_a}"
    rng = random.Random(7)
    total = 0
    done = asyncio.Event()

    async def writer() -> None:
        nonlocal total
        for _ in range(40):
            await emit(server.state, channel, rng.randint(1, 3))
            await asyncio.sleep(rng.random() * 0.01)

    async def produce() -> None:
        await asyncio.gather(*(writer() for _ in range(4)))
        done.set()

    async def join(delay: float) -> tuple[int, list[int]]:
        await asyncio.sleep(delay)
        async with server.state.reading() as session:
            head = (await outbox.current_seqs(session, [channel]))[channel]
        since = rng.randint(0, head)
        client = await LiveClient.connect(server.ws_url, team.bob.token)
        await client.subscribe(channel, since=since)
        await done.wait()
        async with server.state.reading() as session:
            final = (await outbox.current_seqs(session, [channel]))[channel]
        got: list[int] = []
        while not got or got[-1] < final:
            got.extend(seqs([await client.recv()], channel))
        got.extend(seqs(await client.quiet(0.3), channel))
        await client.close()
        return since, got

    producer = asyncio.create_task(produce())
    results = await asyncio.gather(*(join(i * 0.05) for i in range(12)))
    await producer
    async with server.state.reading() as session:
        total = (await outbox.current_seqs(session, [channel]))[channel]
    assert total >= 160
    for since, got in results:
        assert got == list(range(since + 1, total + 1)), (since, got[:10])


async def test_resync_when_the_gap_is_older_than_the_backlog(
    server: LiveServer, team: Team
) -> None:
    channel = f"inbox:{team.inbox_a}"
    await emit(server.state, channel, 10)
    async with server.state.transaction() as session:
        await outbox.trim(session, keep_per_channel=3, max_age=timedelta(days=1))

    client = await LiveClient.connect(server.ws_url, team.ann.token)
    # 8, 9 and 10 are still retained: replayed.
    assert (await client.subscribe(channel, since=7))["seq"] == 10
    assert seqs(await client.events(channel, 3), channel) == [8, 9, 10]

    # 3 … 7 are gone: resync, then live from the current seq.
    stale = f"inbox:{team.inbox_a}"
    await client.send({"op": "unsubscribe", "channel": stale})
    await client.subscribe(stale, since=2)
    await client.expect(op="resync", channel=stale)
    await emit(server.state, channel)
    await client.expect(op="event", channel=channel, seq=11)

    # Ahead of the channel (a since this server never handed out): resync as well.
    ahead = await LiveClient.connect(server.ws_url, team.bob.token)
    await ahead.subscribe(channel, since=500)
    await ahead.expect(op="resync", channel=channel)
    await emit(server.state, channel)
    await ahead.expect(op="event", channel=channel, seq=12)
    await client.expect(op="event", channel=channel, seq=12)
    await client.close()
    await ahead.close()
