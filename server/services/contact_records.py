"""Contacts added or edited by hand (API or pages): one per E.164 phone, with name, email and
free fields."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.access import visible_inbox_ids
from server.errors import ApiError, invalid
from server.serializers import contact_json
from server.services.routing import is_our_number
from store import outbox
from store.models import Contact, Conversation, User


async def create_contact(
    session: AsyncSession,
    user: User,
    *,
    phone: str,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
    fields: dict[str, Any] | None = None,
) -> Contact:
    """A new contact; a taken phone is a 409, naming the existing contact's id only when `user`
    may know it (see `may_text`)."""
    if await is_our_number(session, phone):
        raise invalid(f"{phone} is one of our own numbers", field="phone")
    existing = await session.scalar(select(Contact.id).where(Contact.phone == phone))
    if existing is not None:
        known = await may_text(session, user, existing)
        raise _taken(phone, existing if known else None)
    contact = Contact(
        phone=phone, first_name=first_name, last_name=last_name, email=email, fields=fields or {}
    )
    session.add(contact)
    try:
        await session.flush()
    except IntegrityError:
        raise _taken(phone, None) from None
    return contact


async def update_contact(session: AsyncSession, contact: Contact, changes: dict[str, Any]) -> None:
    """Apply `changes` (first_name, last_name, email, fields) and announce the contact as it now
    is, `contact.updated`, on every inbox that has a conversation with it, so that lists and
    threads show the new name live."""
    for name, value in changes.items():
        setattr(contact, name, value)
    await session.flush()
    stmt = (
        select(Conversation.inbox_id)
        .where(Conversation.contact_id == contact.id)
        .distinct()
        .order_by(Conversation.inbox_id)
    )
    data = contact_json(contact)
    for inbox_id in (await session.scalars(stmt)).all():
        outbox.emit(session, f"inbox:{inbox_id}", "contact.updated", data)


async def may_text(session: AsyncSession, user: User, contact_id: int) -> bool:
    """Whether `user` may know of and text this contact without learning anything hidden from
    them: admins any; staff one with a conversation in their inboxes, or one that nobody has a
    conversation with yet (so that they can text a contact someone just added)."""
    visible = await visible_inbox_ids(session, user)
    if visible is None:
        return True
    stmt = select(Conversation.inbox_id).where(Conversation.contact_id == contact_id)
    inboxes = set((await session.scalars(stmt)).all())
    return not inboxes or bool(inboxes & visible)


def _taken(phone: str, contact_id: int | None) -> ApiError:
    extra: dict[str, Any] = {"field": "phone"}
    if contact_id is not None:
        extra["id"] = contact_id
    return ApiError(409, "conflict", f"a contact with phone {phone} exists already", **extra)
