"""The pages people use in the browser: sign-in, inboxes, threads, contact records.

Pages are rendered on the server from the same read-side queries as the API (so they show
exactly what the API would let the viewer see) and come with a boot blob for the browser
script: who is looking, which live channels to subscribe to and the seq each channel was at
*before* the page's data was read, so that resuming from it can only repeat an event the page
already shows (the script ignores those), never miss one.

Writes go from the script to the JSON API with the CSRF token from the page's `<meta>`.
A page about something the viewer may not see answers 404 and names nothing of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from server import labels, queries
from server.access import conversation_for
from server.auth import SESSION_COOKIE, authenticate_token, csrf_token
from server.deps import app_state
from server.errors import ApiError
from server.page_data import (
    composer_state,
    number_services,
    people_names,
    readers_of,
    sending_options,
    service_states,
)
from server.static_files import CachedStaticFiles
from server.templating import STATIC_DIR, templates
from store import outbox
from store.models import User

PageHandler = Callable[[Request, "Viewer", AsyncSession], Awaitable[Response]]

ADMIN_LINKS = [
    ("/admin/inboxes", "Inboxes", "inbox", "inboxes"),
    ("/admin/services", "Messaging services", "layers", "services"),
    ("/admin/numbers", "Phone numbers", "hash", "numbers"),
    ("/admin/users", "Users", "users", "users"),
]


@dataclass(frozen=True, slots=True)
class Viewer:
    user: User
    token: str
    csrf: str


class NotFoundPage(Exception):
    """Render the 404 page (it names nothing of what was asked for)."""


async def _viewer(request: Request, session: AsyncSession) -> Viewer | None:
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
            viewer = await _viewer(request, session)
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
    nav = await queries.visible_inboxes(session, user)
    seqs = dict((boot or {}).pop("seqs", {}))
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


async def channel_seqs(session: AsyncSession, user: User, channels: list[str]) -> dict[str, int]:
    """The current seq of `channels`: read before the data a page shows from them."""
    return await outbox.current_seqs(session, channels)


async def _error_page(
    request: Request, viewer: Viewer, session: AsyncSession, status: int
) -> Response:
    context = {"page": "error", "status": status}
    return await render(request, viewer, session, "error.html", context, status_code=status)


# --- sign-in and home ---------------------------------------------------------------------------


def _safe_next(value: str | None) -> str:
    """Only a path on this site (never `//elsewhere` or a full URL) may be the target."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


async def home(request: Request) -> Response:
    state = app_state(request)
    async with state.reading() as session:
        viewer = await _viewer(request, session)
        if viewer is None:
            context = {"next_url": _safe_next(request.query_params.get("next"))}
            return templates.page(request, "signin.html", context)
        return await render(request, viewer, session, "home.html", {"page": "home"})


# --- inbox and thread ----------------------------------------------------------------------------


def _filter(request: Request) -> str:
    return "unread" if request.query_params.get("filter") == "unread" else "all"


async def _workspace(
    session: AsyncSession, viewer: Viewer, inbox_id: int, filter: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, int]]:
    """The inbox and the first page of its conversation list, with the seqs read before them."""
    seqs = await channel_seqs(session, viewer.user, [f"inbox:{inbox_id}"])
    inbox = await queries.get_inbox(session, viewer.user, inbox_id)
    conversations = await queries.list_conversations(session, viewer.user, inbox_id, filter=filter)
    return inbox, conversations.json(), seqs


async def inbox_page(request: Request, viewer: Viewer, session: AsyncSession) -> Response:
    inbox_id = _path_id(request)
    filter = _filter(request)
    inbox, conversations, seqs = await _workspace(session, viewer, inbox_id, filter)
    context = {
        "page": "inbox",
        "inbox": inbox,
        "filter": filter,
        "conversations": conversations,
        "current_inbox_id": inbox_id,
        "conversation": None,
        "people": await people_names(session),
    }
    boot = {"seqs": seqs, "inbox": {"id": inbox_id, "filter": filter}, **_list_boot(context)}
    return await render(request, viewer, session, "inbox.html", context, boot=boot)


def _list_boot(context: dict[str, Any]) -> dict[str, Any]:
    return {
        "people": context["people"],
        "next_cursor": context["conversations"]["next_cursor"],
    }


async def thread_page(request: Request, viewer: Viewer, session: AsyncSession) -> Response:
    user = viewer.user
    conversation_id = _path_id(request)
    inbox_id = (await conversation_for(session, user, conversation_id)).inbox_id
    conversation_channel = f"conversation:{conversation_id}"
    seqs = await channel_seqs(session, user, [conversation_channel])
    filter = _filter(request)
    inbox, conversations, inbox_seqs = await _workspace(session, viewer, inbox_id, filter)
    seqs.update(inbox_seqs)
    conversation = await queries.get_conversation(session, user, conversation_id)
    messages = await queries.list_messages(session, user, conversation_id)
    chronological = list(reversed(messages.items))
    people = await people_names(session)
    services = await number_services(session, chronological)
    composer = await composer_state(session, conversation_id)
    context = {
        "page": "thread",
        "inbox": inbox,
        "filter": filter,
        "conversations": conversations,
        "current_inbox_id": inbox_id,
        "conversation": conversation,
        "contact": conversation["contact"],
        "messages": chronological,
        "older_cursor": messages.next_cursor,
        "people": people,
        "services": services,
        "composer": composer,
    }
    boot = {
        "seqs": seqs,
        "inbox": {"id": inbox_id, "filter": filter},
        **_list_boot(context),
        "thread": {
            "id": conversation_id,
            "inbox_id": inbox_id,
            "contact": conversation["contact"],
            "older_cursor": messages.next_cursor,
            "readers": await readers_of(session, conversation_id),
            "services": services,
            "composer": composer,
        },
    }
    return await render(
        request, viewer, session, "thread.html", context, channels=[conversation_channel], boot=boot
    )


# --- contact record ------------------------------------------------------------------------------


async def contact_page(request: Request, viewer: Viewer, session: AsyncSession) -> Response:
    user = viewer.user
    record = await queries.get_contact(session, user, _path_id(request))
    options = await sending_options(session, user, record)
    context = {
        "page": "contact",
        "contact": record,
        "inbox_names": {i["id"]: i["name"] for i in await queries.visible_inboxes(session, user)},
        "services": await service_states(session, user, record),
        "options": options,
        "people": await people_names(session),
    }
    boot = {"contact": {"id": record["id"], "options": options}}
    return await render(request, viewer, session, "contact.html", context, boot=boot)


# --- helpers -------------------------------------------------------------------------------------


def _path_id(request: Request) -> int:
    raw = str(request.path_params.get("id", ""))
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) <= 2**62:
        raise NotFoundPage
    return int(raw)


routes: list[BaseRoute] = [
    Route("/", home, methods=["GET"]),
    Route("/inboxes/{id}", page(inbox_page), methods=["GET"]),
    Route("/conversations/{id}", page(thread_page), methods=["GET"]),
    Route("/contacts/{id}", page(contact_page), methods=["GET"]),
    Mount("/static", CachedStaticFiles(directory=STATIC_DIR), name="static"),
]
