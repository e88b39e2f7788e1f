"""The two send routes of the HTTP API: a quick message in a thread, and from a contact record."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.access import conversation_for, inbox_for
from server.deps import app_state, current_user, json_body, path_id
from server.errors import invalid, not_found
from server.serializers import message_json
from server.services.contact_records import may_text
from server.services.outbound import check_body, send_message, send_to_contact
from store.ids import is_id
from store.models import Contact


async def conversation_messages(request: Request) -> JSONResponse:
    """`POST /api/v1/conversations/{id}/messages {"body"}` → 201 with the message."""
    user = await current_user(request)
    conversation_id = path_id(request)
    data = await json_body(request)
    state = app_state(request)
    async with state.reading() as session:
        await conversation_for(session, user, conversation_id)
    body = check_body(data.get("body"))
    message = await send_message(state, conversation_id=conversation_id, body=body, sent_by=user.id)
    return JSONResponse(message_json(message), 201)


async def contact_messages(request: Request) -> JSONResponse:
    """`POST /api/v1/contacts/{id}/messages {"inbox_id","body"}` → 201 with the message."""
    user = await current_user(request)
    contact_id = path_id(request)
    data = await json_body(request)
    inbox_id = data.get("inbox_id")
    if not is_id(inbox_id):
        raise invalid("inbox_id must be the id of an inbox", field="inbox_id")
    state = app_state(request)
    async with state.reading() as session:
        await inbox_for(session, user, inbox_id)
        known = await session.get(Contact, contact_id) is not None
        if not known or not await may_text(session, user, contact_id):
            raise not_found("contact")
    body = check_body(data.get("body"))
    message = await send_to_contact(
        state, contact_id=contact_id, inbox_id=inbox_id, body=body, sent_by=user.id
    )
    return JSONResponse(message_json(message), 201)


routes: list[BaseRoute] = [
    Route("/api/v1/conversations/{id}/messages", conversation_messages, methods=["POST"]),
    Route("/api/v1/contacts/{id}/messages", contact_messages, methods=["POST"]),
]
