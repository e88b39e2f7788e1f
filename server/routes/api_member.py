"""Member routes under `/api/v1`: inboxes, conversations, threads, read markers and contacts.

Anything outside the caller's inboxes answers 404 and shows nothing of itself.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server import queries
from server.deps import app_state, current_user, json_body, path_id
from server.errors import invalid
from server.phones import InvalidPhone, to_e164
from server.routes.api_common import PREFIX, answer, read_answer
from server.routes.api_input import MISSING, Fields, paging, query_limit, query_text
from server.serializers import contact_json
from server.services import contact_rules
from server.services.contact_records import create_contact as create_contact_row
from server.services.contact_records import update_contact as update_contact_row
from server.services.read_state import mark_read


async def list_inboxes(request: Request) -> Response:
    user = await current_user(request)
    return await read_answer(request, lambda s: queries.visible_inboxes(s, user))


async def get_inbox(request: Request) -> Response:
    user = await current_user(request)
    inbox_id = path_id(request)
    return await read_answer(request, lambda s: queries.get_inbox(s, user, inbox_id))


async def list_conversations(request: Request) -> Response:
    user = await current_user(request)
    inbox_id = path_id(request)
    options = {"filter": query_text(request, "filter") or "all", **paging(request)}
    return await read_answer(
        request, lambda s: queries.list_conversations(s, user, inbox_id, **options)
    )


async def get_conversation(request: Request) -> Response:
    user = await current_user(request)
    conversation_id = path_id(request)
    return await read_answer(request, lambda s: queries.get_conversation(s, user, conversation_id))


async def list_messages(request: Request) -> Response:
    user = await current_user(request)
    conversation_id = path_id(request)
    # `cursor` is accepted too, so a client can follow `next_cursor` the same way everywhere.
    before = queries.parse_before(query_text(request, "before") or query_text(request, "cursor"))
    limit = query_limit(request)
    return await read_answer(
        request,
        lambda s: queries.list_messages(s, user, conversation_id, before=before, limit=limit),
    )


async def read_conversation(request: Request) -> Response:
    """Move my read marker forward to `message_id` (default: the newest message)."""
    user = await current_user(request)
    conversation_id = path_id(request)
    body = await json_body(request, optional=True)
    message_id = Fields(body, ("message_id",)).object_id("message_id", required=False)
    async with app_state(request).transaction() as session:
        result = await mark_read(
            session, user, conversation_id, None if message_id is MISSING else message_id
        )
    return answer(result.json())


async def list_contacts(request: Request) -> Response:
    user = await current_user(request)
    q, page = query_text(request, "q"), paging(request)
    return await read_answer(request, lambda s: queries.search_contacts(s, user, q, **page))


def _contact_fields(value: Any) -> dict[str, Any]:
    """Free contact fields: names usable as merge fields, scalar values."""
    if value is MISSING or value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid("fields must be an object of field values", field="fields")
    problem = contact_rules.fields_problem(value)
    if problem:
        where, what = problem
        raise invalid(what, field=where)
    return value


# A contact's texts and their longest lengths.
CONTACT_TEXTS = {"first_name": 200, "last_name": 200, "email": 320}


def _contact_texts(fields: Fields, names: list[str]) -> dict[str, str]:
    """Those of a contact's names and email, stripped (absent or null is ""), the email
    checked."""
    texts = {}
    for name in names:
        value = fields.text(
            name, required=False, blank=True, nullable=True, max_length=CONTACT_TEXTS[name]
        )
        texts[name] = "" if value is MISSING or value is None else value
    problem = contact_rules.email_problem(texts.get("email", ""))
    if problem:
        raise invalid(problem, field="email")
    return texts


async def create_contact(request: Request) -> Response:
    user = await current_user(request)
    fields = Fields(
        await json_body(request), ("phone", "first_name", "last_name", "email", "fields")
    )
    try:
        phone = to_e164(fields.text("phone", max_length=40))
    except InvalidPhone as exc:
        raise invalid(str(exc), field="phone") from None
    texts = _contact_texts(fields, list(CONTACT_TEXTS))
    extra = _contact_fields(fields.data.get("fields", MISSING))
    state = app_state(request)
    async with state.transaction() as session:
        contact = await create_contact_row(session, user, phone=phone, **texts, fields=extra)
    return answer(contact_json(contact), 201)


async def update_contact(request: Request) -> Response:
    """Change a contact's names, email or fields (`fields` replaces them all); anyone who may
    see the contact may, and the inboxes that talk with it see the change live."""
    user = await current_user(request)
    contact_id = path_id(request)
    fields = Fields(await json_body(request), ("first_name", "last_name", "email", "fields"))
    changes: dict[str, Any] = _contact_texts(
        fields, [name for name in CONTACT_TEXTS if fields.has(name)]
    )
    if fields.has("fields"):
        changes["fields"] = _contact_fields(fields.data["fields"])
    if not changes:
        raise invalid("give first_name, last_name, email or fields to change")
    async with app_state(request).transaction() as session:
        contact = await queries.contact_for(session, user, contact_id)
        await update_contact_row(session, contact, changes)
        return answer(contact_json(contact))


async def get_contact(request: Request) -> Response:
    user = await current_user(request)
    contact_id = path_id(request)
    return await read_answer(request, lambda s: queries.get_contact(s, user, contact_id))


routes: list[BaseRoute] = [
    Route(f"{PREFIX}/inboxes", list_inboxes, methods=["GET"]),
    Route(f"{PREFIX}/inboxes/{{id}}", get_inbox, methods=["GET"]),
    Route(f"{PREFIX}/inboxes/{{id}}/conversations", list_conversations, methods=["GET"]),
    Route(f"{PREFIX}/conversations/{{id}}", get_conversation, methods=["GET"]),
    Route(f"{PREFIX}/conversations/{{id}}/messages", list_messages, methods=["GET"]),
    Route(f"{PREFIX}/conversations/{{id}}/read", read_conversation, methods=["POST"]),
    Route(f"{PREFIX}/contacts", list_contacts, methods=["GET"]),
    Route(f"{PREFIX}/contacts", create_contact, methods=["POST"]),
    Route(f"{PREFIX}/contacts/{{id}}", get_contact, methods=["GET"]),
    Route(f"{PREFIX}/contacts/{{id}}", update_contact, methods=["PATCH"]),
]
