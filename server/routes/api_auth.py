"""`/api/v1/auth/*`: sign in (bearer token + HTTP-only cookie), sign out, who am I."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.auth import (
    SESSION_COOKIE,
    SESSION_LIFETIME,
    credentials,
    csrf_token,
    revoke_session,
    start_session,
)
from server.deps import app_state, current_auth, json_body
from server.errors import ApiError, invalid
from server.passwords import verify_password
from server.ratelimit import LoginThrottle
from server.routes.api_common import PREFIX, answer, no_content
from server.routes.api_input import Fields
from server.serializers import user_json
from store.models import User

MAX_PASSWORD = 1024


def _password(fields: Fields) -> str:
    value = fields.data.get("password")
    if not isinstance(value, str) or not value:
        raise invalid("password is required", field="password")
    if len(value) > MAX_PASSWORD:
        raise invalid(f"password must be at most {MAX_PASSWORD} characters", field="password")
    return value


async def login(request: Request) -> Response:
    """Check email and password; answer a new token (never a reused one) and set the cookie."""
    state = app_state(request)
    fields = Fields(await json_body(request), ("email", "password"))
    email = fields.text("email", max_length=320).lower()
    password = _password(fields)
    throttle = LoginThrottle(state)
    await throttle.begin(email, request.client.host if request.client else "unknown")
    async with state.reading() as session:
        user = await session.scalar(select(User).where(func.lower(User.email) == email))
    hashed = user.password_hash if user else None
    # Argon2 is deliberately slow: keep it off the event loop.
    if not await asyncio.to_thread(verify_password, hashed, password) or not (user and user.active):
        raise ApiError(401, "invalid_credentials", "wrong email or password")
    await throttle.succeeded(email)
    async with state.transaction() as session:
        token = await start_session(session, user)
    settings = state.settings
    response = answer(
        {
            "token": token,
            "user": user_json(user),
            "csrf_token": csrf_token(settings.secret_key, token),
        }
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )
    return response


async def logout(request: Request) -> Response:
    """End the calling session (the token stops working everywhere) and clear the cookie."""
    state = app_state(request)
    user, auth = await current_auth(request)
    async with state.transaction() as session:
        await revoke_session(session, auth.id)
    await state.access_changed(user.id)
    response = no_content()
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=state.settings.secure_cookies,
    )
    return response


async def me(request: Request) -> Response:
    user, _ = await current_auth(request)
    token, _ = credentials(request)
    secret = app_state(request).settings.secret_key
    return answer({"user": user_json(user), "csrf_token": csrf_token(secret, token or "")})


routes: list[BaseRoute] = [
    Route(f"{PREFIX}/auth/login", login, methods=["POST"]),
    Route(f"{PREFIX}/auth/logout", logout, methods=["POST"]),
    Route(f"{PREFIX}/auth/me", me, methods=["GET"]),
]
