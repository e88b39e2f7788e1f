"""Fixtures of the worker tests: a real SMTP server and in-process workers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from server.mailer import make_mailer
from server.services.campaign_sender import SendOptions
from server.services.notifications import NotifyOptions
from server.settings import Settings
from server.state import AppState
from server.twilio import setup as twilio_setup
from server.worker import Worker, WorkerOptions
from tests.support.live_server import LiveServer
from tests.support.messaging import World
from tests.worker.support import Blast, SmtpSink, TimedStandIn, seed_blast

FAST = WorkerOptions(
    poll_seconds=0.1,
    notify_poll_seconds=0.1,
    progress_seconds=0.2,
    send=SendOptions(stale_after_seconds=30),
    notify=NotifyOptions(retry_base_seconds=0.2, retry_max_seconds=1.0),
)

StartWorker = Callable[..., Awaitable[Worker]]


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
async def start_worker() -> AsyncIterator[StartWorker]:
    """Start in-process workers, each with its own engine (as separate processes would)."""
    running: list[tuple[Worker, AppState]] = []

    async def start(settings: Settings, options: WorkerOptions = FAST) -> Worker:
        state = AppState(settings)
        await twilio_setup.start(state)
        worker = Worker(state, options, make_mailer(settings.smtp_url, settings.public_url))
        await worker.start()
        running.append((worker, state))
        return worker

    yield start
    for worker, state in running:
        await worker.stop()
        await twilio_setup.stop(state)
        await state.close()


@pytest.fixture
async def standin() -> AsyncIterator[TimedStandIn]:
    """The Twilio stand-in, timing its requests (`twilio_server` and friends use it here)."""
    async with TimedStandIn() as twilio:
        yield twilio


@pytest.fixture
async def blast(twilio_server: LiveServer, twilio_world: World) -> Blast:
    return await seed_blast(twilio_server.state, twilio_world)
