"""Replay across a restart of the server process, and the "reconnect" close on shutdown."""

from __future__ import annotations

import signal

from server.settings import Settings
from server.state import AppState
from tests.live.helpers import LiveClient, emit, seed_team, seqs
from tests.support.live_server import start_live_server, start_server_process


async def test_replay_after_a_server_restart(live_settings: Settings) -> None:
    first = await start_live_server(live_settings)
    team = await seed_team(first.state)
    channel = f"inbox:{team.inbox_a}"
    client = await LiveClient.connect(first.ws_url, team.ann.token)
    await client.subscribe(channel)
    await emit(first.state, channel, 2)
    assert seqs(await client.events(channel, 2), channel) == [1, 2]

    await first.stop()
    code, _ = await client.closed()
    assert code == 1012  # service restart: reconnect

    # Committed while no server runs (a worker, say): nobody publishes these.
    state = AppState(live_settings)
    await emit(state, channel, 3)
    await state.close()

    second = await start_live_server(live_settings)
    try:
        client = await LiveClient.connect(second.ws_url, team.ann.token)
        assert (await client.subscribe(channel, since=2))["seq"] == 5
        await emit(second.state, channel)
        assert seqs(await client.events(channel, 4), channel) == [3, 4, 5, 6]
        assert await client.quiet(0.5) == []
        await client.close()
    finally:
        await second.stop()


async def test_shutdown_of_a_server_process_says_reconnect(settings: Settings) -> None:
    state = AppState(settings)
    team = await seed_team(state)
    process = start_server_process(settings)
    try:
        client = await LiveClient.connect(process.ws_url, team.bob.token)
        await client.subscribe(f"inbox:{team.inbox_a}")
        process.process.terminate()
        code, _ = await client.closed()
        assert code == 1012
        # Uvicorn re-raises SIGTERM once its graceful shutdown is complete.
        assert process.process.wait(20) in (0, -signal.SIGTERM)
    finally:
        if process.process.poll() is None:
            process.kill()
        await state.close()
