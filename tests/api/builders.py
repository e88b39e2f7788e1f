"""Rows for API tests, written straight with the models (the domain services are not needed)."""

from __future__ import annotations

import functools
import itertools
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from server.passwords import hash_password
from store.models import (
    Contact,
    Conversation,
    Inbox,
    InboxMember,
    Message,
    MessagingService,
    PhoneNumber,
    User,
    utcnow,
)

PASSWORD = "correct horse battery"
_counter = itertools.count(1)


def unique() -> int:
    return next(_counter)


@functools.cache
def password_hash() -> str:
    """PASSWORD hashed once: Argon2 is slow on purpose, and tests make many users."""
    return hash_password(PASSWORD)


async def user(session: AsyncSession, role: str = "staff", email: str | None = None) -> User:
    n = unique()
    row = User(
        email=email or f"{role}{n}@example.test",
        password_hash=password_hash(),
        name=f"{role.title()} {n}",
        role=role,
    )
    session.add(row)
    await session.flush()
    return row


async def service(session: AsyncSession, purpose: str = "one_to_one") -> MessagingService:
    n = unique()
    row = MessagingService(sid=f"MG{n:032d}", name=f"Service {n}", purpose=purpose)
    session.add(row)
    await session.flush()
    return row


async def inbox(
    session: AsyncSession, name: str | None = None, members: tuple[User, ...] = ()
) -> Inbox:
    row = Inbox(name=name or f"Inbox {unique()}")
    session.add(row)
    await session.flush()
    for member in members:
        session.add(InboxMember(inbox_id=row.id, user_id=member.id))
    await session.flush()
    return row


async def number(
    session: AsyncSession, messaging_service: MessagingService, routed_to: Inbox | None
) -> PhoneNumber:
    n = unique()
    row = PhoneNumber(
        sid=f"PN{n:032d}",
        number=f"+1415555{n:04d}",
        messaging_service_id=messaging_service.id,
        inbox_id=routed_to.id if routed_to else None,
    )
    session.add(row)
    await session.flush()
    return row


async def contact(session: AsyncSession, first_name: str = "", **fields: str) -> Contact:
    n = unique()
    row = Contact(
        phone=f"+1617555{n:04d}", first_name=first_name or f"Contact{n}", fields={}, **fields
    )
    session.add(row)
    await session.flush()
    return row


async def conversation(
    session: AsyncSession, in_inbox: Inbox, with_contact: Contact, at: datetime | None = None
) -> Conversation:
    row = Conversation(
        inbox_id=in_inbox.id, contact_id=with_contact.id, last_message_at=at or utcnow()
    )
    session.add(row)
    await session.flush()
    return row


async def message(
    session: AsyncSession,
    of: Conversation,
    direction: str = "inbound",
    body: str = "hello",
    at: datetime | None = None,
) -> Message:
    """A message, keeping the conversation's last/last-inbound pointers as the domain does."""
    at = at or utcnow()
    contact_phone = (await session.get(Contact, of.contact_id)).phone  # type: ignore[union-attr]
    row = Message(
        conversation_id=of.id,
        direction=direction,
        tag="inbound" if direction == "inbound" else "quick",
        body=body,
        status="received" if direction == "inbound" else "delivered",
        from_number=contact_phone if direction == "inbound" else "+14155550000",
        to_number="+14155550000" if direction == "inbound" else contact_phone,
        created_at=at,
        updated_at=at,
    )
    session.add(row)
    await session.flush()
    of.last_message_id = row.id
    of.last_message_at = at
    if direction == "inbound":
        of.last_inbound_message_id = row.id
    await session.flush()
    return row


def minutes_ago(n: int) -> datetime:
    return utcnow() - timedelta(minutes=n)
