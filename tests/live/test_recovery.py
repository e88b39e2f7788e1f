"""Events whose publish was lost (a crash between commit and publish, a broker outage) or that
arrive out of order still reach every subscriber, in seq order, exactly once."""

from __future__ import annotations

from server.state import envelope
from store import outbox
from tests.live.helpers import LiveClient, Team, emit, seqs
from tests.support.live_server import LiveServer


async def emit_unpublished(server: LiveServer, channel: str, count: int) -> None:
    """Commit events as a process that dies right after its commit would: never published."""
    publisher, server.state.publisher = server.state.publisher, None
    try:
        await emit(server.state, channel, count)
    finally:
        server.state.publisher = publisher


async def test_lost_publishes_are_fetched_from_the_outbox(server: LiveServer, team: Team) -> None:
    channel = f"inbox:{team.inbox_a}"
    client = await LiveClient.connect(server.ws_url, team.ann.token)
    await client.subscribe(channel)
    await emit(server.state, channel)
    await emit_unpublished(server, channel, 2)  # seqs 2, 3: nobody announces them
    await emit(server.state, channel)  # seq 4 arrives live with a gap before it
    assert seqs(await client.events(channel, 4), channel) == [1, 2, 3, 4]
    # With nothing live after them, the periodic outbox poll brings them.
    await emit_unpublished(server, channel, 2)
    assert seqs(await client.events(channel, 2), channel) == [5, 6]
    assert await client.quiet(1.5) == []
    await client.close()


async def test_out_of_order_publishes_are_delivered_in_seq_order(
    server: LiveServer, team: Team
) -> None:
    channel = f"inbox:{team.inbox_a}"
    client = await LiveClient.connect(server.ws_url, team.bob.token, encoding="json")
    await client.subscribe(channel)
    await emit_unpublished(server, channel, 5)
    async with server.state.reading() as session:
        events = [envelope(e) for e in await outbox.read_since(session, channel, 0)]
    publisher = server.state.publisher
    assert publisher is not None
    # Announced late and backwards, some twice (as two processes racing would).
    await publisher.publish(events[::-1])
    await publisher.publish(events[2:])
    assert seqs(await client.events(channel, 5), channel) == [1, 2, 3, 4, 5]
    assert await client.quiet(1.5) == []
    await client.close()
