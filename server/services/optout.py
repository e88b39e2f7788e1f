"""Opt-out, per messaging service: STOP to one number stops every number of its service.

`OptOut` holds the current state of a (service, phone) pair; `OptOutEvent` keeps each change
with its cause (`keyword`, `opt_out_type`, `error_21610`, `staff`). Changes are race-safe: the
row is upserted and flipped with a conditional UPDATE, so of two concurrent STOPs exactly one
is the change (and records history and emits the event).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.services import sql
from store import outbox
from store.models import Contact, Conversation, OptOut, OptOutEvent, PhoneNumber, utcnow

OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
SOURCES = ("keyword", "opt_out_type", "error_21610", "staff")

Action = Literal["opt_out", "opt_in"]


def requested_action(body: str, opt_out_type: str | None = None) -> Action | None:
    """What an inbound message asks for. Twilio's OptOutType, when present, wins over the body."""
    if opt_out_type:
        kind = opt_out_type.strip().upper()
        return {"STOP": "opt_out", "START": "opt_in"}.get(kind)  # type: ignore[return-value]
    word = (body or "").strip().upper()
    if word in OPT_OUT_KEYWORDS:
        return "opt_out"
    if word in OPT_IN_KEYWORDS:
        return "opt_in"
    return None


async def is_opted_out(session: AsyncSession, messaging_service_id: int, phone: str) -> bool:
    stmt = select(OptOut.opted_out).where(
        OptOut.messaging_service_id == messaging_service_id, OptOut.phone == phone
    )
    return bool(await session.scalar(stmt))


async def opt_outs_of(session: AsyncSession, phone: str) -> list[OptOut]:
    """Every messaging service this phone has an opt-out state for."""
    stmt = select(OptOut).where(OptOut.phone == phone).order_by(OptOut.messaging_service_id)
    return list((await session.scalars(stmt)).all())


async def set_opt_out(
    session: AsyncSession,
    *,
    messaging_service_id: int,
    phone: str,
    opted_out: bool,
    source: str,
    message_id: int | None = None,
    user_id: int | None = None,
    extra_inbox_ids: Iterable[int] = (),
) -> bool:
    """Opt `phone` out of (or back into) a messaging service; True if that changed anything.

    A change is recorded in the history and announced (`contact.opted_out` or
    `contact.opted_in`) on the inbox channel of each of the contact's conversations in an inbox
    fed by a number of that service, and of each inbox in `extra_inbox_ids`.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown opt-out source {source!r}")
    now = utcnow()
    changed = False
    if opted_out:
        inserted = await session.execute(
            sql.insert(session, OptOut)
            .values(
                messaging_service_id=messaging_service_id,
                phone=phone,
                opted_out=True,
                source=source,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=[OptOut.messaging_service_id, OptOut.phone])
            .returning(OptOut.id)
        )
        changed = inserted.first() is not None
    if not changed:
        flipped = await session.execute(
            update(OptOut)
            .where(
                OptOut.messaging_service_id == messaging_service_id,
                OptOut.phone == phone,
                OptOut.opted_out.is_not(opted_out),
            )
            .values(opted_out=opted_out, source=source, updated_at=now)
        )
        changed = (flipped.rowcount or 0) > 0
    if not changed:
        return False
    action: Action = "opt_out" if opted_out else "opt_in"
    session.add(
        OptOutEvent(
            messaging_service_id=messaging_service_id,
            phone=phone,
            action=action,
            source=source,
            message_id=message_id,
            user_id=user_id,
            created_at=now,
        )
    )
    await _announce(session, messaging_service_id, phone, opted_out, source, extra_inbox_ids)
    return True


async def _announce(
    session: AsyncSession,
    messaging_service_id: int,
    phone: str,
    opted_out: bool,
    source: str,
    extra_inbox_ids: Iterable[int],
) -> None:
    contact = await session.scalar(select(Contact).where(Contact.phone == phone))
    if contact is None:
        return
    fed_by_service = select(PhoneNumber.inbox_id).where(
        PhoneNumber.messaging_service_id == messaging_service_id,
        PhoneNumber.inbox_id.is_not(None),
    )
    extra = list(extra_inbox_ids)
    stmt = (
        select(Conversation.id, Conversation.inbox_id)
        .where(Conversation.contact_id == contact.id)
        .where(Conversation.inbox_id.in_(fed_by_service) | Conversation.inbox_id.in_(extra))
        .order_by(Conversation.inbox_id)
    )
    kind = "contact.opted_out" if opted_out else "contact.opted_in"
    for conversation_id, inbox_id in (await session.execute(stmt)).all():
        outbox.emit(
            session,
            f"inbox:{inbox_id}",
            kind,
            {
                "contact_id": contact.id,
                "phone": phone,
                "conversation_id": conversation_id,
                "messaging_service_id": messaging_service_id,
                "opted_out": opted_out,
                "source": source,
            },
        )
