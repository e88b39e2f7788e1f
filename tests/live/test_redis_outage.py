"""A Redis outage loses nothing: writes still succeed, sockets catch up from the outbox (by
polling while Redis is down, or as soon as it is back), in order and without duplicates."""

from __future__ import annotations

from dataclasses import replace

import pytest

from server.settings import Settings
from tests.live.conftest import with_redis
from tests.live.helpers import LiveClient, emit, seqs, two_processes
from tests.support.private_redis import PrivateRedis


@pytest.mark.parametrize("poll_seconds", [1.0, 0.0], ids=["polling", "no-polling"])
async def test_nothing_is_lost_across_a_redis_outage(
    settings: Settings, private_redis: PrivateRedis, poll_seconds: float
) -> None:
    shared = with_redis(replace(settings, live_poll_seconds=poll_seconds), private_redis.url)
    async with two_processes(shared) as both:
        a, b, team = both.a, both.b, both.team
        channel = f"inbox:{team.inbox_a}"
        on_b = await LiveClient.connect(b.ws_url, team.ann.token)
        on_a = await LiveClient.connect(a.ws_url, team.bob.token)
        for client in (on_a, on_b):
            await client.subscribe(channel)
        await emit(a.state, channel, 2)
        for client in (on_a, on_b):
            assert seqs(await client.events(channel, 2), channel) == [1, 2]

        private_redis.kill()
        await emit(a.state, channel, 3)  # writes still succeed
        assert seqs(await on_a.events(channel, 3), channel) == [3, 4, 5]
        if poll_seconds:
            # Process B has no news from Redis, but polls the outbox.
            assert seqs(await on_b.events(channel, 3), channel) == [3, 4, 5]
        # Replays come from the outbox, Redis or not.
        late = await LiveClient.connect(b.ws_url, team.admin.token, encoding="json")
        assert (await late.subscribe(channel, since=1))["seq"] == 5
        assert seqs(await late.events(channel, 4), channel) == [2, 3, 4, 5]

        private_redis.start()
        await emit(a.state, channel, 2)
        await emit(a.state, channel, 1)
        for client in (on_a, on_b, late):
            await client.until(within=30, op="event", channel=channel, seq=8)
            assert await client.quiet(1.5) == []
        assert seqs(on_a.frames, channel) == list(range(1, 9))
        assert seqs(on_b.frames, channel) == list(range(1, 9))
        assert seqs(late.frames, channel) == list(range(2, 9))
        # And Redis carries the news again (not just polling).
        await emit(a.state, channel, 1)
        await on_b.expect(within=30, op="event", channel=channel, seq=9)
