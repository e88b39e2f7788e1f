"""Contacts, found or created by E.164 phone number without a lookup-then-insert race."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.phones import to_e164
from server.services import sql
from store.models import Contact, utcnow


async def find_or_create_contact(session: AsyncSession, phone: str) -> Contact:
    """The contact with this phone (normalised to E.164), created if new.

    Raises `server.phones.InvalidPhone` for something that is not a phone number. Two
    concurrent calls for the same new phone both end with the one row: the insert is an
    `ON CONFLICT DO NOTHING`, which waits for the other transaction and then finds its row.
    """
    number = to_e164(phone)
    existing = select(Contact).where(Contact.phone == number)
    # Most texts come from people already known: one lookup, no write.
    found = await session.scalar(existing)
    if found is not None:
        return found
    now = utcnow()
    stmt = (
        sql.insert(session, Contact)
        .values(
            phone=number,
            first_name="",
            last_name="",
            email="",
            fields={},
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[Contact.phone])
    )
    await session.execute(stmt)
    return (await session.execute(existing)).scalar_one()
