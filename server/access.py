"""Who may see what: admins see everything; staff see only the inboxes they are members of."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import not_found
from store.models import Conversation, Inbox, InboxMember, User

# The ids of the users who see every inbox: active admins.
ACTIVE_ADMIN_IDS = select(User.id).where(User.role == "admin", User.active.is_(True))


async def visible_inbox_ids(session: AsyncSession, user: User) -> set[int] | None:
    """The inboxes `user` may see, or None for all of them (an admin)."""
    return (await visible_inbox_ids_of(session, [user]))[user.id]


async def visible_inbox_ids_of(
    session: AsyncSession, users: Iterable[User]
) -> dict[int, set[int] | None]:
    """`visible_inbox_ids` of each of `users`, by user id, in one query."""
    visible: dict[int, set[int] | None] = {
        user.id: None if user.is_admin else set() for user in users
    }
    staff = [user_id for user_id, inboxes in visible.items() if inboxes is not None]
    if staff:
        stmt = (
            select(InboxMember.user_id, InboxMember.inbox_id)
            .join(Inbox, Inbox.id == InboxMember.inbox_id)
            .where(InboxMember.user_id.in_(staff), Inbox.is_unrouted.is_(False))
        )
        for user_id, inbox_id in await session.execute(stmt):
            inboxes = visible[user_id]
            assert inboxes is not None  # staff only
            inboxes.add(inbox_id)
    return visible


async def can_see_inbox(session: AsyncSession, user: User, inbox_id: int) -> bool:
    if not user.active:
        return False
    visible = await visible_inbox_ids(session, user)
    return visible is None or inbox_id in visible


async def inbox_for(session: AsyncSession, user: User, inbox_id: int) -> Inbox:
    """The inbox if `user` may see it; 404 otherwise, so nothing of it leaks."""
    inbox = await session.get(Inbox, inbox_id)
    if inbox is None or not await can_see_inbox(session, user, inbox_id):
        raise not_found("inbox")
    return inbox


async def conversation_for(session: AsyncSession, user: User, conversation_id: int) -> Conversation:
    """The conversation if `user` may see its inbox; 404 otherwise."""
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or not await can_see_inbox(session, user, conversation.inbox_id):
        raise not_found("conversation")
    return conversation
