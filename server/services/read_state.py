"""Read markers: how far each user has read each conversation.

A marker only moves forward, even when two tabs race (the upsert itself compares). A move is
announced as `conversation.read` on the inbox channel (other members' unread views) and on the
user's own channel (all their tabs), committed with the marker in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.access import conversation_for
from server.errors import invalid
from server.queries import conversation_unread_counts, read_marker
from server.services import sql
from store import outbox
from store.models import Message, ReadMarker, User, utcnow


@dataclass(frozen=True, slots=True)
class ReadState:
    conversation_id: int
    user_id: int
    message_id: int | None
    unread_count: int
    moved: bool

    def json(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "user_id": self.user_id,
            "message_id": self.message_id,
            "unread_count": self.unread_count,
            "moved": self.moved,
        }


async def mark_read(
    session: AsyncSession, user: User, conversation_id: int, message_id: int | None = None
) -> ReadState:
    """Move my marker of a conversation to `message_id` (default: its newest message).

    A message of another conversation is a 422; an older message than my marker changes nothing.
    """
    conversation = await conversation_for(session, user, conversation_id)
    if message_id is None:
        message_id = conversation.last_message_id or await session.scalar(
            select(Message.id)
            .where(Message.conversation_id == conversation.id)
            .order_by(Message.id.desc())
            .limit(1)
        )
    elif (
        await session.scalar(select(Message.conversation_id).where(Message.id == message_id))
        != conversation.id
    ):
        raise invalid("message_id is not a message of this conversation", field="message_id")
    moved = False
    if message_id is not None:
        insert = sql.insert(session, ReadMarker)
        stmt = (
            insert.values(
                user_id=user.id,
                conversation_id=conversation.id,
                message_id=message_id,
                updated_at=utcnow(),
            )
            .on_conflict_do_update(
                index_elements=[ReadMarker.user_id, ReadMarker.conversation_id],
                set_={"message_id": insert.excluded.message_id, "updated_at": utcnow()},
                where=ReadMarker.message_id < insert.excluded.message_id,
            )
            .returning(ReadMarker.message_id)
        )
        moved = (await session.execute(stmt)).first() is not None
    current = await read_marker(session, user, conversation.id)
    if moved:
        data = {"conversation_id": conversation.id, "user_id": user.id, "message_id": current}
        outbox.emit(session, f"inbox:{conversation.inbox_id}", "conversation.read", data)
        outbox.emit(session, f"user:{user.id}", "conversation.read", data)
    unread = (await conversation_unread_counts(session, user, [conversation.id]))[conversation.id]
    return ReadState(conversation.id, user.id, current, unread, moved)
