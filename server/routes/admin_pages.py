"""Admin pages: inboxes (members, notifications), messaging services, phone numbers, users.

They read through the same admin queries as the API and write through the API (the page
script sends each form as JSON with the CSRF token), so the rules live in one place. Staff who
open one get the "admins only" page.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from server import queries
from server.page_shell import NotFoundPage, Viewer, page, path_id, render
from store.models import InboxMember

LIMIT = queries.MAX_LIMIT


async def _services(session: AsyncSession, viewer: Viewer) -> list[dict[str, Any]]:
    return (await queries.list_messaging_services(session, viewer.user, limit=LIMIT)).items


async def _numbers(session: AsyncSession, viewer: Viewer) -> list[dict[str, Any]]:
    found = await queries.list_phone_numbers(session, viewer.user, limit=LIMIT)
    return sorted(found.items, key=lambda n: n["number"])


async def _users(session: AsyncSession, viewer: Viewer) -> list[dict[str, Any]]:
    users = (await queries.list_users(session, viewer.user, limit=LIMIT)).items
    return sorted(users, key=lambda u: (not u["active"], (u["name"] or u["email"]).lower()))


async def _memberships(session: AsyncSession) -> dict[int, list[int]]:
    """Inbox id → ids of its members."""
    members: dict[int, list[int]] = defaultdict(list)
    for inbox_id, user_id in await session.execute(
        select(InboxMember.inbox_id, InboxMember.user_id)
    ):
        members[inbox_id].append(user_id)
    return members


def _admin_context(section: str, **extra: Any) -> dict[str, Any]:
    return {"page": f"admin-{section}", "admin_section": section, **extra}


async def admin_home(request: Request) -> Response:
    return RedirectResponse("/admin/inboxes", status_code=307)


async def inboxes_page(request: Request, viewer: Viewer, session: AsyncSession) -> Response:
    inboxes = await queries.visible_inboxes(session, viewer.user)
    numbers = await _numbers(session, viewer)
    by_inbox: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for number in numbers:
        if number["inbox_id"] is not None:
            by_inbox[number["inbox_id"]].append(number)
    users = {u["id"]: u for u in await _users(session, viewer)}
    members = await _memberships(session)
    context = _admin_context(
        "inboxes",
        inboxes=inboxes,
        numbers_by_inbox=by_inbox,
        unrouted_numbers=[n for n in numbers if n["inbox_id"] is None],
        members={iid: [users[uid] for uid in ids if uid in users] for iid, ids in members.items()},
    )
    return await render(request, viewer, session, "admin/inboxes.html", context)


async def inbox_page(request: Request, viewer: Viewer, session: AsyncSession) -> Response:
    inbox_id = path_id(request)
    inbox = await queries.get_inbox(session, viewer.user, inbox_id)
    members = await queries.inbox_members(session, viewer.user, inbox_id)
    member_ids = {m["id"] for m in members}
    services = {s["id"]: s for s in await _services(session, viewer)}
    everything = await _numbers(session, viewer)
    numbers = [
        n for n in everything if n["inbox_id"] == (None if inbox["is_unrouted"] else inbox_id)
    ]
    context = _admin_context(
        "inboxes",
        inbox=inbox,
        members=members,
        candidates=[
            u for u in await _users(session, viewer) if u["active"] and u["id"] not in member_ids
        ],
        numbers=numbers,
        services=services,
        conversations=await queries.conversation_count(session, inbox_id),
    )
    return await render(request, viewer, session, "admin/inbox.html", context)


async def services_page(request: Request, viewer: Viewer, session: AsyncSession) -> Response:
    services = await _services(session, viewer)
    numbers = await _numbers(session, viewer)
    inboxes = {i["id"]: i for i in await queries.visible_inboxes(session, viewer.user)}
    usage: dict[int, dict[str, Any]] = {
        s["id"]: {"numbers": 0, "inboxes": set(), "mixed": False} for s in services
    }
    for number in numbers:
        service_id = number["messaging_service_id"]
        entry = usage.get(service_id)
        if entry is None:
            continue
        entry["numbers"] += 1
        inbox = inboxes.get(number["inbox_id"])
        if inbox is not None:
            entry["inboxes"].add(inbox["name"])
            warned = [w.get("messaging_service_id") for w in inbox.get("warnings", [])]
            entry["mixed"] = entry["mixed"] or service_id in warned
    context = _admin_context(
        "services",
        services=sorted(services, key=lambda s: s["name"].lower()),
        usage={sid: {**u, "inboxes": sorted(u["inboxes"])} for sid, u in usage.items()},
    )
    return await render(request, viewer, session, "admin/services.html", context)


async def numbers_page(request: Request, viewer: Viewer, session: AsyncSession) -> Response:
    inboxes = await queries.visible_inboxes(session, viewer.user)
    context = _admin_context(
        "numbers",
        numbers=await _numbers(session, viewer),
        services={s["id"]: s for s in await _services(session, viewer)},
        inboxes=[i for i in inboxes if not i["is_unrouted"]],
        warnings={i["id"]: i.get("warnings", []) for i in inboxes},
    )
    return await render(request, viewer, session, "admin/numbers.html", context)


async def users_page(request: Request, viewer: Viewer, session: AsyncSession) -> Response:
    inboxes = {i["id"]: i["name"] for i in await queries.visible_inboxes(session, viewer.user)}
    user_inboxes: dict[int, list[str]] = defaultdict(list)
    for inbox_id, user_ids in (await _memberships(session)).items():
        for user_id in user_ids:
            if inbox_id in inboxes:
                user_inboxes[user_id].append(inboxes[inbox_id])
    context = _admin_context(
        "users",
        users=await _users(session, viewer),
        user_inboxes={uid: sorted(names) for uid, names in user_inboxes.items()},
    )
    return await render(request, viewer, session, "admin/users.html", context)


async def _missing(request: Request, viewer: Viewer, session: AsyncSession) -> Response:
    raise NotFoundPage


routes: list[BaseRoute] = [
    Route("/admin", admin_home, methods=["GET"]),
    Route("/admin/inboxes", page(inboxes_page, admin=True), methods=["GET"]),
    Route("/admin/inboxes/{id}", page(inbox_page, admin=True), methods=["GET"]),
    Route("/admin/services", page(services_page, admin=True), methods=["GET"]),
    Route("/admin/numbers", page(numbers_page, admin=True), methods=["GET"]),
    Route("/admin/users", page(users_page, admin=True), methods=["GET"]),
    Route("/admin/{rest:path}", page(_missing, admin=True), methods=["GET"]),
]
