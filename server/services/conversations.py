"""Conversations: one per (inbox, contact), and the messages recorded into them with events."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, bindparam, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from server.serializers import conversation_json, message_json
from server.services import sql
from store import outbox
from store.models import Conversation, Message, utcnow

# Conversations whose row this transaction has locked (and read fresh).
_LOCKED_KEY = "conversations.locked"


def _locking(where: ColumnElement[bool]) -> Select[tuple[Conversation]]:
    return (
        select(Conversation)
        .where(where)
        .order_by(Conversation.id)
        .with_for_update(of=Conversation)
        .execution_options(populate_existing=True)
    )


# Built once: constructing a statement costs more than running it from the compiled cache.
_LOCK_BY_PAIRS = _locking(
    tuple_(Conversation.inbox_id, Conversation.contact_id).in_(bindparam("pairs", expanding=True))
)
_LOCK_BY_IDS = _locking(Conversation.id.in_(bindparam("ids", expanding=True)))
_messages = Message.__table__
_INSERT_RETURNING_MESSAGES = insert(_messages).returning(*_messages.c)
_conversations = Conversation.__table__
_NEWEST_COLUMNS = ("last_message_id", "last_message_at")
_NEWEST_INBOUND_COLUMNS = (*_NEWEST_COLUMNS, "last_inbound_message_id", "sticky_number")
# By direction of the newest message (see `_newest`).
_SET_NEWEST = {
    direction: update(_conversations)
    .where(_conversations.c.id == bindparam("conversation_id"))
    .values({column: bindparam(f"new_{column}") for column in columns})
    for direction, columns in (
        ("inbound", _NEWEST_INBOUND_COLUMNS),
        ("outbound", _NEWEST_COLUMNS),
    )
}


async def get_or_create_conversation(
    session: AsyncSession, inbox_id: int, contact_id: int
) -> Conversation:
    """The conversation of `contact_id` in `inbox_id`, created if new, its row locked."""
    key = (inbox_id, contact_id)
    return (await get_or_create_conversations(session, [key]))[key]


async def get_or_create_conversations(
    session: AsyncSession, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], Conversation]:
    """The conversations of these (inbox id, contact id) pairs, by pair, the new ones created
    (race-safe upsert); their rows are locked like `lock_conversations` (messages are
    recorded into them next)."""
    wanted = sorted(set(keys))
    existing = await _locked(session, _LOCK_BY_PAIRS, {"pairs": wanted})
    found = {(c.inbox_id, c.contact_id): c for c in existing}
    missing = [key for key in wanted if key not in found]
    if missing:
        now = utcnow()
        stmt = (
            sql.insert(session, Conversation)
            .values([{"inbox_id": i, "contact_id": c, "last_message_at": now} for i, c in missing])
            .on_conflict_do_nothing(index_elements=[Conversation.inbox_id, Conversation.contact_id])
        )
        await session.execute(stmt)
        created = await _locked(session, _LOCK_BY_PAIRS, {"pairs": missing})
        found.update({(c.inbox_id, c.contact_id): c for c in created})
    return found


async def lock_conversations(
    session: AsyncSession, conversation_ids: Iterable[int]
) -> dict[int, Conversation]:
    """The conversations that exist of these, by id, their rows locked to the end of the
    transaction (PostgreSQL) in id order, so that two transactions never deadlock on them."""
    wanted = sorted(set(conversation_ids))
    return {c.id: c for c in await _locked(session, _LOCK_BY_IDS, {"ids": wanted})}


async def _locked(
    session: AsyncSession, stmt: Select[tuple[Conversation]], params: dict[str, Any]
) -> Sequence[Conversation]:
    conversations = (await session.scalars(stmt, params)).all()
    session.info.setdefault(_LOCKED_KEY, set()).update(c.id for c in conversations)
    return conversations


def _is_locked(session: AsyncSession, conversation: Conversation) -> bool:
    return conversation.id in session.info.get(_LOCKED_KEY, ())


async def record_message(
    session: AsyncSession, conversation: Conversation, message: Message
) -> Message:
    """Add `message` to `conversation` (its row locked first, so the conversation's messages
    get their ids, and their events, in the order they are recorded), make it the
    conversation's newest and announce it."""
    [locked] = await _lock_all(session, [conversation])
    message.conversation_id = locked.id
    session.add(message)
    await session.flush()
    for key, value in _newest(message).items():
        setattr(locked, key, value)
    announce_message(session, locked, message)
    return message


async def add_messages(
    session: AsyncSession,
    items: Sequence[tuple[Conversation, dict[str, Any]]],
    key: tuple[str, ...],
) -> list[tuple[Conversation, Row[Any]]]:
    """Insert messages (column values) into their conversations in one statement, in the
    order given, and make the last of each conversation its newest; the caller announces
    each message next. `key` names the columns (with `conversation_id`) whose values tell the
    messages apart: inbound ones by `twilio_sid`, a campaign's by `campaign_id`, since each
    conversation gets one message of a campaign.

    Returns the pairs with each conversation as locked and each message as its row. A
    `twilio_sid` already stored raises IntegrityError.

    Core statements, not the ORM: for a group of webhooks or sends its unit of work (the
    messages' objects, the conversations' flush) cost more than the SQL it ran.
    """
    conversations = await _lock_all(session, [c for c, _ in items])
    rows = [
        {**values, "conversation_id": conversation.id}
        for conversation, (_, values) in zip(conversations, items, strict=True)
    ]
    # SQLite cannot say which RETURNING row came from which VALUES row: asked to keep their
    # order, SQLAlchemy would insert the rows one by one. They are matched up by key instead.
    columns = ("conversation_id", *key)
    keys = [tuple(row[c] for c in columns) for row in rows]
    if len(set(keys)) != len(keys):
        raise ValueError(f"messages added together must differ in {columns}")
    inserted = await session.execute(_INSERT_RETURNING_MESSAGES, rows)
    by_key = {tuple(getattr(message, c) for c in columns): message for message in inserted}
    added = [
        (conversation, by_key[row_key])
        for conversation, row_key in zip(conversations, keys, strict=True)
    ]
    # The last message of each conversation in the group is its newest.
    heads = {conversation.id: (conversation, message) for conversation, message in added}
    by_direction: dict[str, list[dict[str, Any]]] = {}
    for conversation, message in heads.values():
        head = _newest(message)
        by_direction.setdefault(message.direction, []).append(
            {"conversation_id": conversation.id, **{f"new_{k}": v for k, v in head.items()}}
        )
        for key, value in head.items():
            set_committed_value(conversation, key, value)  # as stored, nothing left to flush
    for direction, params in by_direction.items():
        await session.execute(_SET_NEWEST[direction], params)
    return added


def _newest(message: Message | Row[Any]) -> dict[str, Any]:
    """A conversation's columns once `message` is its newest."""
    newest = {"last_message_id": message.id, "last_message_at": message.created_at}
    if message.direction == "inbound":
        newest |= {"last_inbound_message_id": message.id, "sticky_number": message.to_number}
    return newest


async def _lock_all(
    session: AsyncSession, conversations: Sequence[Conversation]
) -> list[Conversation]:
    """These conversations as locked by this transaction (locking those not yet locked)."""
    unlocked = [c.id for c in conversations if not _is_locked(session, c)]
    locked = await lock_conversations(session, unlocked) if unlocked else {}
    current = [locked.get(c.id, c) for c in conversations]
    for conversation in current:
        if not _is_locked(session, conversation):
            raise LookupError(f"conversation {conversation.id} does not exist")
    return current


def announce_message(
    session: AsyncSession, conversation: Conversation, message: Message | Row[Any]
) -> None:
    """Emit `message.created` on the inbox and conversation channels and
    `conversation.updated` (with `message` as its newest) on the inbox channel."""
    data = message_json(message)
    outbox.emit(session, f"inbox:{conversation.inbox_id}", "message.created", data)
    outbox.emit(session, f"conversation:{conversation.id}", "message.created", data)
    outbox.emit(
        session,
        f"inbox:{conversation.inbox_id}",
        "conversation.updated",
        _summary(conversation, message),
    )


def announce_status(session: AsyncSession, inbox_id: int, message: Message) -> None:
    """Emit `message.status` (the whole message) on its inbox and conversation channels."""
    data = message_json(message)
    outbox.emit(session, f"inbox:{inbox_id}", "message.status", data)
    outbox.emit(session, f"conversation:{message.conversation_id}", "message.status", data)


def _summary(conversation: Conversation, last_message: Message | Row[Any]) -> dict[str, object]:
    """The conversation as the list shows it right after `last_message`, minus the unread
    count (that is per user)."""
    data = conversation_json(conversation, last_message, 0)
    data["last_message_at"] = data["last_message"]["created_at"]
    del data["unread_count"]
    return data
