"""Which inbox a number feeds: its routed inbox, else the built-in admins-only "Unrouted" one."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.access import ACTIVE_ADMIN_IDS
from server.services import sql
from store import outbox
from store.models import Inbox, MessagingService, PhoneNumber

UNROUTED_NAME = "Unrouted"
# Arbitrary, fixed: the advisory lock key that serialises creating the Unrouted inbox.
_UNROUTED_LOCK_KEY = 0x5B_0001

# Built once: constructing a statement costs more than running it from the compiled cache.
_numbers = PhoneNumber.__table__
_ROUTE_OF_NUMBER = select(_numbers.c.inbox_id, _numbers.c.messaging_service_id).where(
    _numbers.c.number == bindparam("number")
)
_services = MessagingService.__table__
_SERVICE_ID = select(_services.c.id).where(_services.c.sid == bindparam("sid"))


@dataclass(frozen=True, slots=True)
class Route:
    inbox_id: int
    messaging_service_id: int | None


async def unrouted_inbox(session: AsyncSession) -> Inbox:
    """The Unrouted inbox, created on first need; concurrent first needs create it once."""
    inbox = await _find_unrouted(session)
    if inbox is not None:
        return inbox
    await sql.serialize(session, _UNROUTED_LOCK_KEY)
    inbox = await _find_unrouted(session)
    if inbox is None:
        inbox = Inbox(name=UNROUTED_NAME, is_unrouted=True)
        session.add(inbox)
        await session.flush()
        # Admins see every inbox: their open pages add this one and follow it, so the text
        # that made it shows without a reload.
        added = {"id": inbox.id, "name": inbox.name, "is_unrouted": True, "unread_count": 0}
        for admin_id in await session.scalars(ACTIVE_ADMIN_IDS):
            outbox.emit(session, f"user:{admin_id}", "inbox.added", added)
    return inbox


async def _find_unrouted(session: AsyncSession) -> Inbox | None:
    stmt = select(Inbox).where(Inbox.is_unrouted.is_(True)).order_by(Inbox.id).limit(1)
    return await session.scalar(stmt)


async def is_our_number(session: AsyncSession, phone: str) -> bool:
    """Whether `phone` is one of our own numbers: nobody to text, a text to it comes back."""
    return (await session.execute(_ROUTE_OF_NUMBER, {"number": phone})).first() is not None


async def route_inbound(
    session: AsyncSession, to_number: str, messaging_service_sid: str | None = None
) -> Route:
    """Where a message to our number `to_number` goes, and which messaging service it is in.

    A number we do not know can still name its service through the webhook's
    MessagingServiceSid, which is what opt-out keywords then apply to.
    """
    found = (await session.execute(_ROUTE_OF_NUMBER, {"number": to_number})).first()
    inbox_id, service_id = found if found is not None else (None, None)
    if service_id is None and messaging_service_sid:
        service_id = await session.scalar(_SERVICE_ID, {"sid": messaging_service_sid})
    return Route(inbox_id or (await unrouted_inbox(session)).id, service_id)
