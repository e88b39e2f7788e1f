"""Unread email notifications, derived by query from messages and read markers.

No hook in the inbound path: each pass of the worker asks the database which conversations of
inboxes with notifications on have an inbound message that no member has read for the inbox's
delay. The first such message names the quiet period; a `notifications` row per (conversation,
that message) — unique, inserted with ON CONFLICT DO NOTHING — is the one email of the period.
Rows are then claimed with a lease (an atomic conditional UPDATE), so of several workers exactly
one sends each email; a failed send goes back to `pending` with a backoff, and a member's read
before the send cancels it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from server.mailer import Email, Mailer, MailError
from server.services import sql
from server.services.claims import claim_update
from server.state import AppState
from store.models import (
    Conversation,
    Inbox,
    InboxMember,
    Message,
    Notification,
    ReadMarker,
    User,
    utcnow,
)

log = logging.getLogger("switchboard.notifications")

PREVIEW_CHARS = 280
# Conversations quiet for longer than this are not looked at (bounds each pass's work).
LOOKBACK = timedelta(days=3)


@dataclass(frozen=True)
class NotifyOptions:
    retry_base_seconds: float = 15.0
    retry_max_seconds: float = 900.0
    # A claimed row is someone's for this long; after it, a crashed sender's row is retried.
    lease_seconds: float = 120.0
    batch: int = 50


def read_upto() -> Any:
    """The highest read marker of any active member of the conversation's inbox (0 if none).

    A scalar subquery correlated to `Conversation` in the enclosing query.
    """
    return (
        select(func.coalesce(func.max(ReadMarker.message_id), 0))
        .join(
            InboxMember,
            and_(
                InboxMember.user_id == ReadMarker.user_id,
                InboxMember.inbox_id == Conversation.inbox_id,
            ),
        )
        .join(User, and_(User.id == ReadMarker.user_id, User.active.is_(True)))
        .where(ReadMarker.conversation_id == Conversation.id)
        .correlate(Conversation)
        .scalar_subquery()
    )


async def schedule_due(state: AppState, now: datetime | None = None) -> int:
    """Insert the notification row of every quiet period whose delay has passed; returns count.

    The search, over every conversation of the last `LOOKBACK`, runs in a read: in a write
    transaction it held SQLite's one write lock, and every webhook with it, for as long as it
    took (90 ms every pass with 50,000 conversations). A member's read that lands between the
    search and the insert is seen when the email is composed, which cancels it.
    """
    now = now or utcnow()
    async with state.reading() as session:
        due = await _due(session, now)
    if not due:
        return 0
    rows = [{**row, "due_at": now, "state": "pending", "attempts": 0} for row in due]
    async with state.transaction() as session:
        result = await session.execute(
            sql.insert(session, Notification)
            .values(rows)
            .on_conflict_do_nothing()
            .returning(Notification.id)
        )
        return len(result.all())


def due_search(now: datetime) -> Select[tuple[int, int, datetime, int]]:
    """(conversation, its first unread inbound message, when that came, the inbox's delay) of
    each unread quiet period in an inbox with notifications on that has no notification yet."""
    marker = read_upto()
    inbound = aliased(Message)
    first_unread = (
        select(func.min(inbound.id))
        .where(
            inbound.conversation_id == Conversation.id,
            inbound.direction == "inbound",
            inbound.id > marker,
            # Texts from before alerts were turned on raise none (no mail for the backlog).
            or_(Inbox.notify_since.is_(None), inbound.created_at >= Inbox.notify_since),
        )
        .correlate(Conversation, Inbox)
        .scalar_subquery()
    )
    covered = exists().where(
        Notification.conversation_id == Conversation.id, Notification.message_id > marker
    )
    # Conversations found by inbox and recency (an index range each): without naming the
    # inboxes up front, SQLite read every conversation there is, notifications on or off.
    notifying = select(Inbox.id).where(Inbox.notify_enabled.is_(True))
    return (
        select(Conversation.id, Message.id, Message.created_at, Inbox.notify_delay_seconds)
        .join(Inbox, Inbox.id == Conversation.inbox_id)
        .join(Message, Message.id == first_unread)
        .where(
            Conversation.inbox_id.in_(notifying),
            Conversation.last_message_at >= now - LOOKBACK,
            Conversation.last_inbound_message_id > marker,
            ~covered,
        )
    )


async def _due(session: AsyncSession, now: datetime) -> list[dict[str, int]]:
    """The quiet periods whose delay has passed."""
    return [
        {"conversation_id": conversation_id, "message_id": message_id}
        for conversation_id, message_id, created_at, delay in await session.execute(due_search(now))
        if created_at + timedelta(seconds=delay) <= now
    ]


async def claim(
    session: AsyncSession, options: NotifyOptions, now: datetime | None = None
) -> Sequence[int]:
    """Take due pending rows for this worker: each row is won by exactly one claimant.

    The claim pushes `due_at` a lease into the future, so the row is no longer due for anyone
    else; PostgreSQL skips rows another claimant holds locked instead of waiting for them.
    """
    now = now or utcnow()
    candidates = (
        select(Notification.id)
        .where(Notification.state == "pending", Notification.due_at <= now)
        .order_by(Notification.due_at)
        .limit(options.batch)
    )
    stmt = claim_update(
        session,
        Notification,
        candidates,
        and_(Notification.state == "pending", Notification.due_at <= now),
        {
            "due_at": now + timedelta(seconds=options.lease_seconds),
            "attempts": Notification.attempts + 1,
        },
    ).returning(Notification.id)
    return list((await session.scalars(stmt)).all())


async def compose(
    session: AsyncSession, notification: Notification, public_base: str
) -> Email | None:
    """The email owed for `notification`, or None when it is no longer owed (read, turned off)."""
    conversation = await session.get(Conversation, notification.conversation_id)
    if conversation is None:
        return None
    inbox = await session.get(Inbox, conversation.inbox_id)
    if inbox is None or not inbox.notify_enabled:
        return None
    marker = int(
        await session.scalar(select(read_upto()).where(Conversation.id == conversation.id)) or 0
    )
    if marker >= notification.message_id:
        return None
    recipients = await _recipients(session, inbox)
    if not recipients:
        return None
    unread = (
        await session.scalars(
            select(Message)
            .where(
                Message.conversation_id == conversation.id,
                Message.direction == "inbound",
                Message.id > marker,
            )
            .order_by(Message.id.desc())
            .limit(1)
        )
    ).first()
    count = await session.scalar(
        select(func.count()).where(
            Message.conversation_id == conversation.id,
            Message.direction == "inbound",
            Message.id > marker,
        )
    )
    contact = conversation.contact
    who = contact.phone
    if contact.display_name != contact.phone:
        who = f"{contact.display_name} ({contact.phone})"
    preview = _preview(unread.body if unread else "")
    plural = "message" if count == 1 else "messages"
    text = (
        f"{who} wrote to {inbox.name}:\n\n"
        f"    {preview}\n\n"
        f"{count} unread {plural}, unread by everyone in the inbox. Open the conversation:\n"
        f"{public_base}/conversations/{conversation.id}\n"
    )
    return Email(
        to=tuple(recipients),
        subject=f"Unread message from {contact.display_name} in {inbox.name}",
        text=text,
    )


def _preview(body: str) -> str:
    flat = " ".join(body.split())
    if not flat:
        return "(no text)"
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


async def _recipients(session: AsyncSession, inbox: Inbox) -> list[str]:
    if isinstance(inbox.notify_to, list):
        return sorted({str(address).strip() for address in inbox.notify_to if address})
    stmt = (
        select(User.email)
        .join(InboxMember, InboxMember.user_id == User.id)
        .where(InboxMember.inbox_id == inbox.id, User.active.is_(True))
        .order_by(User.email)
    )
    return list((await session.scalars(stmt)).all())


def backoff(attempts: int, options: NotifyOptions) -> float:
    return min(options.retry_max_seconds, options.retry_base_seconds * 2 ** max(0, attempts - 1))


async def deliver(
    state: AppState, mailer: Mailer, notification_id: int, options: NotifyOptions
) -> str:
    """Send one claimed notification; returns its new state (sent, canceled or pending)."""
    async with state.reading() as session:
        notification = await session.get(Notification, notification_id)
        if notification is None:
            return "canceled"
        email = await compose(session, notification, state.settings.public_base)
        attempts = notification.attempts
    if email is None:
        await _finish(state, notification_id, state="canceled")
        return "canceled"
    try:
        await mailer.send(email)
    except MailError as exc:
        delay = backoff(attempts, options)
        log.warning(
            "notification %s: sending failed (attempt %s), retrying in %.1f s: %s",
            notification_id,
            attempts,
            delay,
            exc,
        )
        await _finish(
            state,
            notification_id,
            state="pending",
            due_at=utcnow() + timedelta(seconds=delay),
            last_error=str(exc)[:2000],
        )
        return "pending"
    await _finish(state, notification_id, state="sent", sent_at=utcnow(), last_error=None)
    return "sent"


async def _finish(app: AppState, notification_id: int, **values: Any) -> None:
    async with app.transaction() as session:
        await session.execute(
            update(Notification).where(Notification.id == notification_id).values(**values)
        )
