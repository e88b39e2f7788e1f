"""Users of the team: creating them with a hashed password."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.passwords import hash_password
from store.models import User

ROLES = ("admin", "staff")


async def create_user(
    session: AsyncSession, *, email: str, password: str, name: str = "", role: str = "staff"
) -> User:
    """Add a user; ValueError for a taken email, an unknown role or a too-short password."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise ValueError(f"not an email address: {email!r}")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise ValueError("password must have at least 8 characters")
    taken = await session.scalar(select(func.count()).where(func.lower(User.email) == email))
    if taken:
        raise ValueError(f"a user with email {email} exists already")
    user = User(email=email, password_hash=hash_password(password), name=name.strip(), role=role)
    session.add(user)
    await session.flush()
    return user
