"""Request helpers shared by the API routes: who is calling, and may they write."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request

from server.auth import CSRF_HEADER, authenticate_token, credentials, csrf_ok
from server.bodies import bounded
from server.errors import ApiError, forbidden
from server.state import AppState
from store.ids import parse_id
from store.models import AuthSession, User

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_JSON_BYTES = 1_000_000


def app_state(request: Request) -> AppState:
    return request.app.state.switchboard


async def current_auth(request: Request) -> tuple[User, AuthSession]:
    """The signed-in user and session, or 401. Cookie-authenticated writes must carry CSRF."""
    cached = request.scope.get("switchboard.auth")
    if cached is not None:
        return cached
    token, from_cookie = credentials(request)
    state = app_state(request)
    async with state.reading() as session:
        found = await authenticate_token(session, token)
    if found is None:
        raise ApiError(401, "unauthorized", "sign in first", {"WWW-Authenticate": "Bearer"})
    if (
        from_cookie
        and request.method not in SAFE_METHODS
        and not csrf_ok(state.settings.secret_key, token or "", request.headers.get(CSRF_HEADER))
    ):
        raise ApiError(403, "csrf", f"cookie-authenticated writes need the {CSRF_HEADER} header")
    request.scope["switchboard.auth"] = found
    return found


async def current_user(request: Request) -> User:
    user, _ = await current_auth(request)
    return user


async def require_admin(request: Request) -> User:
    user = await current_user(request)
    if not user.is_admin:
        raise forbidden("admins only")
    return user


async def json_body(
    request: Request, limit: int = MAX_JSON_BYTES, *, optional: bool = False
) -> dict[str, Any]:
    """The request's JSON object, or a clear 4xx (wrong type, too large, not JSON, not a map);
    with `optional`, an empty body is an empty object.

    Routes that take imports allow a larger `limit`; a body past the usual one is parsed on a
    thread, since tens of megabytes of JSON would hold up the event loop."""
    raw = await bounded(request, limit).body()
    if optional and not raw.strip():
        return {}
    if "json" not in request.headers.get("content-type", ""):
        raise ApiError(415, "unsupported_media_type", "send a JSON body (application/json)")
    try:
        data = (
            json.loads(raw)
            if len(raw) <= MAX_JSON_BYTES
            else await asyncio.to_thread(json.loads, raw)
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_request", "the body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return data


def path_id(request: Request, name: str = "id") -> int:
    """An integer id from the path; unknown or malformed ids answer 404."""
    number = parse_id(str(request.path_params.get(name, "")))
    if number is None:
        raise ApiError(404, "not_found", "no such object")
    return number
