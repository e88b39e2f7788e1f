"""Who may subscribe to which live channel: the policy the realtime node is given.

Built on `server/access.py`, so the websocket sees exactly what the HTTP API shows. Staff get
the `inbox:`/`conversation:` channels of their inboxes and their own `user:` channel; admins
get every inbox, conversation and `campaign:` channel, and their own `user:` channel. Nothing
is allowed once the sign-in session is revoked or expired, or the user deactivated.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from realtime.ports import Principal
from server.access import visible_inbox_ids_of
from server.auth import is_good
from server.services.group_commit import GroupCommit
from server.state import AppState
from store.models import AuthSession, Conversation, User, utcnow


class ChannelPolicy:
    """Answers the realtime node. Questions asked while a read runs (a storm of sockets
    subscribing) are answered together in the next one (`GroupCommit` over reads)."""

    def __init__(self, state: AppState, limit: int = 256) -> None:
        self._decisions = GroupCommit(state, _authorize_all, limit, session=state.reading)
        self._sign_ins = GroupCommit(state, _sessions_valid, limit, session=state.reading)

    async def authorize(self, principal: Principal, channels: Sequence[str]) -> dict[str, bool]:
        return await self._decisions.submit((principal, tuple(channels)))

    async def session_valid(self, principal: Principal) -> bool:
        return await self._sign_ins.submit(principal)


async def _sessions_valid(session: AsyncSession, principals: Sequence[Principal]) -> list[bool]:
    return [user is not None for user in await _signed_in_users(session, principals)]


async def _authorize_all(
    session: AsyncSession, asked: Sequence[tuple[Principal, tuple[str, ...]]]
) -> list[dict[str, bool]]:
    """Each principal's decision on each of its channels, with one query per kind for all."""
    users = await _signed_in_users(session, [principal for principal, _ in asked])
    visible = await visible_inbox_ids_of(session, [user for user in users if user is not None])
    conversations = {
        ident
        for (_, channels), user in zip(asked, users, strict=True)
        if user is not None
        for kind, ident in map(_split, channels)
        if kind == "conversation"
    }
    inbox_of = await _conversation_inboxes(session, sorted(conversations))
    return [
        _decide(user, visible[user.id], inbox_of, channels)
        if user is not None
        else dict.fromkeys(channels, False)
        for (_, channels), user in zip(asked, users, strict=True)
    ]


def _decide(
    user: User, visible: set[int] | None, inbox_of: dict[int, int], channels: Sequence[str]
) -> dict[str, bool]:
    decisions = dict.fromkeys(channels, False)
    for channel in channels:
        kind, ident = _split(channel)
        if kind == "user":
            decisions[channel] = ident == user.id
        elif kind == "campaign":
            decisions[channel] = user.is_admin
        elif kind == "inbox":
            decisions[channel] = visible is None or ident in visible
        elif kind == "conversation":
            inbox_id = inbox_of.get(ident)
            decisions[channel] = inbox_id is not None and (visible is None or inbox_id in visible)
    return decisions


async def _signed_in_users(
    session: AsyncSession, principals: Sequence[Principal]
) -> list[User | None]:
    """The user of each principal whose sign-in session is still good, else None."""
    ids = {principal.session_id for principal in principals}
    rows = await session.scalars(select(AuthSession).where(AuthSession.id.in_(ids)))
    sessions = {auth.id: auth for auth in rows}
    now = utcnow()
    users: list[User | None] = []
    for principal in principals:
        auth = sessions.get(principal.session_id)
        if auth is not None and auth.user_id == principal.user_id and is_good(auth, now):
            users.append(auth.user)
        else:
            users.append(None)
    return users


def _split(channel: str) -> tuple[str, int]:
    kind, _, ident = channel.partition(":")
    return kind, int(ident) if ident.isdigit() else 0


async def _conversation_inboxes(session: AsyncSession, ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    rows = await session.execute(
        select(Conversation.id, Conversation.inbox_id).where(Conversation.id.in_(ids))
    )
    return {conversation_id: inbox_id for conversation_id, inbox_id in rows}
