"""Delivery statuses, which only ever move forward, and callbacks that beat the create response.

Twilio's order: {accepted, scheduled} < queued < sending < sent < {delivered, undelivered,
failed, partially_delivered, canceled} < read. A final state is only followed by `read`, so
a late `sent` after `delivered` changes nothing.

A status callback may arrive before our send has stored the sid Twilio gave us. It is then
kept as a `PendingStatus`; whoever commits second (the callback or the send) applies it,
because both look again after their own commit: the callback for the message, the send for
pending statuses. Applying locks the message row and deletes what it applied, so a pending
status takes effect exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.services.conversations import announce_status
from server.services.optout import set_opt_out
from server.state import AppState
from server.twilio.errors import OPTED_OUT_CODE, describe
from store.models import Conversation, Message, PendingStatus

log = logging.getLogger("switchboard.status")

FINAL = frozenset({"delivered", "undelivered", "failed", "partially_delivered", "canceled"})
RANK: dict[str, int] = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    **dict.fromkeys(FINAL, 4),
    "read": 5,
}


def is_known(status: str) -> bool:
    return status in RANK


def moves_forward(current: str, new: str) -> bool:
    """Whether a message in `current` may take `new`: strictly later in Twilio's order."""
    if new not in RANK:
        return False
    return RANK[new] > RANK.get(current, -1)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    sid: str
    status: str
    error_code: str | None = None


async def lock_message_by_sid(session: AsyncSession, sid: str) -> Message | None:
    stmt = (
        select(Message)
        .where(Message.twilio_sid == sid)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def apply_status(
    session: AsyncSession, message: Message, status: str, error_code: str | None
) -> bool:
    """Move `message` to `status` if that is forward; keep the error code. True if changed."""
    if not moves_forward(message.status, status):
        return False
    message.status = status
    await record_error(session, message, error_code)
    return True


async def record_error(
    session: AsyncSession, message: Message, code: str | None, text: str | None = None
) -> None:
    """Keep the error code Twilio gave for `message`; 21610 also records the opt-out."""
    if not code:
        return
    message.error_code = code
    message.error_message = text or describe(code)
    if code == OPTED_OUT_CODE and message.messaging_service_id is not None:
        await session.flush()
        await set_opt_out(
            session,
            messaging_service_id=message.messaging_service_id,
            phone=message.to_number,
            opted_out=True,
            source="error_21610",
            message_id=message.id,
        )


async def apply_pending(session: AsyncSession, messages: Sequence[Message]) -> list[Message]:
    """Apply (and drop) the statuses that arrived for `messages` before their sids were
    stored, in one lookup for them all.

    The caller holds the messages' row locks. Returns the messages whose status changed.
    """
    by_sid = {message.twilio_sid: message for message in messages if message.twilio_sid}
    if not by_sid:
        return []
    stmt = select(PendingStatus).where(PendingStatus.twilio_sid.in_(by_sid))
    pending = sorted((await session.scalars(stmt)).all(), key=lambda p: (RANK[p.status], p.id))
    if not pending:
        return []
    changed: dict[int, Message] = {}
    for item in pending:
        message = by_sid[item.twilio_sid]
        if await apply_status(session, message, item.status, item.error_code):
            changed[message.id] = message
    await session.execute(
        delete(PendingStatus).where(PendingStatus.id.in_([p.id for p in pending]))
    )
    return list(changed.values())


async def announce(session: AsyncSession, messages: Sequence[Message]) -> None:
    """Emit `message.status` for each of `messages` (one lookup of their inboxes)."""
    await session.flush()
    conversation_ids = {message.conversation_id for message in messages}
    inboxes = dict(
        (
            await session.execute(
                select(Conversation.id, Conversation.inbox_id).where(
                    Conversation.id.in_(conversation_ids)
                )
            )
        ).all()
    )
    for message in messages:
        inbox_id = inboxes.get(message.conversation_id)
        if inbox_id is not None:
            announce_status(session, inbox_id, message)


async def settle_unknown(session: AsyncSession, message: Message, detail: str) -> None:
    """The process sending `message` died before Twilio's answer was stored: it becomes
    `unknown`, saying why, announced. It is never sent again (Twilio may have taken it)."""
    message.status = "unknown"
    message.error_message = detail
    await announce(session, [message])


async def handle_callback(state: AppState, update: StatusUpdate) -> None:
    """A status callback: apply it forward-only, or keep it until its message is known."""
    async with state.transaction() as session:
        message = await lock_message_by_sid(session, update.sid)
        if message is None:
            log.info("status %s for unknown message %s kept as pending", update.status, update.sid)
            session.add(
                PendingStatus(
                    twilio_sid=update.sid, status=update.status, error_code=update.error_code
                )
            )
        elif await apply_status(session, message, update.status, update.error_code):
            await announce(session, [message])
    if message is None:
        await settle_pending(state, update.sid)


async def have_pending(session: AsyncSession, sids: Sequence[str]) -> list[bool]:
    """Whether each of `sids` has statuses waiting (one read, however many sends committed)."""
    stmt = select(PendingStatus.twilio_sid).where(PendingStatus.twilio_sid.in_(sids))
    found = set((await session.scalars(stmt)).all())
    return [sid in found for sid in sids]


async def settle_pending(state: AppState, sid: str) -> None:
    """Apply pending statuses of `sid` if its message exists by now (run after a commit).

    Whether any are pending is a read: the write transaction, and its turn at SQLite's one
    write lock, is taken only when there are (a callback that beat Twilio's answer: rare)."""
    async with state.reading() as session:
        [pending] = await have_pending(session, [sid])
    if not pending:
        return
    async with state.transaction() as session:
        message = await lock_message_by_sid(session, sid)
        if message is not None and await apply_pending(session, [message]):
            await announce(session, [message])
