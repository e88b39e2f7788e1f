"""The background worker: campaign sending and unread email notifications.

`serve` runs one in-process (`start`/`stop`); `switchboard worker` runs one per process
(`run_forever`). Any number may run at once against one database: every piece of work is
claimed atomically in the database before it is done, so no two workers do the same piece.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import or_, select

from server import live
from server.mailer import Mailer, make_mailer
from server.services import campaign_sender as sending
from server.services import campaign_stats, notifications, outbound
from server.services.campaign_sender import SendOptions
from server.services.notifications import NotifyOptions
from server.settings import Settings
from server.state import AppState
from server.twilio import setup as twilio_setup
from store.models import Campaign, utcnow

log = logging.getLogger("switchboard.worker")

STOP_GRACE_SECONDS = 30.0
# How long after a campaign finishes its delivery receipts are watched for on every pass.
RECEIPTS_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True)
class WorkerOptions:
    poll_seconds: float = 0.5
    # Calls at Twilio at once in this worker (across its campaigns): they overlap Twilio's
    # latency; the campaign's rate sets the pace.
    concurrency: int = 8
    progress_seconds: float = 1.0
    notify_poll_seconds: float = 2.0
    send: SendOptions = field(default_factory=SendOptions)
    notify: NotifyOptions = field(default_factory=NotifyOptions)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerOptions:
        def number(name: str, default: float) -> float:
            value = env.get(name)
            return float(value) if value else default

        return cls(
            poll_seconds=number("SWITCHBOARD_WORKER_POLL_SECONDS", 0.5),
            progress_seconds=number("SWITCHBOARD_PROGRESS_SECONDS", 1.0),
            concurrency=int(number("SWITCHBOARD_SEND_CONCURRENCY", 8)),
            notify_poll_seconds=number("SWITCHBOARD_NOTIFY_POLL_SECONDS", 2.0),
            send=SendOptions(
                batch=int(number("SWITCHBOARD_CAMPAIGN_BATCH", 200)),
                stale_after_seconds=number("SWITCHBOARD_STALE_SEND_SECONDS", 60.0),
            ),
            notify=NotifyOptions(
                retry_base_seconds=number("SWITCHBOARD_NOTIFY_RETRY_SECONDS", 15.0),
            ),
        )


class Worker:
    def __init__(
        self,
        state: AppState,
        options: WorkerOptions | None = None,
        mailer: Mailer | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.state = state
        self.options = options or WorkerOptions()
        settings = state.settings
        self.mailer = mailer or make_mailer(settings.smtp_url, settings.public_url)
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.loops: list[asyncio.Task[None]] = []
        self.waiting: set[asyncio.Task[None]] = set()
        self.sending: set[asyncio.Future[str]] = set()
        self.in_flight: dict[int, int] = {}
        self.dispatcher = sending.Dispatcher(
            state, self.id, self.options.concurrency, self.options.send
        )
        # Set when a campaign's sends in this worker drain: time to claim more or finish it.
        self.campaigns_wake = asyncio.Event()
        self.passes = 0
        self.last_recovery = 0.0

    async def start(self) -> None:
        self.loops = [
            asyncio.create_task(
                self._forever("campaigns", self._campaign_pass, self.campaigns_wake)
            ),
            asyncio.create_task(self._forever("heartbeat", self._heartbeat_pass)),
            asyncio.create_task(self._forever("progress", self._progress_pass)),
            asyncio.create_task(self._forever("notifications", self._notification_pass)),
        ]
        log.info("worker %s started", self.id)

    async def stop(self) -> None:
        """Stop claiming; let sends already under way finish; give back unstarted claims."""
        for task in [*self.loops, *self.waiting]:
            task.cancel()
        await asyncio.gather(*self.loops, *self.waiting, return_exceptions=True)
        if self.sending:
            await asyncio.wait(self.sending, timeout=STOP_GRACE_SECONDS)
        try:
            await sending.release(self.state, self.id)
        except Exception:
            log.exception("worker %s: giving back its claims failed; they go stale", self.id)
        log.info("worker %s stopped", self.id)

    async def _forever(
        self,
        name: str,
        one_pass: Callable[[], Awaitable[float]],
        wake: asyncio.Event | None = None,
    ) -> None:
        """Run `one_pass` again and again; a failure is logged and retried, never fatal.

        Between passes it sleeps as long as the pass asked, or until `wake` is set.
        """
        wake = wake or asyncio.Event()
        failures = 0
        while True:
            try:
                pause = await one_pass()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("worker %s: %s pass failed", self.id, name)
                pause = min(30.0, 0.5 * 2**failures)
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=pause)
            wake.clear()

    # --- campaigns ---------------------------------------------------------------------------

    async def _campaign_pass(self) -> float:
        options = self.options
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self.last_recovery >= options.send.stale_after_seconds / 4:
            self.last_recovery = loop_time
            await sending.recover_stale(self.state, options.send)
            await outbound.settle_stale_quick_sends(
                self.state, timedelta(seconds=options.send.stale_after_seconds)
            )
        await sending.promote_scheduled(self.state)
        pause = options.poll_seconds
        for campaign_id in await sending.active_campaign_ids(self.state):
            busy = self.in_flight.get(campaign_id, 0)
            batch = await sending.claim(
                self.state, campaign_id, self.id, options.send.batch - busy, options.send
            )
            if batch.claimed:
                await self._dispatch(campaign_id, batch.claimed)
                pause = min(pause, options.poll_seconds / 10)
            elif batch.wait_until is not None:
                wait = (batch.wait_until - utcnow()).total_seconds()
                pause = min(pause, max(wait, 0.01))
            elif not busy and await sending.finish_if_done(self.state, campaign_id):
                log.info("campaign %s is done", campaign_id)
        return pause

    async def _dispatch(self, campaign_id: int, claimed: list[sending.Claimed]) -> None:
        sender = await sending.sender_for(self.state, campaign_id)
        if sender is None:
            log.error("campaign %s: its number is gone; paused until an admin resumes", campaign_id)
            await sending.halt(self.state, campaign_id)
            return
        for item in claimed:
            self.in_flight[campaign_id] = self.in_flight.get(campaign_id, 0) + 1
            task = asyncio.create_task(self._send_at_slot(sender, item))
            self.waiting.add(task)
            task.add_done_callback(self.waiting.discard)

    async def _send_at_slot(self, sender: sending.Sender, item: sending.Claimed) -> None:
        campaign_id = sender.campaign_id
        try:
            ahead = timedelta(seconds=self.options.send.prepare_seconds)
            await sending.sleep_until(item.slot - ahead)
            # From here the send must reach its outcome even if the worker is stopping.
            future = asyncio.ensure_future(self.dispatcher.send(sender, item))
            self.sending.add(future)
            future.add_done_callback(self.sending.discard)
            await asyncio.shield(future)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "campaign %s: sending to recipient %s failed", campaign_id, item.recipient_id
            )
        finally:
            self.in_flight[campaign_id] -= 1
            if not self.in_flight[campaign_id]:
                self.campaigns_wake.set()

    async def _heartbeat_pass(self) -> float:
        busy = [campaign_id for campaign_id, count in self.in_flight.items() if count]
        await sending.heartbeat(self.state, self.id, busy)
        return self.options.send.stale_after_seconds / 4

    # --- progress ----------------------------------------------------------------------------

    async def _progress_pass(self) -> float:
        """Emit `campaign.progress` for campaigns whose figures changed (once a second).

        Delivery and reply figures also move without any send (status callbacks, replies):
        campaigns finished in the last few minutes, while their delivery receipts come in, are
        looked at on every pass, and those still within the reply window every 20th pass.
        """
        self.passes += 1
        now = utcnow()
        active = Campaign.status.in_(("sending", "paused", "scheduled"))
        if self.passes % 20 == 1:
            since = now - campaign_stats.REPLY_WINDOW - timedelta(hours=1)
        else:
            since = now - RECEIPTS_WINDOW
        condition = or_(active, Campaign.finished_at >= since)
        async with self.state.reading() as session:
            campaign_ids = (await session.scalars(select(Campaign.id).where(condition))).all()
        for campaign_id in campaign_ids:
            await campaign_stats.publish_if_changed(self.state, campaign_id)
        return self.options.progress_seconds

    # --- notifications -----------------------------------------------------------------------

    async def _notification_pass(self) -> float:
        options = self.options.notify
        await notifications.schedule_due(self.state)
        async with self.state.transaction() as session:
            claimed = await notifications.claim(session, options)
        outcomes = await asyncio.gather(
            *(
                notifications.deliver(self.state, self.mailer, notification_id, options)
                for notification_id in claimed
            ),
            return_exceptions=True,
        )
        for notification_id, outcome in zip(claimed, outcomes, strict=True):
            if isinstance(outcome, Exception):
                # Its lease runs out and it is tried again; the others went on regardless.
                log.error("notification %s failed", notification_id, exc_info=outcome)
        return 0 if len(claimed) >= options.batch else self.options.notify_poll_seconds


async def start(state: AppState) -> None:
    worker = Worker(state, WorkerOptions.from_env(os.environ))
    state.worker = worker  # type: ignore[attr-defined]
    await worker.start()


async def stop(state: AppState) -> None:
    worker: Worker | None = getattr(state, "worker", None)
    if worker is not None:
        await worker.stop()
        state.worker = None  # type: ignore[attr-defined]


async def run_forever(settings: Settings) -> None:
    """The `switchboard worker` process: runs until SIGTERM or SIGINT, then stops cleanly."""
    state = AppState(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await twilio_setup.start(state)
    await live.start(state)
    try:
        await start(state)
        await stopping.wait()
    finally:
        await stop(state)
        await live.stop(state)
        await twilio_setup.stop(state)
        await state.close()
