"""Sending campaigns: claiming recipients, holding the throttle, and never sending anyone twice.

Whichever worker is free claims a batch of pending recipients in one statement (`UPDATE …
WHERE state = 'pending' AND id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`; on SQLite,
whose write transactions begin IMMEDIATE, the same statement runs alone). The same transaction
holds the campaign row lock and reserves one send slot per recipient by advancing the
campaign's `next_slot_at` by 1/rate each: slots are handed out once, across all workers, so
the campaign never goes faster than its rate. Slots are reserved at most a short horizon ahead,
so no worker hoards the queue.

A recipient is marked `sending`, and its message recorded as `sending`, in one committed
transaction before Twilio is called; that transaction also proves the worker still owns the
claim and the campaign is still sending. That step runs a little ahead of the recipient's
slot and Twilio is called at the slot itself, so the time a commit takes does not bunch sends
up (the throttle is seen by Twilio, not by the database). A send that reaches its slot late (a
worker falling behind) takes a fresh slot rather than catching up: no worker ever makes up
lost time by sending faster than the rate. After the call the outcome is stored.
(The sends a worker has under way share these transactions: see `Dispatcher`.) A recipient
left `sending` (its worker died) is never sent again: when it has gone stale it is settled
from what its message shows — Twilio's sid means it went out, no sid means nobody knows, and
it is marked `unknown` for people to see.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Row, bindparam, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.services import campaign_stats, sql
from server.services import status as statuses
from server.services.campaigns import locked, pause
from server.services.claims import claim_update
from server.services.conversations import (
    add_messages,
    announce_message,
    get_or_create_conversations,
)
from server.services.group_commit import GroupCommit
from server.services.merge_fields import MissingMergeField, render
from server.services.outbound import call_twilio, log_unstored, store_results
from server.services.routing import unrouted_inbox
from server.services.segments import segment_count
from server.state import AppState
from server.twilio.gateway import SendResult
from server.twilio.setup import gateway_of
from store.models import (
    Campaign,
    CampaignRecipient,
    Contact,
    Message,
    MessagingService,
    OptOut,
    PhoneNumber,
    utcnow,
)

log = logging.getLogger("switchboard.campaigns")

UNKNOWN_DETAIL = (
    "the worker sending this message stopped before Twilio's answer was stored; "
    "it was not sent again"
)


@dataclass(frozen=True)
class SendOptions:
    # The most recipients of one campaign a worker holds (claimed, not yet finished). A send
    # is held from `prepare_seconds` before its slot until its outcome is stored, so this caps
    # one worker near batch / (prepare_seconds + Twilio's latency) sends a second.
    batch: int = 200
    # How far ahead of now a worker may reserve send slots.
    horizon_seconds: float = 2.0
    # How long before its slot a send's database step begins (well inside the horizon).
    prepare_seconds: float = 0.5
    # A send this late for its slot takes a fresh one instead (one more transaction), so in
    # any second at most (1 + late_seconds) × rate sends go out, however far a worker fell
    # behind.
    late_seconds: float = 0.1
    # A claim whose worker has not renewed it for this long belongs to a worker that died.
    # Workers renew their claims (heartbeat) every quarter of it.
    stale_after_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class Claimed:
    recipient_id: int
    contact_id: int
    slot: datetime


@dataclass(frozen=True, slots=True)
class Batch:
    claimed: list[Claimed]
    # Nothing claimed because the throttle's slots are taken up to here: try again then.
    wait_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Sender:
    """What every message of one campaign shares: where it goes out from and lands."""

    campaign_id: int
    body: str
    created_by: int | None
    messaging_service_id: int
    service_sid: str
    from_number: str
    inbox_id: int


async def active_campaign_ids(state: AppState) -> list[int]:
    async with state.reading() as session:
        stmt = select(Campaign.id).where(Campaign.status == "sending").order_by(Campaign.id)
        return list((await session.scalars(stmt)).all())


async def promote_scheduled(state: AppState) -> list[int]:
    """Scheduled campaigns whose start time has come begin sending."""
    now = utcnow()
    async with state.transaction() as session:
        stmt = (
            update(Campaign)
            .where(Campaign.status == "scheduled", Campaign.start_at <= now)
            .values(status="sending", started_at=now)
            .returning(Campaign.id)
        )
        ids = list((await session.scalars(stmt)).all())
        for campaign_id in ids:
            campaign = await session.get(Campaign, campaign_id)
            if campaign is not None:
                await campaign_stats.emit_progress(session, campaign)
    return ids


async def claim(
    state: AppState, campaign_id: int, worker_id: str, limit: int, options: SendOptions
) -> Batch:
    """Claim up to `limit` pending recipients of a sending campaign, each with its send slot."""
    async with state.transaction() as session:
        campaign = await locked(session, campaign_id)
        if campaign.status != "sending" or limit <= 0:
            return Batch([])
        now = utcnow()
        interval = timedelta(seconds=1 / campaign.rate_per_second)
        # The first sends get their database step done before their slots come.
        earliest = now + timedelta(seconds=options.prepare_seconds)
        cursor = max(earliest, campaign.next_slot_at or earliest)
        horizon = now + timedelta(seconds=options.horizon_seconds)
        if cursor > horizon:
            return Batch([], wait_until=cursor - timedelta(seconds=options.horizon_seconds))
        room = math.floor((horizon - cursor) / interval) + 1
        pending = (
            select(CampaignRecipient.id)
            .where(
                CampaignRecipient.campaign_id == campaign_id,
                CampaignRecipient.state == "pending",
            )
            .order_by(CampaignRecipient.id)
            .limit(min(limit, room))
        )
        stmt = claim_update(
            session,
            CampaignRecipient,
            pending,
            CampaignRecipient.state == "pending",
            {"state": "claimed", "claimed_by": worker_id, "claimed_at": now},
        ).returning(CampaignRecipient.id, CampaignRecipient.contact_id)
        rows = sorted((await session.execute(stmt)).all())
        if rows:
            campaign.next_slot_at = cursor + interval * len(rows)
        return Batch(
            [
                Claimed(recipient_id, contact_id, cursor + interval * index)
                for index, (recipient_id, contact_id) in enumerate(rows)
            ]
        )


async def _reslot_all(session: AsyncSession, campaign_ids: Sequence[int]) -> list[datetime]:
    """The next free send slots of campaigns, one reserved for each send that missed its own."""
    campaigns = {cid: await locked(session, cid) for cid in dict.fromkeys(campaign_ids)}
    now = utcnow()
    slots: list[datetime] = []
    for campaign_id in campaign_ids:
        campaign = campaigns[campaign_id]
        slot = max(now, campaign.next_slot_at or now)
        campaign.next_slot_at = slot + timedelta(seconds=1 / campaign.rate_per_second)
        slots.append(slot)
    return slots


async def release(state: AppState, worker_id: str) -> int:
    """Hand this worker's claimed, not yet started recipients back to the queue."""
    async with state.transaction() as session:
        result = await session.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.claimed_by == worker_id, CampaignRecipient.state == "claimed")
            .values(state="pending", claimed_by=None)
        )
        return int(result.rowcount or 0)


async def halt(state: AppState, campaign_id: int) -> None:
    """Pause a campaign that cannot go on by itself (its sending number was removed)."""
    async with state.transaction() as session:
        campaign = await locked(session, campaign_id)
        if campaign.status == "sending":
            await pause(session, campaign)


async def sender_for(state: AppState, campaign_id: int) -> Sender | None:
    """The sending details of a campaign, or None when it cannot send (no number any more)."""
    async with state.transaction() as session:
        campaign = await session.get(Campaign, campaign_id)
        if campaign is None or campaign.from_number is None:
            return None
        number = await session.scalar(
            select(PhoneNumber).where(PhoneNumber.number == campaign.from_number)
        )
        service = await session.get(MessagingService, campaign.messaging_service_id)
        if number is None or service is None:
            return None
        inbox_id = number.inbox_id or (await unrouted_inbox(session)).id
        return Sender(
            campaign_id=campaign.id,
            body=campaign.body,
            created_by=campaign.created_by,
            messaging_service_id=service.id,
            service_sid=service.sid,
            from_number=number.number,
            inbox_id=inbox_id,
        )


class Dispatcher:
    """Sends claimed recipients for one worker; the database steps of sends under way at the
    same time commit together (`GroupCommit`), each send's own steps still in order:
    `sending` committed, then Twilio at the slot, then the outcome. At most `concurrency`
    calls are at Twilio at once; storing their outcomes does not hold up the next calls."""

    def __init__(
        self,
        state: AppState,
        worker_id: str,
        concurrency: int,
        options: SendOptions,
        group_limit: int = 50,
    ) -> None:
        self.state = state
        self.late = timedelta(seconds=options.late_seconds)
        self.calls = asyncio.Semaphore(concurrency)
        self.begin = GroupCommit(state, partial(_begin_all, worker_id=worker_id), group_limit)
        self.reslot = GroupCommit(state, _reslot_all, group_limit)
        self.finish = GroupCommit(state, _finish_all, group_limit)
        self.pending = GroupCommit(state, statuses.have_pending, group_limit, session=state.reading)

    async def send(self, sender: Sender, claimed: Claimed) -> str:
        """Send to one claimed recipient; returns its new state (`lost`: no longer ours).

        Call it `prepare_seconds` before the slot, shielded from cancellation: once the
        recipient is `sending` the outcome must be stored.
        """
        message, outcome = await self.begin.submit((sender, claimed))
        if message is None:
            return outcome
        slot = claimed.slot
        while True:
            await sleep_until(slot)
            async with self.calls:
                if utcnow() - slot <= self.late:
                    gateway = gateway_of(self.state)
                    result = await call_twilio(self.state, gateway, message, sender.service_sid)
                    break
            slot = await self.reslot.submit(sender.campaign_id)
        return await self._store(sender, claimed, message.id, result)

    async def _store(
        self, sender: Sender, claimed: Claimed, message_id: int, result: SendResult
    ) -> str:
        try:
            final, sid = await self.finish.submit((claimed.recipient_id, message_id, result))
        except Exception:
            # Twilio's answer is lost to us: settle it as a dead worker's send would be.
            log_unstored(message_id, result)
            async with self.state.transaction() as session:
                recipient = await session.get(CampaignRecipient, claimed.recipient_id)
                if recipient is not None and recipient.state == "sending":
                    return await _settle_stale(session, recipient)
            raise
        if sid is not None and await self.pending.submit(sid):
            await statuses.settle_pending(self.state, sid)
        return final


async def _finish_all(
    session: AsyncSession, outcomes: Sequence[tuple[int, int, SendResult]]
) -> list[tuple[str, str | None]]:
    """Store what Twilio said for each send, and its recipient's outcome (a recipient taken
    for dead meanwhile learns it too); each send's final state and Twilio sid."""
    messages = await store_results(
        session, [(message_id, result) for _, message_id, result in outcomes]
    )
    finished = [
        ("failed" if message.status == "failed" else "sent", message) for message in messages
    ]
    await session.execute(
        _FINISH,
        [
            {"recipient_id": recipient_id, "new_state": final, "new_error_code": message.error_code}
            for (recipient_id, _, _), (final, message) in zip(outcomes, finished, strict=True)
        ],
    )
    return [(final, message.twilio_sid) for final, message in finished]


# Built once: constructing a statement costs more than running it from the compiled cache.
_recipients = CampaignRecipient.__table__
_TAKE = (
    update(_recipients)
    .where(
        _recipients.c.id.in_(bindparam("ids", expanding=True)),
        _recipients.c.state == "claimed",
        _recipients.c.claimed_by == bindparam("worker_id"),
        select(Campaign.id)
        .where(Campaign.id == _recipients.c.campaign_id, Campaign.status == "sending")
        .exists(),
    )
    .values(state="sending", claimed_at=bindparam("now"))
    .returning(_recipients.c.id)
)
_SETTLE = (
    update(_recipients)
    .where(_recipients.c.id == bindparam("recipient_id"))
    .values(
        state=bindparam("new_state"),
        message_id=bindparam("new_message_id"),
        error_code=bindparam("new_error_code"),
    )
)
_FINISH = (
    update(_recipients)
    .where(
        _recipients.c.id == bindparam("recipient_id"),
        # Spelled out: an IN list cannot be used by a statement run for many rows.
        or_(_recipients.c.state == "sending", _recipients.c.state == "unknown"),
    )
    .values(state=bindparam("new_state"), error_code=bindparam("new_error_code"))
)
_CONTACTS = select(Contact).where(Contact.id.in_(bindparam("ids", expanding=True)))
_OPTED_OUT = select(OptOut.messaging_service_id, OptOut.phone).where(
    OptOut.opted_out,
    OptOut.messaging_service_id.in_(bindparam("services", expanding=True)),
    OptOut.phone.in_(bindparam("phones", expanding=True)),
)


async def _begin_all(
    session: AsyncSession, items: Sequence[tuple[Sender, Claimed]], worker_id: str
) -> list[tuple[Row[Any] | None, str]]:
    """Take each recipient from `claimed` to `sending` with its message recorded, or settle it
    here (opted out, merge field gone), with set-wide statements for the group. Taking it
    proves the claim is still ours and its campaign still sending; a recipient that fails
    that is `lost`."""
    ids = [claimed.recipient_id for _, claimed in items]
    taken = set(await session.scalars(_TAKE, {"ids": ids, "worker_id": worker_id, "now": utcnow()}))
    mine = [(sender, claimed) for sender, claimed in items if claimed.recipient_id in taken]
    if not mine:
        return [(None, "lost")] * len(items)
    contact_ids = sorted({claimed.contact_id for _, claimed in mine})
    contacts = {c.id: c for c in await session.scalars(_CONTACTS, {"ids": contact_ids})}
    opted_out = set(
        (
            await session.execute(
                _OPTED_OUT,
                {
                    "services": sorted({sender.messaging_service_id for sender, _ in mine}),
                    "phones": sorted({contact.phone for contact in contacts.values()}),
                },
            )
        ).all()
    )
    outcomes: dict[int, str] = {}
    settled: list[dict[str, Any]] = []
    to_send: list[tuple[Sender, Claimed, str]] = []
    for sender, claimed in mine:
        contact = contacts[claimed.contact_id]
        if (sender.messaging_service_id, contact.phone) in opted_out:
            outcomes[claimed.recipient_id] = "skipped_opted_out"
            settled.append(_settled(claimed, "skipped_opted_out"))
            continue
        try:
            to_send.append((sender, claimed, render(sender.body, contact)))
        except MissingMergeField as exc:
            log.warning("campaign %s: contact %s %s", sender.campaign_id, contact.id, exc)
            outcomes[claimed.recipient_id] = "failed"
            settled.append(_settled(claimed, "failed", error_code="merge_field"))
    messages: dict[int, Row[Any]] = {}
    if to_send:
        threads = [(sender.inbox_id, claimed.contact_id) for sender, claimed, _ in to_send]
        conversations = await get_or_create_conversations(session, threads)
        added = await add_messages(
            session,
            [
                (conversations[thread], _message(sender, contacts[claimed.contact_id], text))
                for (sender, claimed, text), thread in zip(to_send, threads, strict=True)
            ],
            key=("campaign_id",),
        )
        for (_, claimed, _), (conversation, message) in zip(to_send, added, strict=True):
            announce_message(session, conversation, message)
            messages[claimed.recipient_id] = message
            outcomes[claimed.recipient_id] = "sending"
            settled.append(_settled(claimed, "sending", message_id=message.id))
    await session.execute(_SETTLE, settled)
    return [
        (messages.get(claimed.recipient_id), outcomes.get(claimed.recipient_id, "lost"))
        for _, claimed in items
    ]


def _settled(
    claimed: Claimed, state: str, message_id: int | None = None, error_code: str | None = None
) -> dict[str, Any]:
    return {
        "recipient_id": claimed.recipient_id,
        "new_state": state,
        "new_message_id": message_id,
        "new_error_code": error_code,
    }


def _message(sender: Sender, contact: Contact, text: str) -> dict[str, Any]:
    return {
        "direction": "outbound",
        "tag": "campaign",
        "body": text,
        "status": "sending",
        "from_number": sender.from_number,
        "to_number": contact.phone,
        "messaging_service_id": sender.messaging_service_id,
        "segments": segment_count(text),
        "sent_by": sender.created_by,
        "campaign_id": sender.campaign_id,
    }


async def heartbeat(state: AppState, worker_id: str, campaign_ids: list[int]) -> int:
    """Renew this worker's claims and sends, so no one takes it for dead while it works."""
    if not campaign_ids:
        return 0
    async with state.transaction() as session:
        result = await session.execute(
            update(CampaignRecipient)
            .where(
                CampaignRecipient.campaign_id.in_(campaign_ids),
                CampaignRecipient.state.in_(("claimed", "sending")),
                CampaignRecipient.claimed_by == worker_id,
            )
            .values(claimed_at=utcnow())
        )
        return int(result.rowcount or 0)


async def recover_stale(state: AppState, options: SendOptions) -> dict[str, int]:
    """Settle what dead workers left (claims not renewed within `stale_after_seconds`):
    claims go back to the queue; sends are settled from their message (Twilio's sid: sent
    or failed; none: `unknown`), never sent again.

    Taking a live worker for dead is safe, only untidy: its send then finds the claim gone
    and stops before Twilio, or, already under way, turns `unknown` into the real outcome.
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=options.stale_after_seconds)
    settled: dict[str, int] = {"requeued": 0, "sent": 0, "failed": 0, "unknown": 0}
    async with state.reading() as session:
        # Only campaigns that can still have work in flight (paused and canceled ones too).
        stmt = select(Campaign.id).where(
            Campaign.status.in_(("sending", "paused", "canceled")),
            or_(Campaign.finished_at.is_(None), Campaign.finished_at >= cutoff - timedelta(days=1)),
        )
        campaign_ids = list((await session.scalars(stmt)).all())
    for campaign_id in campaign_ids:
        async with state.transaction() as session:
            in_campaign = CampaignRecipient.campaign_id == campaign_id
            requeued = await session.execute(
                update(CampaignRecipient)
                .where(
                    in_campaign,
                    CampaignRecipient.state == "claimed",
                    CampaignRecipient.claimed_at < cutoff,
                )
                .values(state="pending", claimed_by=None)
            )
            settled["requeued"] += int(requeued.rowcount or 0)
            stale = (
                select(CampaignRecipient)
                .where(
                    in_campaign,
                    CampaignRecipient.state == "sending",
                    CampaignRecipient.claimed_at < cutoff,
                )
                .order_by(CampaignRecipient.id)
                .limit(500)
            )
            if sql.is_postgres(session):
                stale = stale.with_for_update(skip_locked=True)
            for recipient in (await session.scalars(stale)).all():
                settled[await _settle_stale(session, recipient)] += 1
    if any(settled.values()):
        log.warning("settled recipients left by stopped workers: %s", settled)
    return settled


async def _settle_stale(session: AsyncSession, recipient: CampaignRecipient) -> str:
    message = None
    if recipient.message_id is not None:
        message = (
            await session.execute(
                select(Message)
                .where(Message.id == recipient.message_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
    if message is not None and (message.twilio_sid or message.status == "failed"):
        outcome = "failed" if message.status in campaign_stats.FAILED else "sent"
    else:
        outcome = "unknown"
        if message is not None and message.status == "sending":
            await statuses.settle_unknown(session, message, UNKNOWN_DETAIL)
    recipient.state = outcome
    recipient.error_code = message.error_code if message is not None else None
    return outcome


async def finish_if_done(state: AppState, campaign_id: int) -> bool:
    """A sending campaign with every recipient handled becomes `done`."""
    unhandled = exists().where(
        CampaignRecipient.campaign_id == campaign_id,
        CampaignRecipient.state.in_(("pending", "claimed", "sending")),
    )
    async with state.transaction() as session:
        result = await session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.status == "sending", ~unhandled)
            .values(status="done", finished_at=utcnow())
        )
        if not result.rowcount:
            return False
        campaign = await session.get(Campaign, campaign_id)
        if campaign is not None:
            await session.refresh(campaign)
            await campaign_stats.emit_progress(session, campaign)
        return True


async def sleep_until(moment: datetime) -> None:
    delay = (moment - utcnow()).total_seconds()
    if delay > 0:
        await asyncio.sleep(delay)
