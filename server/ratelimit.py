"""The login rate limit: failed sign-ins counted per email and per client IP, in the database.

An attempt is written (and committed) *before* the password is checked and only removed when it
succeeds, so concurrent guesses each see one another and every server process agrees on the
count. Past the limit the answer is 429 with `Retry-After`, without checking the password.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from server.errors import ApiError
from server.state import AppState
from store.models import LoginAttempt, utcnow


@dataclass(frozen=True)
class LoginLimits:
    per_email: int = 5
    per_ip: int = 30
    window: timedelta = timedelta(minutes=15)


DEFAULT_LIMITS = LoginLimits()


def email_key(email: str) -> str:
    return email.strip().lower()[:320]


class LoginThrottle:
    def __init__(self, state: AppState, limits: LoginLimits = DEFAULT_LIMITS) -> None:
        self.state = state
        self.limits = limits

    async def begin(self, email: str, ip: str) -> int:
        """Record an attempt; 429 if the email or the IP is already over its limit."""
        email = email_key(email)
        ip = ip[:64]
        now = utcnow()
        since = now - self.limits.window
        async with self.state.transaction() as session:
            await session.execute(delete(LoginAttempt).where(LoginAttempt.created_at < since))
            attempt = LoginAttempt(email=email, ip=ip, created_at=now)
            session.add(attempt)
            await session.flush()
            attempt_id = attempt.id
        async with self.state.reading() as session:
            for column, value, limit in (
                (LoginAttempt.email, email, self.limits.per_email),
                (LoginAttempt.ip, ip, self.limits.per_ip),
            ):
                others = (column == value, LoginAttempt.id != attempt_id)
                wait = await self._wait(session, since, limit, *others)
                if wait is not None:
                    break
        if wait is None:
            return attempt_id
        await self.forget(attempt_id)
        raise ApiError(
            429,
            "rate_limited",
            "too many sign-in attempts; try again later",
            {"Retry-After": str(wait)},
            retry_after=wait,
        )

    async def _wait(
        self, session: AsyncSession, since: datetime, limit: int, *where: ColumnElement[bool]
    ) -> int | None:
        """Seconds until one more attempt fits under `limit`, or None if it fits now."""
        scope = (LoginAttempt.created_at >= since, *where)
        count = int(await session.scalar(select(func.count(LoginAttempt.id)).where(*scope)) or 0)
        if count < limit:
            return None
        # The attempt fits once the (count - limit + 1) oldest have left the window.
        expiring = await session.scalar(
            select(LoginAttempt.created_at)
            .where(*scope)
            .order_by(LoginAttempt.created_at, LoginAttempt.id)
            .offset(count - limit)
            .limit(1)
        )
        if expiring is None:
            return 1
        remaining = (expiring + self.limits.window - utcnow()).total_seconds()
        return max(1, math.ceil(remaining))

    async def succeeded(self, email: str) -> None:
        """A correct password for `email`: its failures stop counting."""
        email = email_key(email)
        async with self.state.transaction() as session:
            await session.execute(delete(LoginAttempt).where(LoginAttempt.email == email))

    async def forget(self, attempt_id: int) -> None:
        async with self.state.transaction() as session:
            await session.execute(delete(LoginAttempt).where(LoginAttempt.id == attempt_id))
