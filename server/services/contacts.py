"""Contacts, found or created by E.164 phone number without a lookup-then-insert race."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.phones import to_e164
from server.services import sql
from store.models import Contact, utcnow

# Built once: constructing a statement costs more than running it from the compiled cache.
# Columns, not Contact objects: a webhook's contact is loaded whole once, with its conversation.
_IDS_BY_PHONE = select(Contact.__table__.c.phone, Contact.__table__.c.id).where(
    Contact.__table__.c.phone.in_(bindparam("phones", expanding=True))
)


async def find_or_create_contact(session: AsyncSession, phone: str) -> Contact:
    """The contact with this phone (normalised to E.164), created if new.

    Raises `server.phones.InvalidPhone` for something that is not a phone number.
    """
    number = to_e164(phone)
    contact_id = (await find_or_create_contact_ids(session, [number]))[number]
    return await session.get_one(Contact, contact_id)


async def find_or_create_contact_ids(
    session: AsyncSession, numbers: Iterable[str]
) -> dict[str, int]:
    """The ids of the contacts with these E.164 numbers, by number, the new ones created.

    Two concurrent calls for the same new phone both end with the one row: the insert is an
    `ON CONFLICT DO NOTHING`, which waits for the other transaction and then finds its row.
    """
    wanted = sorted(set(numbers))
    # Most texts come from people already known: one lookup, no write.
    found = {phone: id_ for phone, id_ in await session.execute(_IDS_BY_PHONE, {"phones": wanted})}
    missing = [number for number in wanted if number not in found]
    if not missing:
        return found
    now = utcnow()
    blank = {"first_name": "", "last_name": "", "email": "", "fields": {}}
    stmt = (
        sql.insert(session, Contact)
        .values([{"phone": n, **blank, "created_at": now, "updated_at": now} for n in missing])
        .on_conflict_do_nothing(index_elements=[Contact.phone])
    )
    await session.execute(stmt)
    created = await session.execute(_IDS_BY_PHONE, {"phones": missing})
    found.update((phone, id_) for phone, id_ in created)
    return found
