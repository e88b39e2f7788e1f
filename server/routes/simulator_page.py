"""The simulator's "text in" phone: an admin plays any phone texting any of our numbers.

Only in simulator mode (no Twilio credentials) and only for admins, since the fake phone shows
what was sent to a number whatever inbox it went through. A text goes in the way Twilio would
send it: a signed webhook to `PUBLIC_URL/twilio/messages` (the simulator's `text_in`), so it
takes the real path — routing, opt-out keywords, events — and replies show up on the phone
live, through the same events the inboxes get.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.deps import app_state, json_body, require_admin
from server.errors import ApiError, invalid, not_found
from server.page_shell import NotFoundPage, Viewer, page, render
from server.phones import InvalidPhone, to_e164
from server.queries import visible_inboxes
from server.serializers import message_json
from server.twilio.simulator import text_in
from store.models import Message, PhoneNumber

MAX_BODY = 1600
THREAD_LIMIT = 200


def _phone(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"{field} must be a phone number", field=field)
    try:
        return to_e164(value)
    except InvalidPhone:
        raise invalid(f"{field} is not a phone number", field=field) from None


async def _thread(session: AsyncSession, phone: str, number: str) -> list[dict[str, Any]]:
    """Every message between the fake phone and one of our numbers, oldest first."""
    stmt = (
        select(Message)
        .where(
            or_(
                and_(Message.from_number == phone, Message.to_number == number),
                and_(Message.from_number == number, Message.to_number == phone),
            )
        )
        .order_by(Message.id.desc())
        .limit(THREAD_LIMIT)
    )
    return [message_json(m) for m in reversed((await session.scalars(stmt)).all())]


async def phone_page(request: Request, viewer: Viewer, session: AsyncSession) -> Response:
    if not app_state(request).settings.simulator:
        raise NotFoundPage
    inboxes = {i["id"]: i["name"] for i in await visible_inboxes(session, viewer.user)}
    numbers = [
        {"number": n.number, "inbox": inboxes.get(n.inbox_id) if n.inbox_id else None}
        for n in (await session.scalars(select(PhoneNumber).order_by(PhoneNumber.number))).all()
    ]
    phone = "+1202555" + f"{secrets.randbelow(10000):04d}"
    context = {"page": "simulator", "numbers": numbers, "phone": phone}
    return await render(request, viewer, session, "simulator.html", context)


def _simulator_only(request: Request) -> None:
    if not app_state(request).settings.simulator:
        raise not_found("page")


async def thread(request: Request) -> Response:
    """`GET /simulator/thread?phone=&number=`: what the fake phone shows."""
    _simulator_only(request)
    await require_admin(request)
    phone = _phone(request.query_params.get("phone"), "phone")
    number = _phone(request.query_params.get("number"), "number")
    async with app_state(request).reading() as session:
        items = await _thread(session, phone, number)
    return JSONResponse({"phone": phone, "number": number, "items": items})


async def send(request: Request) -> Response:
    """`POST /simulator/messages {"phone","number","body"}`: the fake phone texts our number."""
    _simulator_only(request)
    await require_admin(request)
    data = await json_body(request)
    phone = _phone(data.get("phone"), "phone")
    number = _phone(data.get("number"), "number")
    body = data.get("body")
    if not isinstance(body, str) or not body.strip() or len(body) > MAX_BODY:
        raise invalid(f"body must be 1 to {MAX_BODY} characters", field="body")
    settings = app_state(request).settings
    try:
        answer = await text_in(settings, from_=phone, to=number, body=body)
    except httpx.HTTPError:
        raise ApiError(502, "unreachable", f"could not reach {settings.public_base}") from None
    if answer.status_code != 200:
        raise ApiError(502, "webhook_failed", f"the webhook answered {answer.status_code}")
    return JSONResponse({"phone": phone, "number": number}, status_code=201)


routes: list[BaseRoute] = [
    Route("/simulator", page(phone_page, admin=True), methods=["GET"]),
    Route("/simulator/thread", thread, methods=["GET"]),
    Route("/simulator/messages", send, methods=["POST"]),
]
