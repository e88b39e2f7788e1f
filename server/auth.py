"""Sign-in sessions: opaque tokens (bearer header or HTTP-only cookie) and CSRF tokens.

A token is random; the database keeps only its SHA-256, so a session can be revoked (logout,
deactivation) and the revocation is seen by every process at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from server.services.group_commit import GroupCommit
from server.state import AppState
from store.models import AuthSession, User, utcnow

SESSION_COOKIE = "sb_session"
CSRF_HEADER = "x-csrf-token"
SESSION_LIFETIME = timedelta(days=14)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start_session(session: AsyncSession, user: User) -> str:
    """A new sign-in for `user`; returns the token (shown once, stored only as a digest)."""
    token = secrets.token_urlsafe(32)
    session.add(
        AuthSession(
            token_hash=_digest(token), user_id=user.id, expires_at=utcnow() + SESSION_LIFETIME
        )
    )
    await session.flush()
    return token


async def authenticate_token(
    session: AsyncSession, token: str | None
) -> tuple[User, AuthSession] | None:
    """The active user and session behind `token`, or None (unknown, expired, revoked, inactive)."""
    [found] = await authenticate_tokens(session, [token])
    return found


async def authenticate_tokens(
    session: AsyncSession, tokens: Sequence[str | None]
) -> list[tuple[User, AuthSession] | None]:
    """`authenticate_token` for each of `tokens`, in one query."""
    digests = [_digest(token) if token and len(token) <= 200 else None for token in tokens]
    wanted = {digest for digest in digests if digest is not None}
    found: dict[str, AuthSession] = {}
    if wanted:
        rows = await session.scalars(select(AuthSession).where(AuthSession.token_hash.in_(wanted)))
        found = {auth.token_hash: auth for auth in rows}
    now = utcnow()
    results: list[tuple[User, AuthSession] | None] = []
    for digest in digests:
        auth = found.get(digest or "")
        results.append((auth.user, auth) if auth is not None and is_good(auth, now) else None)
    return results


def is_good(auth: AuthSession, now: datetime) -> bool:
    """Whether a sign-in session still lets its user in: not revoked, not expired, and the
    user not deactivated."""
    return auth.revoked_at is None and auth.expires_at > now and auth.user.active


class SocketSignIns:
    """Checks the tokens of websockets being opened. Tokens that arrive while a check runs are
    looked up together in the next one, so a storm of reconnecting sockets (a deploy, a network
    blip) costs a few reads rather than one per socket."""

    def __init__(self, state: AppState, limit: int = 256) -> None:
        self._group = GroupCommit(state, authenticate_tokens, limit, session=state.reading)

    async def check(self, token: str) -> tuple[User, AuthSession] | None:
        return await self._group.submit(token)


async def revoke_session(session: AsyncSession, auth_session_id: int) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == auth_session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def revoke_user_sessions(session: AsyncSession, user_id: int) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def bearer_token(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def credentials(connection: HTTPConnection) -> tuple[str | None, bool]:
    """The token a request carries and whether it came from the cookie.

    When both a bearer token and the cookie come, the bearer token decides (SPEC section 4).
    """
    token = bearer_token(connection)
    if token is not None:
        return token, False
    return connection.cookies.get(SESSION_COOKIE), True


def csrf_token(secret_key: str, token: str) -> str:
    """The CSRF token bound to a session token: pages embed it, cookie writes must echo it."""
    return hmac.new(secret_key.encode(), b"csrf:" + token.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret_key: str, token: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(secret_key, token), presented or "")
