"""What the pages show beyond the API's shapes: names, seen-by, who may be texted from where.

Callers have already checked that the viewer may see the conversation or contact concerned
(through `server.queries`); these functions only add detail to something visible.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.access import visible_inbox_ids
from server.serializers import iso
from store.models import (
    Conversation,
    Inbox,
    MessagingService,
    OptOut,
    PhoneNumber,
    ReadMarker,
    User,
)


def display_name(user: User) -> str:
    return user.name or user.email.split("@", 1)[0]


async def people_names(session: AsyncSession) -> dict[str, str]:
    """Team members by id (as a string, the way JSON keys come): who sent, read, types."""
    users = (await session.scalars(select(User).order_by(User.id))).all()
    return {str(user.id): display_name(user) for user in users}


async def number_services(
    session: AsyncSession, messages: Iterable[dict[str, Any]]
) -> dict[str, str]:
    """The messaging service name of each of our numbers in `messages` (for opt-out markers)."""
    numbers = {m["to"] for m in messages} | {m["from"] for m in messages}
    if not numbers:
        return {}
    stmt = (
        select(PhoneNumber.number, MessagingService.name)
        .join(MessagingService, MessagingService.id == PhoneNumber.messaging_service_id)
        .where(PhoneNumber.number.in_(numbers))
    )
    return {number: name for number, name in (await session.execute(stmt)).all()}


async def readers_of(session: AsyncSession, conversation_id: int) -> dict[str, int]:
    """How far each user has read the conversation: user id → last message id read."""
    stmt = select(ReadMarker.user_id, ReadMarker.message_id).where(
        ReadMarker.conversation_id == conversation_id
    )
    return {str(user_id): message_id for user_id, message_id in (await session.execute(stmt))}


async def _sending_number(
    session: AsyncSession, inbox_id: int, sticky: str | None
) -> PhoneNumber | None:
    """The number a quick message would go out from: sticky, else the inbox's first.

    The same rule the sending service applies; the page only uses it to say so in advance.
    """
    in_inbox = select(PhoneNumber).where(PhoneNumber.inbox_id == inbox_id)
    if sticky:
        number = await session.scalar(in_inbox.where(PhoneNumber.number == sticky))
        if number is not None:
            return number
    return await session.scalar(in_inbox.order_by(PhoneNumber.id).limit(1))


async def _sender_state(
    session: AsyncSession, inbox_id: int, sticky: str | None, phone: str
) -> dict[str, Any]:
    """From which number a text to `phone` would go, and whether the contact refused it."""
    number = await _sending_number(session, inbox_id, sticky)
    if number is None:
        return {"from": None, "service_id": None, "service": None, "opted_out": False}
    opt = await session.scalar(
        select(OptOut).where(
            OptOut.messaging_service_id == number.messaging_service_id, OptOut.phone == phone
        )
    )
    return {
        "from": number.number,
        "service_id": number.messaging_service_id,
        "service": number.messaging_service.name,
        "opted_out": bool(opt and opt.opted_out),
        "since": iso(opt.updated_at) if opt and opt.opted_out else None,
    }


async def composer_state(session: AsyncSession, conversation_id: int) -> dict[str, Any]:
    conversation = await session.get(Conversation, conversation_id)
    assert conversation is not None
    return await _sender_state(
        session, conversation.inbox_id, conversation.sticky_number, conversation.contact.phone
    )


async def _my_routed_inboxes(session: AsyncSession, user: User) -> list[Inbox]:
    visible = await visible_inbox_ids(session, user)
    stmt = select(Inbox).where(Inbox.is_unrouted.is_(False)).order_by(Inbox.name, Inbox.id)
    if visible is not None:
        stmt = stmt.where(Inbox.id.in_(visible))
    return list((await session.scalars(stmt)).all())


async def new_text_options(session: AsyncSession, user: User) -> list[dict[str, Any]]:
    """The inboxes the viewer may text a new number from, each with the number it would use."""
    options = []
    for inbox in await _my_routed_inboxes(session, user):
        number = await _sending_number(session, inbox.id, None)
        if number is not None:
            options.append({"inbox_id": inbox.id, "inbox": inbox.name, "from": number.number})
    return options


async def sending_options(
    session: AsyncSession, user: User, record: dict[str, Any]
) -> list[dict[str, Any]]:
    """The inboxes the viewer may text this contact from, each with its sender and opt-out."""
    sticky = {
        conversation_id: number
        for conversation_id, number in (
            await session.execute(
                select(Conversation.inbox_id, Conversation.sticky_number).where(
                    Conversation.contact_id == record["id"]
                )
            )
        ).all()
    }
    options = []
    for inbox in await _my_routed_inboxes(session, user):
        state = await _sender_state(session, inbox.id, sticky.get(inbox.id), record["phone"])
        if state["from"] is not None:
            options.append({"inbox_id": inbox.id, "inbox": inbox.name, **state})
    return options


async def service_states(
    session: AsyncSession, user: User, record: dict[str, Any]
) -> list[dict[str, Any]]:
    """Opt-out state per messaging service the viewer works with (every service for admins)."""
    visible = await visible_inbox_ids(session, user)
    stmt = select(MessagingService).order_by(MessagingService.name, MessagingService.id)
    if visible is not None:
        used = select(PhoneNumber.messaging_service_id).where(PhoneNumber.inbox_id.in_(visible))
        stmt = stmt.where(MessagingService.id.in_(used))
    known = {row["messaging_service_id"]: row for row in record.get("opt_outs", [])}
    states = []
    for service in (await session.scalars(stmt)).all():
        row = known.get(service.id)
        states.append(
            {
                "id": service.id,
                "name": service.name,
                "purpose": service.purpose,
                "opted_out": bool(row and row["opted_out"]),
                "source": row["source"] if row else None,
                "updated_at": row["updated_at"] if row else None,
            }
        )
    return states
