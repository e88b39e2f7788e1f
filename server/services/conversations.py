"""Conversations: one per (inbox, contact), and the messages recorded into them with events."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.serializers import conversation_json, message_json
from server.services import sql
from store import outbox
from store.models import Conversation, Message, utcnow

# Conversations whose row this transaction has locked (and read fresh).
_LOCKED_KEY = "conversations.locked"


async def get_or_create_conversation(
    session: AsyncSession, inbox_id: int, contact_id: int
) -> Conversation:
    """The conversation of `contact_id` in `inbox_id`, created if new (race-safe upsert),
    its row locked like `lock_conversation` (messages are recorded into it next)."""
    existing = (
        select(Conversation)
        .where(Conversation.inbox_id == inbox_id, Conversation.contact_id == contact_id)
        .with_for_update(of=Conversation)
        .execution_options(populate_existing=True)
    )
    found = await session.scalar(existing)
    if found is not None:
        _note_locked(session, found)
        return found
    stmt = (
        sql.insert(session, Conversation)
        .values(inbox_id=inbox_id, contact_id=contact_id, last_message_at=utcnow())
        .on_conflict_do_nothing(index_elements=[Conversation.inbox_id, Conversation.contact_id])
    )
    await session.execute(stmt)
    created = (await session.execute(existing)).scalar_one()
    _note_locked(session, created)
    return created


async def lock_conversation(session: AsyncSession, conversation_id: int) -> Conversation | None:
    """The conversation, its row locked to the end of the transaction (PostgreSQL)."""
    stmt = (
        select(Conversation)
        .where(Conversation.id == conversation_id)
        .with_for_update(of=Conversation)
        .execution_options(populate_existing=True)
    )
    found = (await session.execute(stmt)).scalar_one_or_none()
    if found is not None:
        _note_locked(session, found)
    return found


def _note_locked(session: AsyncSession, conversation: Conversation) -> None:
    session.info.setdefault(_LOCKED_KEY, set()).add(conversation.id)


def _is_locked(session: AsyncSession, conversation: Conversation) -> bool:
    return conversation.id in session.info.get(_LOCKED_KEY, ())


async def record_message(
    session: AsyncSession, conversation: Conversation, message: Message
) -> Message:
    """Add `message` to `conversation` and announce it.

    The conversation row is locked first, so messages of one conversation get their ids, and
    their events, in the order they are recorded; its last message (and for inbound messages
    its last inbound message and sticky sender number) then move to this one. Emits
    `message.created` on the inbox and conversation channels and `conversation.updated` on
    the inbox channel. A duplicate `twilio_sid` raises IntegrityError from the flush.
    """
    locked = (
        conversation
        if _is_locked(session, conversation)
        else await lock_conversation(session, conversation.id)
    )
    if locked is None:
        raise LookupError(f"conversation {conversation.id} does not exist")
    message.conversation_id = locked.id
    session.add(message)
    await session.flush()
    locked.last_message_id = message.id
    locked.last_message_at = message.created_at
    if message.direction == "inbound":
        locked.last_inbound_message_id = message.id
        locked.sticky_number = message.to_number
    await session.flush()
    data = message_json(message)
    outbox.emit(session, f"inbox:{locked.inbox_id}", "message.created", data)
    outbox.emit(session, f"conversation:{locked.id}", "message.created", data)
    outbox.emit(
        session, f"inbox:{locked.inbox_id}", "conversation.updated", _summary(locked, message)
    )
    return message


def announce_status(session: AsyncSession, inbox_id: int, message: Message) -> None:
    """Emit `message.status` (the whole message) on its inbox and conversation channels."""
    data = message_json(message)
    outbox.emit(session, f"inbox:{inbox_id}", "message.status", data)
    outbox.emit(session, f"conversation:{message.conversation_id}", "message.status", data)


def _summary(conversation: Conversation, last_message: Message) -> dict[str, object]:
    """The conversation as the list shows it, minus the unread count (that is per user)."""
    data = conversation_json(conversation, last_message, 0)
    del data["unread_count"]
    return data
