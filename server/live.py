"""Starts and stops the realtime node for the app: the node is the app's event publisher, is
given the channel policy and the outbox as its history, and serves `/ws`.

Also trims the outbox to the configured retention, which is how far back `since` can replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Sequence
from datetime import timedelta

from realtime import Envelope, Node, NodeOptions, create_node
from server.policy import ChannelPolicy
from server.state import AppState, envelope
from store import outbox

log = logging.getLogger("switchboard.live")

TRIM_EVERY_SECONDS = 600

_nodes: weakref.WeakKeyDictionary[AppState, Node] = weakref.WeakKeyDictionary()
_trimmers: weakref.WeakKeyDictionary[AppState, asyncio.Task[None]] = weakref.WeakKeyDictionary()


class OutboxHistory:
    """The realtime node's view of the event outbox."""

    def __init__(self, state: AppState) -> None:
        self._state = state

    async def since(self, channel: str, seq: int, limit: int) -> Sequence[Envelope]:
        async with self._state.reading() as session:
            events = await outbox.read_since(session, channel, seq, limit)
            return [envelope(event) for event in events]

    async def heads(self, channels: Sequence[str]) -> dict[str, int]:
        async with self._state.reading() as session:
            return await outbox.current_seqs(session, channels)


def node_of(state: AppState) -> Node | None:
    """The running node of this app (None before start or after stop)."""
    return _nodes.get(state)


async def start(state: AppState) -> None:
    settings = state.settings
    node = create_node(
        ChannelPolicy(state),
        OutboxHistory(state),
        redis_url=settings.redis_url,
        redis_prefix=settings.redis_prefix,
        options=NodeOptions(poll_interval=settings.live_poll_seconds),
    )
    await node.start()
    _nodes[state] = node
    state.publisher = node
    _trimmers[state] = asyncio.create_task(_trim_forever(state), name="outbox-trim")


async def drain(state: AppState) -> None:
    """Before the server shuts down: send every socket elsewhere, telling it to resume there."""
    node = _nodes.get(state)
    if node is not None:
        await node.drain()


async def stop(state: AppState) -> None:
    trimmer = _trimmers.pop(state, None)
    if trimmer is not None:
        trimmer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await trimmer
    node = _nodes.pop(state, None)
    if node is not None:
        state.publisher = None
        await node.stop()


async def trim_outbox(state: AppState, batch: int = outbox.TRIM_BATCH) -> int:
    """Drop events beyond the retained backlog; `since` older than what is left gets resync.

    In transactions of `batch` events each, so that a backlog of millions never holds the
    write lock (SQLite's one writer) for more than a moment at a time."""
    settings = state.settings
    removed = 0
    while True:
        async with state.transaction() as session:
            removed_now = await outbox.trim(
                session,
                keep_per_channel=settings.event_retention_count,
                max_age=timedelta(seconds=settings.event_retention_seconds),
                limit=batch,
            )
        removed += removed_now
        if removed_now < batch:
            return removed


async def _trim_forever(state: AppState) -> None:
    while True:
        await asyncio.sleep(TRIM_EVERY_SECONDS)
        try:
            removed = await trim_outbox(state)
            if removed:
                log.info("trimmed %d old events from the outbox", removed)
        except Exception as exc:
            log.warning("trimming the outbox failed (%s)", exc)
