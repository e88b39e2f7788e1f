"""Contacts added by hand (API or pages): one per E.164 phone, with name, email and free fields."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import ApiError
from store.models import Contact


async def create_contact(
    session: AsyncSession,
    *,
    phone: str,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
    fields: dict[str, Any] | None = None,
    show_existing: bool = False,
) -> Contact:
    """A new contact; a taken phone is a 409 that names the existing contact's id only when
    `show_existing` (the caller may see that contact)."""
    existing = await session.scalar(select(Contact.id).where(Contact.phone == phone))
    if existing is not None:
        raise _taken(phone, existing if show_existing else None)
    contact = Contact(
        phone=phone, first_name=first_name, last_name=last_name, email=email, fields=fields or {}
    )
    session.add(contact)
    try:
        await session.flush()
    except IntegrityError:
        raise _taken(phone, None) from None
    return contact


def _taken(phone: str, contact_id: int | None) -> ApiError:
    extra: dict[str, Any] = {"field": "phone"}
    if contact_id is not None:
        extra["id"] = contact_id
    return ApiError(409, "conflict", f"a contact with phone {phone} exists already", **extra)
