"""Read-side queries shared by the HTTP API and the pages, with access rules built in.

Every function takes the calling user and answers only what that user may see: an inbox,
conversation or contact outside their inboxes raises a 404 ApiError that says nothing of it.
Lists come back as a `Page` (newest first) whose `next_cursor` is an opaque string to pass
back as `cursor` (or `before` for messages) to get the next, older page.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from server.access import conversation_for, inbox_for, visible_inbox_ids
from server.errors import forbidden, invalid, not_found
from server.phones import try_e164
from server.serializers import (
    contact_json,
    conversation_json,
    inbox_json,
    iso,
    message_json,
    messaging_service_json,
    phone_number_json,
    user_json,
)
from store.ids import is_id, parse_id
from store.models import (
    Campaign,
    Contact,
    Conversation,
    Inbox,
    InboxMember,
    Message,
    MessagingService,
    OptOut,
    PhoneNumber,
    ReadMarker,
    User,
)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
FILTERS = ("all", "unread")


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None

    def json(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


# --- cursors ---------------------------------------------------------------------------------


def encode_cursor(*values: Any) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *kinds: type) -> list[Any]:
    """The values inside a cursor made by `encode_cursor`, checked against `kinds`; 422 if not."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise invalid("cursor is not valid", field="cursor") from None
    if not isinstance(values, list) or len(values) != len(kinds):
        raise invalid("cursor is not valid", field="cursor")
    decoded: list[Any] = []
    for value, kind in zip(values, kinds, strict=True):
        if kind is datetime:
            try:
                value = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                raise invalid("cursor is not valid", field="cursor") from None
            if value.tzinfo is None:
                raise invalid("cursor is not valid", field="cursor")
        elif kind is int and not is_id(value):
            raise invalid("cursor is not valid", field="cursor")
        decoded.append(value)
    return decoded


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    return max(1, min(MAX_LIMIT, limit))


async def _page_by_id(
    session: AsyncSession, stmt: Any, id_column: Any, cursor: str | None, limit: int | None
) -> tuple[list[Any], str | None]:
    """Rows of `stmt`, newest (highest id) first, one keyset page at a time."""
    size = clamp_limit(limit)
    if cursor:
        (before_id,) = decode_cursor(cursor, int)
        stmt = stmt.where(id_column < before_id)
    rows = list((await session.scalars(stmt.order_by(id_column.desc()).limit(size + 1))).all())
    more = len(rows) > size
    rows = rows[:size]
    return rows, encode_cursor(rows[-1].id) if more else None


# --- read state --------------------------------------------------------------------------------


def _my_marker(user: User) -> ColumnElement[int]:
    """My read marker of the conversation in the enclosing query (0 when I never read it)."""
    marker = (
        select(ReadMarker.message_id)
        .where(ReadMarker.user_id == user.id, ReadMarker.conversation_id == Conversation.id)
        .correlate(Conversation)
        .scalar_subquery()
    )
    return func.coalesce(marker, 0)


def _is_unread(user: User) -> ColumnElement[bool]:
    """The conversation has inbound messages after my read marker."""
    return and_(
        Conversation.last_inbound_message_id.is_not(None),
        Conversation.last_inbound_message_id > _my_marker(user),
    )


async def conversation_unread_counts(
    session: AsyncSession, user: User, conversation_ids: Sequence[int]
) -> dict[int, int]:
    """For each conversation: how many inbound messages came after my read marker."""
    if not conversation_ids:
        return {}
    stmt = (
        select(Message.conversation_id, func.count(Message.id))
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Message.conversation_id.in_(conversation_ids),
            Message.direction == "inbound",
            Message.id > _my_marker(user),
        )
        .group_by(Message.conversation_id)
    )
    counts = {cid: int(n) for cid, n in (await session.execute(stmt)).all()}
    return {cid: counts.get(cid, 0) for cid in conversation_ids}


async def inbox_unread_counts(
    session: AsyncSession, user: User, inbox_ids: Sequence[int]
) -> dict[int, int]:
    """For each inbox: how many of its conversations have inbound messages after my marker."""
    if not inbox_ids:
        return {}
    stmt = (
        select(Conversation.inbox_id, func.count(Conversation.id))
        .where(Conversation.inbox_id.in_(inbox_ids), _is_unread(user))
        .group_by(Conversation.inbox_id)
    )
    counts = {iid: int(n) for iid, n in (await session.execute(stmt)).all()}
    return {iid: counts.get(iid, 0) for iid in inbox_ids}


async def read_marker(session: AsyncSession, user: User, conversation_id: int) -> int | None:
    """The id of the last message I have read in a conversation (None: never opened)."""
    return await session.scalar(
        select(ReadMarker.message_id).where(
            ReadMarker.user_id == user.id, ReadMarker.conversation_id == conversation_id
        )
    )


# --- inboxes -----------------------------------------------------------------------------------


async def _inboxes_json(
    session: AsyncSession, user: User, inboxes: Sequence[Inbox]
) -> list[dict[str, Any]]:
    """Inboxes with my unread counts; for an admin also the routing warnings of each."""
    ids = [inbox.id for inbox in inboxes]
    counts = await inbox_unread_counts(session, user, ids)
    items = [inbox_json(inbox, counts[inbox.id]) for inbox in inboxes]
    if user.is_admin:
        warnings = await routing_warnings(session, ids)
        for item in items:
            item["warnings"] = warnings[item["id"]]
    return items


async def visible_inboxes(session: AsyncSession, user: User) -> list[dict[str, Any]]:
    """The inboxes I may see (all of them, Unrouted included, for an admin), with unread counts."""
    visible = await visible_inbox_ids(session, user)
    stmt = select(Inbox).order_by(Inbox.is_unrouted, Inbox.name, Inbox.id)
    if visible is not None:
        stmt = stmt.where(Inbox.id.in_(visible))
    return await _inboxes_json(session, user, (await session.scalars(stmt)).all())


async def conversation_count(session: AsyncSession, inbox_id: int) -> int:
    stmt = select(func.count(Conversation.id)).where(Conversation.inbox_id == inbox_id)
    return int(await session.scalar(stmt) or 0)


async def get_inbox(session: AsyncSession, user: User, inbox_id: int) -> dict[str, Any]:
    inbox = await inbox_for(session, user, inbox_id)
    return (await _inboxes_json(session, user, [inbox]))[0]


async def routing_warnings(
    session: AsyncSession, inbox_ids: Sequence[int]
) -> dict[int, list[dict[str, Any]]]:
    """Per inbox that also has 1:1 numbers: a `mixed_purpose` warning for each messaging
    service of its numbers that is meant for blasts or used by campaigns (1:1 and blast numbers
    belong in separate services). An inbox of blast numbers alone, where campaign replies are
    meant to land, is not warned about."""
    found: dict[int, list[dict[str, Any]]] = {iid: [] for iid in inbox_ids}
    if not inbox_ids:
        return found
    with_one_to_one = set(
        (
            await session.scalars(
                select(PhoneNumber.inbox_id)
                .join(MessagingService, MessagingService.id == PhoneNumber.messaging_service_id)
                .where(PhoneNumber.inbox_id.in_(inbox_ids), MessagingService.purpose != "blast")
            )
        ).all()
    )
    campaigns = exists().where(Campaign.messaging_service_id == MessagingService.id)
    stmt = (
        select(PhoneNumber.inbox_id, MessagingService, campaigns)
        .join(MessagingService, MessagingService.id == PhoneNumber.messaging_service_id)
        .where(
            PhoneNumber.inbox_id.in_(inbox_ids),
            or_(MessagingService.purpose == "blast", campaigns),
        )
        .distinct()
        .order_by(PhoneNumber.inbox_id, MessagingService.id)
    )
    for inbox_id, service, used_by_campaigns in (await session.execute(stmt)).all():
        if inbox_id not in with_one_to_one:
            continue
        why = "is used by campaigns" if used_by_campaigns else "is meant for blasts"
        found[inbox_id].append(
            {
                "code": "mixed_purpose",
                "messaging_service_id": service.id,
                "detail": (
                    f"messaging service {service.name!r} {why}; keep 1:1 inbox numbers and "
                    "blast numbers in separate messaging services (opt-outs apply per service)"
                ),
            }
        )
    return found


# --- conversations -----------------------------------------------------------------------------


async def _conversations_json(
    session: AsyncSession, user: User, conversations: Sequence[Conversation]
) -> list[dict[str, Any]]:
    last_ids = [c.last_message_id for c in conversations if c.last_message_id is not None]
    last_messages: dict[int, Message] = {}
    if last_ids:
        rows = await session.scalars(select(Message).where(Message.id.in_(last_ids)))
        last_messages = {message.id: message for message in rows}
    counts = await conversation_unread_counts(session, user, [c.id for c in conversations])
    return [
        conversation_json(
            c,
            last_messages.get(c.last_message_id) if c.last_message_id else None,
            counts[c.id],
        )
        for c in conversations
    ]


async def list_conversations(
    session: AsyncSession,
    user: User,
    inbox_id: int,
    *,
    filter: str = "all",
    cursor: str | None = None,
    limit: int | None = None,
) -> Page:
    """An inbox's conversations, most recent message first, each with contact, last message and
    my unread count; `filter="unread"` keeps those with inbound messages after my marker."""
    if filter not in FILTERS:
        raise invalid(f"filter must be one of {', '.join(FILTERS)}", field="filter")
    await inbox_for(session, user, inbox_id)
    size = clamp_limit(limit)
    stmt = select(Conversation).where(Conversation.inbox_id == inbox_id)
    if filter == "unread":
        stmt = stmt.where(_is_unread(user))
    if cursor:
        at, cid = decode_cursor(cursor, datetime, int)
        stmt = stmt.where(
            or_(
                Conversation.last_message_at < at,
                and_(Conversation.last_message_at == at, Conversation.id < cid),
            )
        )
    stmt = stmt.order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
    rows = list((await session.scalars(stmt.limit(size + 1))).unique().all())
    more = len(rows) > size
    rows = rows[:size]
    next_cursor = encode_cursor(iso(rows[-1].last_message_at), rows[-1].id) if more else None
    return Page(await _conversations_json(session, user, rows), next_cursor)


async def get_conversation(
    session: AsyncSession, user: User, conversation_id: int
) -> dict[str, Any]:
    """One conversation as the lists show it (contact, last message, my unread count)."""
    conversation = await conversation_for(session, user, conversation_id)
    return (await _conversations_json(session, user, [conversation]))[0]


# --- messages ----------------------------------------------------------------------------------


def parse_before(before: str | None) -> int | None:
    """The `before` parameter of a message list: a message id (as `next_cursor` gives it)."""
    if before is None or before == "":
        return None
    number = parse_id(before)
    if number is None:
        raise invalid("before must be a message id", field="before")
    return number


async def list_messages(
    session: AsyncSession,
    user: User,
    conversation_id: int,
    *,
    before: int | None = None,
    limit: int | None = None,
) -> Page:
    """A thread's messages, newest first; `before` (a message id) pages back through older ones.
    `next_cursor` is the id to pass as the next `before`."""
    await conversation_for(session, user, conversation_id)
    size = clamp_limit(limit)
    stmt = select(Message).where(Message.conversation_id == conversation_id)
    if before is not None:
        stmt = stmt.where(Message.id < before)
    stmt = stmt.order_by(Message.id.desc()).limit(size + 1)
    rows = list((await session.scalars(stmt)).all())
    more = len(rows) > size
    rows = rows[:size]
    next_cursor = str(rows[-1].id) if more else None
    return Page([message_json(m) for m in rows], next_cursor)


# --- contacts ----------------------------------------------------------------------------------


def _contact_visible(visible: set[int] | None) -> ColumnElement[bool] | None:
    """Staff see a contact only through a conversation in one of their inboxes."""
    if visible is None:
        return None
    return exists().where(Conversation.contact_id == Contact.id, Conversation.inbox_id.in_(visible))


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _matches(q: str) -> ColumnElement[bool]:
    """`q` as typed, or each of its words somewhere: "Lopez Maya" finds Maya Lopez."""
    words = q.split()
    whole = _matches_text(q)
    if len(words) < 2:
        return whole
    return or_(whole, and_(*(_matches_text(word) for word in words)))


def _matches_text(q: str) -> ColumnElement[bool]:
    pattern = f"%{_like_escape(q.lower())}%"
    full_name = func.lower(Contact.first_name + " " + Contact.last_name)
    terms: list[ColumnElement[bool]] = [
        full_name.like(pattern, escape="\\"),
        func.lower(Contact.email).like(pattern, escape="\\"),
        Contact.phone.like(pattern, escape="\\"),
    ]
    digits = "".join(ch for ch in q if ch.isdigit())
    if len(digits) >= 3:
        terms.append(Contact.phone.like(f"%{digits}%"))
    phone = try_e164(q)
    if phone:
        terms.append(Contact.phone == phone)
    return or_(*terms)


async def search_contacts(
    session: AsyncSession,
    user: User,
    q: str | None = None,
    *,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page:
    """Contacts I may see, newest first; `q` matches name, email or phone (any part of it)."""
    visible = await visible_inbox_ids(session, user)
    stmt = select(Contact)
    condition = _contact_visible(visible)
    if condition is not None:
        stmt = stmt.where(condition)
    if q and q.strip():
        stmt = stmt.where(_matches(q.strip()))
    rows, next_cursor = await _page_by_id(session, stmt, Contact.id, cursor, limit)
    return Page([contact_json(c) for c in rows], next_cursor)


async def contact_for(session: AsyncSession, user: User, contact_id: int) -> Contact:
    """The contact if I may see it (admins: any; staff: through a visible conversation)."""
    visible = await visible_inbox_ids(session, user)
    stmt = select(Contact).where(Contact.id == contact_id)
    condition = _contact_visible(visible)
    if condition is not None:
        stmt = stmt.where(condition)
    contact = await session.scalar(stmt)
    if contact is None or not user.active:
        raise not_found("contact")
    return contact


async def get_contact(session: AsyncSession, user: User, contact_id: int) -> dict[str, Any]:
    """A contact record: the contact, the conversations with it I may see (newest first), and
    its opt-out state per messaging service of those inboxes (all services for an admin)."""
    contact = await contact_for(session, user, contact_id)
    visible = await visible_inbox_ids(session, user)
    stmt = select(Conversation).where(Conversation.contact_id == contact.id)
    if visible is not None:
        stmt = stmt.where(Conversation.inbox_id.in_(visible))
    stmt = stmt.order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
    conversations = list((await session.scalars(stmt)).unique().all())
    opt_stmt = (
        select(OptOut, MessagingService.name)
        .join(MessagingService, MessagingService.id == OptOut.messaging_service_id)
        .where(OptOut.phone == contact.phone)
        .order_by(OptOut.messaging_service_id)
    )
    if visible is not None:
        services = select(PhoneNumber.messaging_service_id).where(PhoneNumber.inbox_id.in_(visible))
        opt_stmt = opt_stmt.where(OptOut.messaging_service_id.in_(services))
    opt_outs = [
        {
            "messaging_service_id": row.messaging_service_id,
            "messaging_service_name": name,
            "opted_out": row.opted_out,
            "source": row.source,
            "updated_at": iso(row.updated_at),
        }
        for row, name in (await session.execute(opt_stmt)).all()
    ]
    return {
        **contact_json(contact),
        "conversations": await _conversations_json(session, user, conversations),
        "opt_outs": opt_outs,
    }


# --- admin lists -------------------------------------------------------------------------------


def _admin_only(user: User) -> None:
    if not (user.active and user.is_admin):
        raise forbidden("admins only")


async def list_messaging_services(
    session: AsyncSession, user: User, *, cursor: str | None = None, limit: int | None = None
) -> Page:
    _admin_only(user)
    rows, next_cursor = await _page_by_id(
        session, select(MessagingService), MessagingService.id, cursor, limit
    )
    return Page([messaging_service_json(row) for row in rows], next_cursor)


async def list_phone_numbers(
    session: AsyncSession,
    user: User,
    *,
    inbox_id: int | None = None,
    messaging_service_id: int | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page:
    _admin_only(user)
    stmt = select(PhoneNumber)
    if inbox_id is not None:
        stmt = stmt.where(PhoneNumber.inbox_id == inbox_id)
    if messaging_service_id is not None:
        stmt = stmt.where(PhoneNumber.messaging_service_id == messaging_service_id)
    rows, next_cursor = await _page_by_id(session, stmt, PhoneNumber.id, cursor, limit)
    return Page([phone_number_json(row) for row in rows], next_cursor)


async def list_users(
    session: AsyncSession, user: User, *, cursor: str | None = None, limit: int | None = None
) -> Page:
    _admin_only(user)
    rows, next_cursor = await _page_by_id(session, select(User), User.id, cursor, limit)
    return Page([user_json(row) for row in rows], next_cursor)


async def inbox_members(session: AsyncSession, user: User, inbox_id: int) -> list[dict[str, Any]]:
    """The users who are members of an inbox (admins only), by name."""
    _admin_only(user)
    if await session.get(Inbox, inbox_id) is None:
        raise not_found("inbox")
    stmt = (
        select(User)
        .join(InboxMember, InboxMember.user_id == User.id)
        .where(InboxMember.inbox_id == inbox_id)
        .order_by(User.name, User.id)
    )
    return [user_json(row) for row in (await session.scalars(stmt)).all()]
