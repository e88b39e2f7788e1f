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
from server.access import visible_inbox_ids
from server.state import AppState
from store.models import AuthSession, Conversation, User, utcnow


class ChannelPolicy:
    def __init__(self, state: AppState) -> None:
        self._state = state

    async def authorize(self, principal: Principal, channels: Sequence[str]) -> dict[str, bool]:
        decisions = dict.fromkeys(channels, False)
        async with self._state.reading() as session:
            user = await _signed_in_user(session, principal)
            if user is None:
                return decisions
            parsed = [(channel, *_split(channel)) for channel in channels]
            visible = await visible_inbox_ids(session, user)
            inbox_of = await _conversation_inboxes(
                session, [ident for _, kind, ident in parsed if kind == "conversation"]
            )
        for channel, kind, ident in parsed:
            if kind == "user":
                decisions[channel] = ident == user.id
            elif kind == "campaign":
                decisions[channel] = user.is_admin
            elif kind == "inbox":
                decisions[channel] = visible is None or ident in visible
            elif kind == "conversation":
                inbox_id = inbox_of.get(ident)
                decisions[channel] = inbox_id is not None and (
                    visible is None or inbox_id in visible
                )
        return decisions

    async def session_valid(self, principal: Principal) -> bool:
        async with self._state.reading() as session:
            return await _signed_in_user(session, principal) is not None


async def _signed_in_user(session: AsyncSession, principal: Principal) -> User | None:
    auth = await session.get(AuthSession, principal.session_id)
    if (
        auth is None
        or auth.user_id != principal.user_id
        or auth.revoked_at is not None
        or auth.expires_at <= utcnow()
        or not auth.user.active
    ):
        return None
    return auth.user


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
