"""What admins change: messaging services, phone numbers and their routing, inboxes, members, users.

Callers validate the shape of the input; these functions check it against the database (an
unknown id is a 422 naming the field, a taken sid/number/email a 409) and keep live access in
step: whoever loses access is announced to the realtime node once the change has committed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.access import ACTIVE_ADMIN_IDS
from server.auth import revoke_user_sessions
from server.errors import ApiError, invalid, not_found
from server.passwords import hash_password
from server.queries import conversation_count, routing_warnings
from server.services import sql
from server.services.users import create_user as _create_user
from server.state import AppState, after_commit
from store import outbox
from store.models import Inbox, InboxMember, MessagingService, PhoneNumber, User, utcnow

PURPOSES = ("one_to_one", "blast")
ROLES = ("admin", "staff")
MIN_PASSWORD = 8


def conflict(detail: str, field: str) -> ApiError:
    return ApiError(409, "conflict", detail, field=field)


async def _flush_unique(session: AsyncSession, detail: str, field: str) -> None:
    """Flush; a unique constraint hit by a concurrent writer is a 409 like the checked one."""
    try:
        await session.flush()
    except IntegrityError:
        raise conflict(detail, field) from None


def _announce_access_change(state: AppState, session: AsyncSession, user_id: int) -> None:
    async def announce() -> None:
        await state.access_changed(user_id)

    after_commit(session, announce)


# --- messaging services and numbers ------------------------------------------------------------


async def _check_service(
    session: AsyncSession, *, name: str | None, sid: str | None, except_id: int | None = None
) -> None:
    """409 when another messaging service has this SID or (in any case) this name: two
    services of one name are two identical choices in every form."""
    others = select(MessagingService.id)
    if except_id is not None:
        others = others.where(MessagingService.id != except_id)
    if sid is not None and await session.scalar(others.where(MessagingService.sid == sid)):
        raise conflict(f"messaging service {sid} exists already", "sid")
    same_name = others.where(func.lower(MessagingService.name) == (name or "").lower())
    if name is not None and await session.scalar(same_name):
        raise conflict(f"a messaging service named {name!r} exists already", "name")


async def create_messaging_service(
    session: AsyncSession, *, name: str, sid: str, purpose: str
) -> MessagingService:
    await _check_service(session, name=name, sid=sid)
    service = MessagingService(name=name, sid=sid, purpose=purpose)
    session.add(service)
    await _flush_unique(session, f"messaging service {sid} exists already", "sid")
    return service


async def update_messaging_service(
    session: AsyncSession, service_id: int, *, name: str | None, sid: str | None
) -> MessagingService:
    """Rename a messaging service or correct its SID; its purpose stays (campaigns and opt-outs
    depend on it)."""
    service = await session.get(MessagingService, service_id)
    if service is None:
        raise not_found("messaging service")
    await _check_service(session, name=name, sid=sid, except_id=service.id)
    if name is not None:
        service.name = name
    if sid is not None:
        service.sid = sid
    await _flush_unique(session, f"messaging service {sid} exists already", "sid")
    return service


async def _routable_inbox(session: AsyncSession, inbox_id: int | None) -> int | None:
    if inbox_id is None:
        return None
    inbox = await session.get(Inbox, inbox_id)
    if inbox is None:
        raise invalid("inbox_id is not an inbox", field="inbox_id")
    if inbox.is_unrouted:
        raise invalid(
            "the Unrouted inbox collects numbers routed nowhere; set inbox_id to null",
            field="inbox_id",
        )
    return inbox.id


async def _warnings_for(session: AsyncSession, inbox_id: int | None) -> list[dict[str, Any]]:
    if inbox_id is None:
        return []
    return (await routing_warnings(session, [inbox_id]))[inbox_id]


async def create_phone_number(
    session: AsyncSession,
    *,
    number: str,
    sid: str,
    messaging_service_id: int,
    inbox_id: int | None,
) -> tuple[PhoneNumber, list[dict[str, Any]]]:
    """A number of a messaging service, routed to an inbox (or nowhere); with routing warnings."""
    if await session.get(MessagingService, messaging_service_id) is None:
        raise invalid("no such messaging service", field="messaging_service_id")
    inbox_id = await _routable_inbox(session, inbox_id)
    if await session.scalar(select(PhoneNumber.id).where(PhoneNumber.sid == sid)):
        raise conflict(f"phone number {sid} exists already", "sid")
    if await session.scalar(select(PhoneNumber.id).where(PhoneNumber.number == number)):
        raise conflict(f"phone number {number} exists already", "number")
    row = PhoneNumber(
        number=number, sid=sid, messaging_service_id=messaging_service_id, inbox_id=inbox_id
    )
    session.add(row)
    await _flush_unique(session, "this phone number exists already", "number")
    return row, await _warnings_for(session, inbox_id)


async def route_phone_number(
    session: AsyncSession, number_id: int, inbox_id: int | None
) -> tuple[PhoneNumber, list[dict[str, Any]]]:
    """Route a number to an inbox (None: nowhere, its messages land in Unrouted)."""
    row = await session.get(PhoneNumber, number_id)
    if row is None:
        raise not_found("phone number")
    row.inbox_id = await _routable_inbox(session, inbox_id)
    await session.flush()
    return row, await _warnings_for(session, row.inbox_id)


async def remove_phone_number(session: AsyncSession, number_id: int) -> None:
    """Forget a number added by mistake or given up. Its texts stay in their threads (they
    keep the number as text); new texts to it land in Unrouted, and its inbox sends from its
    other numbers, if any."""
    row = await session.get(PhoneNumber, number_id)
    if row is None:
        raise not_found("phone number")
    await session.delete(row)


# --- inboxes and members -----------------------------------------------------------------------


async def _check_inbox_name(session: AsyncSession, name: str, except_id: int | None = None) -> None:
    stmt = select(Inbox.id).where(func.lower(Inbox.name) == name.lower())
    if except_id is not None:
        stmt = stmt.where(Inbox.id != except_id)
    if await session.scalar(stmt):
        raise conflict(f"an inbox named {name!r} exists already", "name")


async def create_inbox(session: AsyncSession, *, name: str) -> Inbox:
    await _check_inbox_name(session, name)
    inbox = Inbox(name=name)
    session.add(inbox)
    await session.flush()
    return inbox


async def update_inbox(
    session: AsyncSession,
    inbox_id: int,
    *,
    name: str | None = None,
    notifications: dict[str, Any] | None = None,
) -> Inbox:
    """Rename an inbox and/or change its email notifications (keys given are changed)."""
    inbox = await session.get(Inbox, inbox_id)
    if inbox is None:
        raise not_found("inbox")
    if name is not None:
        await _check_inbox_name(session, name, except_id=inbox.id)
        inbox.name = name
    if notifications:
        if "enabled" in notifications:
            if notifications["enabled"] and not inbox.notify_enabled:
                inbox.notify_since = utcnow()
            inbox.notify_enabled = notifications["enabled"]
        if "delay_seconds" in notifications:
            inbox.notify_delay_seconds = notifications["delay_seconds"]
        if "to" in notifications:
            inbox.notify_to = notifications["to"]
    await session.flush()
    return inbox


async def delete_inbox(state: AppState, session: AsyncSession, inbox_id: int) -> None:
    """Delete an inbox made by mistake or given up. Only one without conversations: texts
    are never deleted with an inbox. Its numbers then route nowhere (their texts land in
    Unrouted), and its members and the admins lose it at once, on open pages too."""
    inbox = await session.get(Inbox, inbox_id)
    if inbox is None:
        raise not_found("inbox")
    if inbox.is_unrouted:
        raise conflict("the Unrouted inbox stays: texts to numbers routed nowhere land there", "id")
    conversations = await conversation_count(session, inbox_id)
    if conversations:
        plural = "s" if conversations != 1 else ""
        raise conflict(
            f"{inbox.name} has {conversations} conversation{plural}, whose texts would go with "
            "it: an inbox with conversations cannot be deleted (rename it instead)",
            "id",
        )
    # Its members, and the admins (who see every inbox), lose it from their open pages.
    watchers = (
        await session.scalars(
            select(InboxMember.user_id)
            .where(InboxMember.inbox_id == inbox_id)
            .union(ACTIVE_ADMIN_IDS)
        )
    ).all()
    await session.execute(
        update(PhoneNumber).where(PhoneNumber.inbox_id == inbox_id).values(inbox_id=None)
    )
    await session.execute(delete(InboxMember).where(InboxMember.inbox_id == inbox_id))
    await session.delete(inbox)
    # A text that started a conversation here meanwhile holds the inbox (foreign key).
    await _flush_unique(session, f"a text arrived in {inbox.name} meanwhile", "id")
    for user_id in watchers:
        _announce_access_change(state, session, user_id)


async def _inbox_and_user(session: AsyncSession, inbox_id: int, user_id: int) -> Inbox:
    inbox = await session.get(Inbox, inbox_id)
    if inbox is None:
        raise not_found("inbox")
    if await session.get(User, user_id) is None:
        raise not_found("user")
    return inbox


async def add_member(state: AppState, session: AsyncSession, inbox_id: int, user_id: int) -> bool:
    """Make a user a member of an inbox; True if they were not one already."""
    inbox = await _inbox_and_user(session, inbox_id, user_id)
    if inbox.is_unrouted:
        raise invalid("the Unrouted inbox has no members: only admins see it", field="inbox_id")
    stmt = (
        sql.insert(session, InboxMember)
        .values(inbox_id=inbox_id, user_id=user_id, created_at=utcnow())
        .on_conflict_do_nothing()
        .returning(InboxMember.user_id)
    )
    created = (await session.execute(stmt)).first() is not None
    if created:
        # The user's open pages add the inbox to their sidebar and follow it.
        added = {"id": inbox.id, "name": inbox.name, "is_unrouted": False, "unread_count": 0}
        outbox.emit(session, f"user:{user_id}", "inbox.added", added)
        # Their sockets forget what they were refused before: the inbox is theirs now.
        _announce_access_change(state, session, user_id)
    return created


async def remove_member(
    state: AppState, session: AsyncSession, inbox_id: int, user_id: int
) -> None:
    """End a membership; the user's live subscriptions to the inbox are cut after commit."""
    await _inbox_and_user(session, inbox_id, user_id)
    member = await session.get(InboxMember, (inbox_id, user_id))
    if member is not None:
        await session.delete(member)
        await session.flush()
    _announce_access_change(state, session, user_id)


# --- users -------------------------------------------------------------------------------------


async def create_user(
    session: AsyncSession, *, email: str, password: str, name: str, role: str
) -> User:
    email = email.lower()
    if await session.scalar(select(User.id).where(func.lower(User.email) == email)):
        raise conflict(f"a user with email {email} exists already", "email")
    try:
        user = await _create_user(session, email=email, password=password, name=name, role=role)
    except IntegrityError:
        raise conflict(f"a user with email {email} exists already", "email") from None
    except ValueError as exc:
        raise invalid(str(exc)) from None
    return user


async def _active_admins(session: AsyncSession) -> int:
    stmt = select(func.count()).select_from(ACTIVE_ADMIN_IDS.subquery())
    return int(await session.scalar(stmt) or 0)


async def update_user(
    state: AppState,
    session: AsyncSession,
    user_id: int,
    *,
    name: str | None = None,
    role: str | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> User:
    """Change a user. Deactivating or setting a new password revokes every session; losing
    access (that, or admin → staff) is announced after commit. The last active admin cannot be
    demoted or deactivated."""
    user = await session.get(User, user_id)
    if user is None:
        raise not_found("user")
    loses_admin = user.is_admin and user.active and (role == "staff" or active is False)
    if loses_admin and await _active_admins(session) <= 1:
        raise ApiError(409, "last_admin", "the last active admin must stay an active admin")
    loses_access = (
        (active is False and user.active)
        or (role == "staff" and user.is_admin)
        or password is not None
    )
    if name is not None:
        user.name = name
    if role is not None:
        user.role = role
    if password is not None:
        user.password_hash = hash_password(password)
    if active is not None:
        user.active = active
    if active is False or password is not None:
        await revoke_user_sessions(session, user.id)
    await session.flush()
    if loses_access:
        _announce_access_change(state, session, user.id)
    return user


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise not_found("user")
    return user
