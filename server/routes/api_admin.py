"""Admin routes under `/api/v1`: messaging services, phone numbers and routing, inboxes,
memberships and users. Every one answers 403 to staff before it looks at anything else."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server import queries
from server.deps import app_state, json_body, path_id, require_admin
from server.errors import invalid
from server.phones import InvalidPhone, to_e164
from server.routes.api_common import PREFIX, answer, no_content, read_answer
from server.routes.api_input import MISSING, Fields, paging, query_text
from server.serializers import inbox_json, messaging_service_json, phone_number_json, user_json
from server.services import admin
from store.ids import parse_id

SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
NUMBER_SID = re.compile(r"PN[0-9a-fA-F]{32}")
MAX_NOTIFY_DELAY = 7 * 24 * 3600
MAX_NOTIFY_ADDRESSES = 50


def _sid(fields: Fields, pattern: re.Pattern[str], prefix: str, required: bool = True) -> Any:
    sid = fields.text("sid", max_length=34, required=required)
    if sid is not MISSING and not pattern.fullmatch(sid):
        raise invalid(
            f"sid must be {prefix} and 32 hexadecimal digits (0-9, a-f), as Twilio's console "
            "shows it",
            field="sid",
        )
    return sid


def _query_id(request: Request, name: str) -> int | None:
    raw = query_text(request, name, max_length=20)
    if raw is None:
        return None
    number = parse_id(raw)
    if number is None:
        raise invalid(f"{name} must be an id", field=name)
    return number


# --- messaging services ------------------------------------------------------------------------


async def list_messaging_services(request: Request) -> Response:
    user = await require_admin(request)
    page = paging(request)
    return await read_answer(request, lambda s: queries.list_messaging_services(s, user, **page))


async def create_messaging_service(request: Request) -> Response:
    await require_admin(request)
    fields = Fields(await json_body(request), ("name", "sid", "purpose"))
    name = fields.text("name")
    sid = _sid(fields, SERVICE_SID, "MG")
    purpose = fields.choice("purpose", admin.PURPOSES)
    async with app_state(request).transaction() as session:
        service = await admin.create_messaging_service(session, name=name, sid=sid, purpose=purpose)
    return answer(messaging_service_json(service), 201)


async def update_messaging_service(request: Request) -> Response:
    await require_admin(request)
    service_id = path_id(request)
    fields = Fields(await json_body(request), ("name", "sid"))
    name = fields.text("name", required=False)
    sid = _sid(fields, SERVICE_SID, "MG", required=False)
    async with app_state(request).transaction() as session:
        service = await admin.update_messaging_service(
            session,
            service_id,
            name=None if name is MISSING else name,
            sid=None if sid is MISSING else sid,
        )
    return answer(messaging_service_json(service))


# --- phone numbers -----------------------------------------------------------------------------


async def list_phone_numbers(request: Request) -> Response:
    user = await require_admin(request)
    filters = {
        "inbox_id": _query_id(request, "inbox_id"),
        "messaging_service_id": _query_id(request, "messaging_service_id"),
        **paging(request),
    }
    return await read_answer(request, lambda s: queries.list_phone_numbers(s, user, **filters))


def _routed_number(number: Any, warnings: list[dict[str, Any]]) -> dict[str, Any]:
    return {**phone_number_json(number), "warnings": warnings}


async def create_phone_number(request: Request) -> Response:
    await require_admin(request)
    fields = Fields(await json_body(request), ("number", "sid", "messaging_service_id", "inbox_id"))
    try:
        number = to_e164(fields.text("number", max_length=40))
    except InvalidPhone as exc:
        raise invalid(str(exc), field="number") from None
    sid = _sid(fields, NUMBER_SID, "PN")
    service_id = fields.object_id("messaging_service_id")
    inbox_id = fields.object_id("inbox_id", required=False, nullable=True)
    async with app_state(request).transaction() as session:
        row, warnings = await admin.create_phone_number(
            session,
            number=number,
            sid=sid,
            messaging_service_id=service_id,
            inbox_id=None if inbox_id is MISSING else inbox_id,
        )
    return answer(_routed_number(row, warnings), 201)


async def update_phone_number(request: Request) -> Response:
    await require_admin(request)
    number_id = path_id(request)
    fields = Fields(await json_body(request), ("inbox_id",))
    inbox_id = fields.object_id("inbox_id", nullable=True)
    async with app_state(request).transaction() as session:
        row, warnings = await admin.route_phone_number(session, number_id, inbox_id)
    return answer(_routed_number(row, warnings))


async def delete_phone_number(request: Request) -> Response:
    await require_admin(request)
    number_id = path_id(request)
    async with app_state(request).transaction() as session:
        await admin.remove_phone_number(session, number_id)
    return no_content()


# --- inboxes and members -----------------------------------------------------------------------


def _notifications(value: dict[str, Any]) -> dict[str, Any]:
    fields = Fields(value, ("enabled", "delay_seconds", "to"))
    settings: dict[str, Any] = {}
    enabled = fields.boolean("enabled", required=False)
    if enabled is not MISSING:
        settings["enabled"] = enabled
    delay = fields.integer("delay_seconds", required=False, maximum=MAX_NOTIFY_DELAY)
    if delay is not MISSING:
        settings["delay_seconds"] = delay
    if fields.has("to"):
        settings["to"] = _recipients(fields.data["to"])
    return settings


def _recipients(value: Any) -> str | list[str]:
    if value == "members":
        return value
    if not isinstance(value, list) or not value:
        raise invalid(
            'notifications.to must be "members" or a list of email addresses',
            field="notifications.to",
        )
    if len(value) > MAX_NOTIFY_ADDRESSES:
        raise invalid(
            f"notifications.to: at most {MAX_NOTIFY_ADDRESSES} addresses",
            field="notifications.to",
        )
    addresses: list[str] = []
    for item in value:
        address = item.strip() if isinstance(item, str) else item
        if (
            not isinstance(address, str)
            or len(address) > 320
            or not re.fullmatch(r"[^@\s,<>]+@[^@\s,<>]+", address)
        ):
            raise invalid(f"not an email address: {item!r}", field="notifications.to")
        addresses.append(address)
    return addresses


async def create_inbox(request: Request) -> Response:
    await require_admin(request)
    fields = Fields(await json_body(request), ("name",))
    name = fields.text("name")
    async with app_state(request).transaction() as session:
        inbox = await admin.create_inbox(session, name=name)
    return answer({**inbox_json(inbox, 0), "warnings": []}, 201)


async def update_inbox(request: Request) -> Response:
    user = await require_admin(request)
    inbox_id = path_id(request)
    fields = Fields(await json_body(request), ("name", "notifications"))
    name = fields.text("name", required=False)
    notifications = fields.mapping("notifications")
    state = app_state(request)
    async with state.transaction() as session:
        await admin.update_inbox(
            session,
            inbox_id,
            name=None if name is MISSING else name,
            notifications=None if notifications is MISSING else _notifications(notifications),
        )
        inbox = await queries.get_inbox(session, user, inbox_id)
    return answer(inbox)


async def delete_inbox(request: Request) -> Response:
    await require_admin(request)
    inbox_id = path_id(request)
    state = app_state(request)
    async with state.transaction() as session:
        await admin.delete_inbox(state, session, inbox_id)
    return no_content()


async def list_members(request: Request) -> Response:
    user = await require_admin(request)
    inbox_id = path_id(request)
    return await read_answer(
        request,
        lambda s: queries.inbox_members(s, user, inbox_id),
    )


async def put_member(request: Request) -> Response:
    await require_admin(request)
    inbox_id, user_id = path_id(request), path_id(request, "user_id")
    state = app_state(request)
    async with state.transaction() as session:
        created = await admin.add_member(state, session, inbox_id, user_id)
    return answer({"inbox_id": inbox_id, "user_id": user_id}, 201 if created else 200)


async def delete_member(request: Request) -> Response:
    await require_admin(request)
    inbox_id, user_id = path_id(request), path_id(request, "user_id")
    state = app_state(request)
    async with state.transaction() as session:
        await admin.remove_member(state, session, inbox_id, user_id)
    return no_content()


# --- users -------------------------------------------------------------------------------------


def _new_password(fields: Fields, required: bool) -> Any:
    value = fields.data.get("password", MISSING)
    if value is MISSING:
        if required:
            raise invalid("password is required", field="password")
        return value
    if not isinstance(value, str) or not admin.MIN_PASSWORD <= len(value) <= 1024:
        raise invalid(
            f"password must be a string of {admin.MIN_PASSWORD} to 1024 characters",
            field="password",
        )
    return value


def _email(fields: Fields) -> str:
    email = fields.text("email", max_length=320)
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
        raise invalid("email must be an email address", field="email")
    return email.lower()


async def list_users(request: Request) -> Response:
    user = await require_admin(request)
    page = paging(request)
    return await read_answer(request, lambda s: queries.list_users(s, user, **page))


async def create_user(request: Request) -> Response:
    await require_admin(request)
    fields = Fields(await json_body(request), ("email", "password", "name", "role"))
    email = _email(fields)
    password = _new_password(fields, required=True)
    name = fields.text("name", required=False, blank=True)
    role = fields.choice("role", admin.ROLES, required=False)
    async with app_state(request).transaction() as session:
        user = await admin.create_user(
            session,
            email=email,
            password=password,
            name="" if name is MISSING else name,
            role="staff" if role is MISSING else role,
        )
    return answer(user_json(user), 201)


async def get_user(request: Request) -> Response:
    await require_admin(request)
    user_id = path_id(request)

    async def read(session: AsyncSession) -> dict[str, Any]:
        return user_json(await admin.get_user(session, user_id))

    return await read_answer(request, read)


async def update_user(request: Request) -> Response:
    await require_admin(request)
    user_id = path_id(request)
    fields = Fields(await json_body(request), ("name", "role", "active", "password"))
    name = fields.text("name", required=False, blank=True)
    role = fields.choice("role", admin.ROLES, required=False)
    active = fields.boolean("active", required=False)
    password = _new_password(fields, required=False)
    state = app_state(request)
    async with state.transaction() as session:
        user = await admin.update_user(
            state,
            session,
            user_id,
            name=None if name is MISSING else name,
            role=None if role is MISSING else role,
            active=None if active is MISSING else active,
            password=None if password is MISSING else password,
        )
    return answer(user_json(user))


routes: list[BaseRoute] = [
    Route(f"{PREFIX}/messaging-services", list_messaging_services, methods=["GET"]),
    Route(f"{PREFIX}/messaging-services", create_messaging_service, methods=["POST"]),
    Route(f"{PREFIX}/phone-numbers", list_phone_numbers, methods=["GET"]),
    Route(f"{PREFIX}/phone-numbers", create_phone_number, methods=["POST"]),
    Route(f"{PREFIX}/messaging-services/{{id}}", update_messaging_service, methods=["PATCH"]),
    Route(f"{PREFIX}/phone-numbers/{{id}}", update_phone_number, methods=["PATCH"]),
    Route(f"{PREFIX}/phone-numbers/{{id}}", delete_phone_number, methods=["DELETE"]),
    Route(f"{PREFIX}/inboxes", create_inbox, methods=["POST"]),
    Route(f"{PREFIX}/inboxes/{{id}}", update_inbox, methods=["PATCH"]),
    Route(f"{PREFIX}/inboxes/{{id}}", delete_inbox, methods=["DELETE"]),
    Route(f"{PREFIX}/inboxes/{{id}}/members", list_members, methods=["GET"]),
    Route(f"{PREFIX}/inboxes/{{id}}/members/{{user_id}}", put_member, methods=["PUT"]),
    Route(f"{PREFIX}/inboxes/{{id}}/members/{{user_id}}", delete_member, methods=["DELETE"]),
    Route(f"{PREFIX}/users", list_users, methods=["GET"]),
    Route(f"{PREFIX}/users", create_user, methods=["POST"]),
    Route(f"{PREFIX}/users/{{id}}", get_user, methods=["GET"]),
    Route(f"{PREFIX}/users/{{id}}", update_user, methods=["PATCH"]),
]
