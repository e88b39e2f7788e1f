"""The pages people use in the browser: sign-in, home, inboxes, threads, contacts.

Writes go from the page script to the JSON API with the CSRF token from the page's `<meta>`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from server import queries
from server.access import conversation_for
from server.deps import app_state
from server.page_data import (
    composer_state,
    new_text_options,
    number_services,
    people_names,
    readers_of,
    sending_options,
    service_states,
)
from server.page_shell import Viewer, channel_seqs, page, path_id, render, viewer_of
from server.routes import admin_pages, campaign_pages, simulator_page
from server.static_files import CachedStaticFiles
from server.templating import STATIC_DIR, templates

CONTACTS_PAGE = 50
MAX_QUERY = 100

# --- sign-in and home ---------------------------------------------------------------------------


def _safe_next(value: str | None) -> str:
    """Only a path on this site (never `//elsewhere` or a full URL) may be the target."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


async def home(request: Request) -> Response:
    state = app_state(request)
    async with state.reading() as session:
        viewer = await viewer_of(request, session)
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
    seqs = await channel_seqs(session, [f"inbox:{inbox_id}"])
    inbox = await queries.get_inbox(session, viewer.user, inbox_id)
    conversations = await queries.list_conversations(session, viewer.user, inbox_id, filter=filter)
    return inbox, conversations.json(), seqs


async def inbox_page(request: Request, viewer: Viewer, session: AsyncSession) -> Response:
    inbox_id = path_id(request)
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
    conversation_id = path_id(request)
    inbox_id = (await conversation_for(session, user, conversation_id)).inbox_id
    conversation_channel = f"conversation:{conversation_id}"
    seqs = await channel_seqs(session, [conversation_channel])
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
            "unrouted": inbox["is_unrouted"],
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
    record = await queries.get_contact(session, user, path_id(request))
    options = await sending_options(session, user, record)
    services = await service_states(session, user, record)
    context = {
        "page": "contact",
        "contact": record,
        "inbox_names": {i["id"]: i["name"] for i in await queries.visible_inboxes(session, user)},
        "services": services,
        "options": options,
        "people": await people_names(session),
    }
    opted_out_of = [service["name"] for service in services if service["opted_out"]]
    boot = {"contact": {"id": record["id"], "options": options, "opted_out_of": opted_out_of}}
    return await render(request, viewer, session, "contact.html", context, boot=boot)


async def contacts_page(request: Request, viewer: Viewer, session: AsyncSession) -> Response:
    """The contacts I may see, searched by name, email or phone, and a form to text a number
    nobody has texted yet."""
    q = request.query_params.get("q", "").strip()[:MAX_QUERY]
    found = await queries.search_contacts(
        session,
        viewer.user,
        q or None,
        cursor=request.query_params.get("cursor"),
        limit=CONTACTS_PAGE,
    )
    more = {"q": q, "cursor": found.next_cursor} if q else {"cursor": found.next_cursor}
    more_url = f"/contacts?{urlencode(more)}" if found.next_cursor else None
    context = {
        "page": "contacts",
        "q": q,
        "contacts": found.items,
        "more_url": more_url,
        "options": await new_text_options(session, viewer.user),
    }
    return await render(request, viewer, session, "contacts.html", context)


routes: list[BaseRoute] = [
    Route("/", home, methods=["GET"]),
    Route("/inboxes/{id}", page(inbox_page), methods=["GET"]),
    Route("/conversations/{id}", page(thread_page), methods=["GET"]),
    Route("/contacts", page(contacts_page), methods=["GET"]),
    Route("/contacts/{id}", page(contact_page), methods=["GET"]),
    *campaign_pages.routes,
    *admin_pages.routes,
    *simulator_page.routes,
    Mount("/static", CachedStaticFiles(directory=STATIC_DIR), name="static"),
]
