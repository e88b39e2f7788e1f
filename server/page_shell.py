"""The page machinery: who is looking, the app shell every page renders in, the error pages.

Every page is rendered from the same read-side queries as the API (so it shows exactly what
the API would let the viewer see) and carries a boot blob for the browser script: who is
looking, which live channels to follow, and the seq each channel was at *before* the page's
data was read — resuming from it can only repeat an event the page already shows (the script
ignores those), never miss one. A page about something the viewer may not see answers 404 and
names nothing of it; visitors are sent to sign in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from server import labels, queries
from server.access import visible_inbox_ids
from server.auth import SESSION_COOKIE, authenticate_token, csrf_token
from server.deps import app_state
from server.errors import ApiError
from server.templating import templates
from store import outbox
from store.ids import parse_id
from store.models import Inbox, User

PageHandler = Callable[[Request, "Viewer", AsyncSession], Awaitable[Response]]

ADMIN_LINKS = [
    ("/admin/inboxes", "Inboxes", "inbox", "inboxes"),
    ("/admin/services", "Messaging services", "layers", "services"),
    ("/admin/numbers", "Phone numbers", "hash", "numbers"),
    ("/admin/users", "Users", "users", "users"),
    ("/admin/campaigns", "Campaigns", "megaphone", "campaigns"),
]


@dataclass(frozen=True, slots=True)
class Viewer:
    user: User
    token: str
    csrf: str


class NotFoundPage(Exception):
    """Render the 404 page (it names nothing of what was asked for)."""


async def viewer_of(request: Request, session: AsyncSession) -> Viewer | None:
    token = request.cookies.get(SESSION_COOKIE)
    found = await authenticate_token(session, token)
    if found is None or token is None:
        return None
    secret = app_state(request).settings.secret_key
    return Viewer(found[0], token, csrf_token(secret, token))


def _sign_in_redirect(request: Request) -> Response:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return RedirectResponse(f"/?next={quote(target, safe='')}", status_code=303)


def page(handler: PageHandler, admin: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """A page route: signed-in viewers only (others go to sign-in); 404 for hidden objects."""

    async def endpoint(request: Request) -> Response:
        state = app_state(request)
        async with state.reading() as session:
            viewer = await viewer_of(request, session)
            if viewer is None:
                return _sign_in_redirect(request)
            try:
                if admin and not viewer.user.is_admin:
                    return await _error_page(request, viewer, session, 403)
                return await handler(request, viewer, session)
            except NotFoundPage:
                return await _error_page(request, viewer, session, 404)
            except ApiError as exc:
                if exc.status in (403, 404, 422):
                    return await _error_page(request, viewer, session, 404)
                raise

    endpoint.__name__ = handler.__name__
    return endpoint


async def render(
    request: Request,
    viewer: Viewer,
    session: AsyncSession,
    template: str,
    context: dict[str, Any],
    *,
    channels: list[str] | None = None,
    boot: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    """Render `template` inside the app shell (sidebar with my inboxes and unread counts).

    `channels` are subscribed to live besides `user:{me}` and my inboxes'; their seqs are read
    here — callers must call `channel_seqs` before reading the page's data when the page shows
    data of those channels, and pass the result in as `boot["seqs"]`.
    """
    user = viewer.user
    seqs = dict((boot or {}).pop("seqs", {}))
    # The sidebar's channels too are read before the sidebar's counts.
    visible = await visible_inbox_ids(session, user)
    if visible is None:
        visible = set((await session.scalars(select(Inbox.id))).all())
    early = [f"user:{user.id}", *(f"inbox:{inbox_id}" for inbox_id in sorted(visible))]
    seqs.update(await outbox.current_seqs(session, [c for c in early if c not in seqs]))
    nav = await queries.visible_inboxes(session, user)
    wanted = [f"user:{user.id}", *(f"inbox:{item['id']}" for item in nav), *(channels or [])]
    missing = [channel for channel in wanted if channel not in seqs]
    seqs.update(await outbox.current_seqs(session, missing))
    settings = app_state(request).settings
    payload = {
        "user": {"id": user.id, "name": user.name or user.email, "is_admin": user.is_admin},
        "labels": labels.browser_tables(),
        "channels": [{"channel": channel, "since": seqs[channel]} for channel in wanted],
        "simulator": settings.simulator,
        **(boot or {}),
    }
    full = {
        "me": user,
        "csrf": viewer.csrf,
        "nav": nav,
        "total_unread": sum(item.get("unread_count", 0) for item in nav),
        "simulator": settings.simulator,
        "admin_links": ADMIN_LINKS,
        "admin_section": None,
        "current_inbox_id": None,
        "boot": payload,
        **context,
    }
    return templates.page(request, template, full, status_code=status_code)


async def channel_seqs(session: AsyncSession, channels: list[str]) -> dict[str, int]:
    """The current seq of `channels`: read before the data a page shows from them."""
    return await outbox.current_seqs(session, channels)


async def _error_page(
    request: Request, viewer: Viewer, session: AsyncSession, status: int
) -> Response:
    context = {"page": "error", "status": status}
    return await render(request, viewer, session, "error.html", context, status_code=status)


def path_id(request: Request) -> int:
    number = parse_id(str(request.path_params.get("id", "")))
    if number is None:
        raise NotFoundPage
    return number
