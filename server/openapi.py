"""The OpenAPI 3.1 description served at `/openapi.json`, kept by hand next to the routes.

`tests/api/test_openapi.py` compares it with the app's route table both ways, so a route added
without a description here (or a description left behind by a removed route) fails the tests.
"""

from __future__ import annotations

import copy
from typing import Any

JSON = "application/json"

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: tuple[str, ...] = (), **properties: Schema) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def page_of(name: str) -> Schema:
    return obj(
        ("items", "next_cursor"),
        items={"type": "array", "items": ref(name)},
        next_cursor=nullable({"type": "string"}),
    )


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
TIME = {"type": "string", "format": "date-time"}
ID = {"type": "integer", "minimum": 1}

SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        ("error", "detail"),
        error={"type": "string", "description": "a stable code, e.g. not_found, invalid"},
        detail=STRING,
        field={"type": "string", "description": "the offending field (422, 409)"},
    ),
    "User": obj(
        ("id", "email", "name", "role", "active"),
        id=ID,
        email=STRING,
        name=STRING,
        role={"enum": ["admin", "staff"]},
        active=BOOLEAN,
        created_at=TIME,
    ),
    "Login": obj(("email", "password"), email=STRING, password=STRING),
    "Session": obj(
        ("token", "user", "csrf_token"),
        token={"type": "string", "description": "the bearer token (also set as sb_session)"},
        user=ref("User"),
        csrf_token={"type": "string", "description": "send as X-CSRF-Token on cookie writes"},
    ),
    "Me": obj(("user", "csrf_token"), user=ref("User"), csrf_token=STRING),
    "Warning": obj(
        ("code", "detail"),
        code={"type": "string", "description": "mixed_purpose: an inbox uses a blast service"},
        detail=STRING,
        messaging_service_id=ID,
    ),
    "Notifications": obj(
        (),
        enabled=BOOLEAN,
        delay_seconds={"type": "integer", "minimum": 0, "maximum": 7 * 24 * 3600},
        to={
            "anyOf": [
                {"const": "members"},
                {"type": "array", "items": {"type": "string", "format": "email"}},
            ]
        },
    ),
    "Inbox": obj(
        ("id", "name", "is_unrouted", "notifications"),
        id=ID,
        name=STRING,
        is_unrouted=BOOLEAN,
        notifications=ref("Notifications"),
        unread_count={"type": "integer", "description": "conversations unread by me"},
        warnings={"type": "array", "items": ref("Warning"), "description": "admins only"},
        created_at=TIME,
    ),
    "InboxInput": obj(("name",), name=STRING),
    "InboxPatch": obj((), name=STRING, notifications=ref("Notifications")),
    "Membership": obj(("inbox_id", "user_id"), inbox_id=ID, user_id=ID),
    "MessagingService": obj(
        ("id", "sid", "name", "purpose"),
        id=ID,
        sid=STRING,
        name=STRING,
        purpose={"enum": ["one_to_one", "blast"]},
        created_at=TIME,
    ),
    "MessagingServiceInput": obj(
        ("name", "sid", "purpose"),
        name=STRING,
        sid={"type": "string", "pattern": "^MG[0-9a-fA-F]{32}$"},
        purpose={"enum": ["one_to_one", "blast"]},
    ),
    "MessagingServicePatch": obj(
        (),
        name=STRING,
        sid={"type": "string", "pattern": "^MG[0-9a-fA-F]{32}$"},
    ),
    "PhoneNumber": obj(
        ("id", "sid", "number", "messaging_service_id", "inbox_id"),
        id=ID,
        sid=STRING,
        number={"type": "string", "description": "E.164"},
        messaging_service_id=ID,
        inbox_id=nullable(ID),
        warnings={"type": "array", "items": ref("Warning")},
        created_at=TIME,
    ),
    "PhoneNumberInput": obj(
        ("number", "sid", "messaging_service_id"),
        number=STRING,
        sid={"type": "string", "pattern": "^PN[0-9a-fA-F]{32}$"},
        messaging_service_id=ID,
        inbox_id=nullable(ID),
    ),
    "PhoneNumberPatch": obj(("inbox_id",), inbox_id=nullable(ID)),
    "UserInput": obj(
        ("email", "password"),
        email=STRING,
        password={"type": "string", "minLength": 8},
        name=STRING,
        role={"enum": ["admin", "staff"]},
    ),
    "UserPatch": obj(
        (),
        name=STRING,
        role={"enum": ["admin", "staff"]},
        active=BOOLEAN,
        password={"type": "string", "minLength": 8},
    ),
    "Contact": obj(
        ("id", "phone", "first_name", "last_name", "name", "email", "fields"),
        id=ID,
        phone={"type": "string", "description": "E.164"},
        first_name=STRING,
        last_name=STRING,
        name=STRING,
        email=STRING,
        fields={"type": "object"},
        created_at=TIME,
    ),
    "ContactInput": obj(
        ("phone",),
        phone=STRING,
        first_name=STRING,
        last_name=STRING,
        email=STRING,
        fields={"type": "object"},
    ),
    "ContactChange": obj(
        (),
        first_name=STRING,
        last_name=STRING,
        email=STRING,
        fields={"type": "object"},
    ),
    "OptOutState": obj(
        ("messaging_service_id", "opted_out", "source"),
        messaging_service_id=ID,
        messaging_service_name=STRING,
        opted_out=BOOLEAN,
        source={"enum": ["keyword", "opt_out_type", "error_21610", "staff"]},
        updated_at=TIME,
    ),
    "ContactRecord": {
        "allOf": [
            ref("Contact"),
            obj(
                ("conversations", "opt_outs"),
                conversations={"type": "array", "items": ref("Conversation")},
                opt_outs={"type": "array", "items": ref("OptOutState")},
            ),
        ]
    },
    "Message": obj(
        (
            "id",
            "conversation_id",
            "direction",
            "tag",
            "body",
            "status",
            "error_code",
            "from",
            "to",
            "twilio_sid",
            "sent_by",
            "created_at",
        ),
        id=ID,
        conversation_id=ID,
        direction={"enum": ["inbound", "outbound"]},
        tag={"enum": ["inbound", "quick", "campaign"]},
        body=STRING,
        status=STRING,
        error_code=nullable(STRING),
        error_message=nullable(STRING),
        **{"from": STRING, "to": STRING},
        twilio_sid=nullable(STRING),
        sent_by=nullable(ID),
        campaign_id=nullable(ID),
        segments=INTEGER,
        opt_change=nullable({"enum": ["opted_out", "opted_in"]}),
        created_at=TIME,
        updated_at=TIME,
    ),
    "Conversation": obj(
        ("id", "inbox_id", "contact", "last_message", "unread_count"),
        id=ID,
        inbox_id=ID,
        contact=ref("Contact"),
        last_message=nullable(ref("Message")),
        last_message_at=TIME,
        unread_count={"type": "integer", "description": "inbound messages after my marker"},
        created_at=TIME,
    ),
    "MessageInput": obj(("body",), body={"type": "string", "minLength": 1, "maxLength": 1600}),
    "ContactMessageInput": obj(
        ("inbox_id", "body"),
        inbox_id={**ID, "description": "the inbox to send from (one of yours)"},
        body={"type": "string", "minLength": 1, "maxLength": 1600},
    ),
    "TwilioForm": {
        "type": "object",
        "description": "Twilio's form fields (MessageSid, From, To, Body, MessageStatus, …)",
        "additionalProperties": {"type": "string"},
    },
    "CampaignCounts": obj(
        ("total", "sent", "delivered", "failed", "unknown", "skipped_opted_out", "replied"),
        total=INTEGER,
        sent=INTEGER,
        delivered=INTEGER,
        failed=INTEGER,
        unknown=INTEGER,
        skipped_opted_out=INTEGER,
        replied=INTEGER,
    ),
    "Campaign": obj(
        ("id", "name", "messaging_service_id", "body", "status", "counts"),
        id=ID,
        name=STRING,
        messaging_service_id=ID,
        body=STRING,
        status={"enum": ["draft", "scheduled", "sending", "paused", "done", "canceled"]},
        rate_per_second={"type": "number"},
        start_at=nullable(TIME),
        started_at=nullable(TIME),
        finished_at=nullable(TIME),
        from_number=nullable(STRING),
        counts=ref("CampaignCounts"),
        figures={"type": "object"},
        warnings={"type": "array", "items": {"type": "object"}},
    ),
    "CampaignInput": obj(
        ("name", "messaging_service_id", "body"),
        name=STRING,
        messaging_service_id={**ID, "description": "a blast messaging service"},
        body={"type": "string", "description": "merge fields: {first_name}, {last_name}, …"},
        contact_ids={"type": "array", "items": ID},
        recipients={
            "type": "array",
            "items": obj(
                ("phone",),
                phone=STRING,
                first_name=STRING,
                last_name=STRING,
                email=STRING,
                fields={},
            ),
        },
        filter={"type": "object"},
        csv={
            "type": "string",
            "description": "the text of a CSV file: a header row with a phone column",
        },
        rate_per_second={"type": "number", "exclusiveMinimum": 0},
        start_at=TIME,
    ),
    "RecipientsInput": {
        "type": "object",
        "description": "one of contact_ids, recipients, filter, csv (or a text/csv body, or a "
        "multipart upload with the CSV in `file`)",
    },
    "RecipientsAdded": obj(
        ("added", "already_recipients", "duplicates_merged", "total"),
        added=INTEGER,
        already_recipients=INTEGER,
        duplicates_merged=INTEGER,
        total=INTEGER,
    ),
    "SimulatorText": obj(
        ("phone", "number", "body"),
        phone={"type": "string", "description": "the fake phone texting in"},
        number={"type": "string", "description": "one of our numbers"},
        body=STRING,
    ),
    "ReadInput": obj((), message_id={**ID, "description": "default: the newest message"}),
    "ReadState": obj(
        ("conversation_id", "user_id", "message_id", "unread_count", "moved"),
        conversation_id=ID,
        user_id=ID,
        message_id=nullable(ID),
        unread_count=INTEGER,
        moved={"type": "boolean", "description": "false when the marker was already further"},
    ),
}

for _name in ("Inbox", "Conversation", "Message", "Contact", "User", "MessagingService"):
    SCHEMAS[f"{_name}Page"] = page_of(_name)
SCHEMAS["PhoneNumberPage"] = page_of("PhoneNumber")
SCHEMAS["CampaignPage"] = page_of("Campaign")

_ERRORS = {
    "400": "the body is not JSON",
    "401": "not signed in",
    "403": "not allowed (staff on an admin route), or a cookie write without X-CSRF-Token",
    "404": "no such object, or outside your inboxes",
    "409": "conflicts with existing data",
    "413": "the body is too large",
    "415": "the body is not application/json",
    "422": "invalid input; `field` names the offender",
    "429": "rate limited; see Retry-After",
}


def _param(name: str, where: str, schema: Schema, description: str = "") -> Schema:
    param: Schema = {"name": name, "in": where, "schema": schema, "required": where == "path"}
    if description:
        param["description"] = description
    return param


PATH_ID = _param("id", "path", ID)
CURSOR = _param("cursor", "query", STRING, "next_cursor of the previous page")
CONTACT_QUERY = _param("q", "query", STRING, "name, email or phone")
LIMIT = _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200})


def operation(
    summary: str,
    *,
    who: str,
    ok: tuple[int, str | Schema | None],
    body: str | None = None,
    params: tuple[Schema, ...] = (),
    errors: tuple[int, ...] = (),
    auth: bool = True,
    content_type: str = JSON,
) -> dict[str, Any]:
    """One operation; `who` is admin | member | public and picks the usual error answers."""
    status, schema = ok
    response: Schema = {"description": summary}
    if schema is not None:
        content = ref(schema) if isinstance(schema, str) else schema
        response["content"] = {content_type: {"schema": content}}
    codes = set(errors)
    if auth:
        codes |= {401}
    if who == "admin":
        codes |= {403}
    if body is not None:
        codes |= {400, 413, 415, 422}
    if any(p["in"] == "path" for p in params):
        codes |= {404}
    if any(p["in"] == "query" for p in params):
        codes |= {422}  # a malformed cursor, limit or filter
    responses: dict[str, Any] = {str(status): response}
    for code in sorted(codes):
        responses[str(code)] = {
            "description": _ERRORS.get(str(code), "error"),
            "content": {JSON: {"schema": ref("Error")}},
        }
    op: dict[str, Any] = {
        "summary": summary,
        "tags": [who],
        "parameters": list(params),
        "responses": responses,
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": ref(body)}}}
    if not auth:
        op["security"] = []
    return op


def also_ok(op: dict[str, Any], ok: int, status: int, description: str) -> dict[str, Any]:
    """`op`, also answering `status` with the body of its `ok` answer."""
    op["responses"][str(status)] = {**op["responses"][str(ok)], "description": description}
    return op


def _twilio(summary: str) -> dict[str, Any]:
    form = "application/x-www-form-urlencoded"
    return {
        "summary": summary,
        "tags": ["twilio"],
        "security": [],
        "parameters": [_param("X-Twilio-Signature", "header", STRING)],
        "requestBody": {"required": True, "content": {form: {"schema": ref("TwilioForm")}}},
        "responses": {
            "200": {
                "description": "empty TwiML",
                "content": {"text/xml": {"schema": {"type": "string"}}},
            },
            "403": {
                "description": "missing or wrong signature; nothing stored",
                "content": {JSON: {"schema": ref("Error")}},
            },
        },
    }


def _page(summary: str, who: str, params: tuple[Schema, ...] = ()) -> dict[str, Any]:
    """A server-rendered HTML page; signed in by cookie, else a redirect to the sign-in form."""
    html = {"text/html": {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {"200": {"description": summary, "content": html}}
    if who != "public":
        responses["303"] = {"description": "not signed in: to the sign-in form"}
    if who == "admin":
        responses["403"] = {"description": "staff on an admin page", "content": html}
    if params or who == "member":
        responses["404"] = {"description": "no such object or outside your inboxes"}
    return {
        "summary": summary,
        "tags": ["pages"],
        "parameters": list(params),
        "security": [{"cookie": []}] if who != "public" else [],
        "responses": responses,
    }


V1 = "/api/v1"
CAMPAIGN = f"{V1}/campaigns/{{id}}"

PATHS: dict[str, dict[str, Any]] = {
    f"{V1}/auth/login": {
        "post": operation(
            "Sign in: a new bearer token, the sb_session cookie and a CSRF token",
            who="public",
            body="Login",
            ok=(200, "Session"),
            errors=(401, 429),
            auth=False,
        )
    },
    f"{V1}/auth/logout": {
        "post": operation("Sign out: revoke this session", who="member", ok=(204, None))
    },
    f"{V1}/auth/me": {"get": operation("The signed-in user", who="member", ok=(200, "Me"))},
    f"{V1}/messaging-services": {
        "get": operation(
            "Messaging services",
            who="admin",
            params=(CURSOR, LIMIT),
            ok=(200, "MessagingServicePage"),
        ),
        "post": operation(
            "Add a messaging service",
            who="admin",
            body="MessagingServiceInput",
            ok=(201, "MessagingService"),
            errors=(409,),
        ),
    },
    f"{V1}/messaging-services/{{id}}": {
        "patch": operation(
            "Rename a messaging service or correct its SID (its purpose stays)",
            who="admin",
            params=(PATH_ID,),
            body="MessagingServicePatch",
            ok=(200, "MessagingService"),
            errors=(409,),
        )
    },
    f"{V1}/phone-numbers": {
        "get": operation(
            "Phone numbers",
            who="admin",
            params=(
                _param("inbox_id", "query", ID, "only numbers routed to this inbox"),
                _param("messaging_service_id", "query", ID),
                CURSOR,
                LIMIT,
            ),
            ok=(200, "PhoneNumberPage"),
        ),
        "post": operation(
            "Add a phone number, routed to an inbox or nowhere (warnings: mixed_purpose)",
            who="admin",
            body="PhoneNumberInput",
            ok=(201, "PhoneNumber"),
            errors=(409,),
        ),
    },
    f"{V1}/phone-numbers/{{id}}": {
        "patch": operation(
            "Route a number to an inbox (null: Unrouted)",
            who="admin",
            params=(PATH_ID,),
            body="PhoneNumberPatch",
            ok=(200, "PhoneNumber"),
        ),
        "delete": operation(
            "Forget a number: its texts stay; new texts to it land in Unrouted",
            who="admin",
            params=(PATH_ID,),
            ok=(204, None),
        ),
    },
    f"{V1}/inboxes": {
        "get": operation(
            "My inboxes with unread counts (admins: all, Unrouted included)",
            who="member",
            ok=(200, "InboxPage"),
        ),
        "post": operation(
            "Add an inbox", who="admin", body="InboxInput", ok=(201, "Inbox"), errors=(409,)
        ),
    },
    f"{V1}/inboxes/{{id}}": {
        "get": operation("One of my inboxes", who="member", params=(PATH_ID,), ok=(200, "Inbox")),
        "patch": operation(
            "Rename an inbox or set its email notifications",
            who="admin",
            params=(PATH_ID,),
            body="InboxPatch",
            ok=(200, "Inbox"),
            errors=(409,),
        ),
        "delete": operation(
            "Delete an inbox without conversations: its numbers then route nowhere (Unrouted)",
            who="admin",
            params=(PATH_ID,),
            ok=(204, None),
            errors=(409,),
        ),
    },
    f"{V1}/inboxes/{{id}}/members": {
        "get": operation(
            "Members of an inbox",
            who="admin",
            params=(PATH_ID,),
            ok=(200, page_of("User")),
        )
    },
    f"{V1}/inboxes/{{id}}/members/{{user_id}}": {
        "put": also_ok(
            operation(
                "Make a user a member (201 new, 200 already)",
                who="admin",
                params=(PATH_ID, _param("user_id", "path", ID)),
                ok=(201, "Membership"),
                errors=(422,),
            ),
            201,
            200,
            "already a member",
        ),
        "delete": operation(
            "End a membership; the user's live subscriptions to the inbox are cut",
            who="admin",
            params=(PATH_ID, _param("user_id", "path", ID)),
            ok=(204, None),
        ),
    },
    f"{V1}/inboxes/{{id}}/conversations": {
        "get": operation(
            "Conversations of an inbox, most recent first, with my unread counts",
            who="member",
            params=(
                PATH_ID,
                _param("filter", "query", {"enum": ["all", "unread"]}),
                CURSOR,
                LIMIT,
            ),
            ok=(200, "ConversationPage"),
            errors=(422,),
        )
    },
    f"{V1}/conversations/{{id}}": {
        "get": operation(
            "One conversation", who="member", params=(PATH_ID,), ok=(200, "Conversation")
        )
    },
    f"{V1}/conversations/{{id}}/messages": {
        "get": operation(
            "A thread, newest first",
            who="member",
            params=(
                PATH_ID,
                _param("before", "query", ID, "a message id: older messages only"),
                CURSOR,
                LIMIT,
            ),
            ok=(200, "MessagePage"),
            errors=(422,),
        ),
        "post": operation(
            "Send a quick message (sticky sender); 409 opted_out or no_number",
            who="member",
            params=(PATH_ID,),
            body="MessageInput",
            ok=(201, "Message"),
            errors=(409,),
        ),
    },
    f"{V1}/conversations/{{id}}/read": {
        "post": operation(
            "Move my read marker forward (announced as conversation.read)",
            who="member",
            params=(PATH_ID,),
            body="ReadInput",
            ok=(200, "ReadState"),
        )
    },
    f"{V1}/contacts": {
        "get": operation(
            "Contacts I may see (through my inboxes' conversations), newest first",
            who="member",
            params=(CONTACT_QUERY, CURSOR, LIMIT),
            ok=(200, "ContactPage"),
        ),
        "post": operation(
            "Add a contact", who="member", body="ContactInput", ok=(201, "Contact"), errors=(409,)
        ),
    },
    f"{V1}/contacts/{{id}}": {
        "get": operation(
            "A contact with the conversations I may see and its opt-outs",
            who="member",
            params=(PATH_ID,),
            ok=(200, "ContactRecord"),
        ),
        "patch": operation(
            "Change a contact's names, email or fields (fields replaces them all)",
            who="member",
            params=(PATH_ID,),
            body="ContactChange",
            ok=(200, "Contact"),
        ),
    },
    f"{V1}/users": {
        "get": operation("The team", who="admin", params=(CURSOR, LIMIT), ok=(200, "UserPage")),
        "post": operation(
            "Add a user", who="admin", body="UserInput", ok=(201, "User"), errors=(409,)
        ),
    },
    f"{V1}/users/{{id}}": {
        "get": operation("One user", who="admin", params=(PATH_ID,), ok=(200, "User")),
        "patch": operation(
            "Change a user; deactivating or a new password ends their sessions",
            who="admin",
            params=(PATH_ID,),
            body="UserPatch",
            ok=(200, "User"),
            errors=(409,),
        ),
    },
    f"{V1}/contacts/{{id}}/messages": {
        "post": operation(
            "Send from a contact record through one of my inboxes (starts the conversation)",
            who="member",
            params=(PATH_ID,),
            body="ContactMessageInput",
            ok=(201, "Message"),
            errors=(409,),
        )
    },
    f"{V1}/campaigns": {
        "get": operation(
            "Campaigns, newest first", who="admin", params=(CURSOR,), ok=(200, "CampaignPage")
        ),
        "post": operation(
            "A draft campaign with its recipients (merge fields checked)",
            who="admin",
            body="CampaignInput",
            ok=(201, "Campaign"),
            errors=(409,),
        ),
    },
    CAMPAIGN: {
        "get": operation(
            "A campaign: status, counts, figures",
            who="admin",
            params=(PATH_ID,),
            ok=(200, "Campaign"),
        ),
        "delete": operation(
            "Delete a draft, or a canceled campaign that sent nothing (409 once it sent texts)",
            who="admin",
            params=(PATH_ID,),
            ok=(204, None),
            errors=(409,),
        ),
    },
    f"{CAMPAIGN}/recipients": {
        "get": operation(
            "Recipients with their state and message status",
            who="admin",
            params=(PATH_ID, _param("state", "query", STRING), CURSOR),
            ok=(200, {"type": "object"}),
            errors=(422,),
        ),
        "post": operation(
            "Add recipients to a draft (JSON, CSV body or upload)",
            who="admin",
            params=(PATH_ID,),
            body="RecipientsInput",
            ok=(200, "RecipientsAdded"),
            errors=(409,),
        ),
    },
    f"{CAMPAIGN}/preview": {
        "get": operation(
            "The first messages as they will read",
            who="admin",
            params=(
                PATH_ID,
                _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 50}),
            ),
            ok=(200, {"type": "object"}),
            errors=(422,),
        )
    },
    **{
        f"{CAMPAIGN}/{action}": {
            "post": operation(
                summary, who="admin", params=(PATH_ID,), ok=(200, "Campaign"), errors=(409,)
            )
        }
        for action, summary in (
            ("send", "Start sending (or schedule, when start_at is ahead)"),
            ("pause", "Pause a sending or scheduled campaign"),
            ("resume", "Resume a paused campaign"),
            ("cancel", "Stop for good; in-flight sends finish"),
        )
    },
    "/simulator/thread": {
        "get": operation(
            "Simulator mode: what the fake phone shows",
            who="admin",
            params=(_param("phone", "query", STRING), _param("number", "query", STRING)),
            ok=(200, {"type": "object"}),
            errors=(404, 422),
        )
    },
    "/simulator/messages": {
        "post": operation(
            "Simulator mode: text in as any phone (a signed webhook to PUBLIC_URL)",
            who="admin",
            body="SimulatorText",
            ok=(201, {"type": "object"}),
            errors=(404, 502),
        )
    },
    "/ws": {
        "get": {
            "summary": "The live protocol (websocket; subprotocol msgpack or json), SPEC section 5",
            "tags": ["live"],
            "parameters": [
                _param("Sec-WebSocket-Protocol", "header", {"enum": ["msgpack", "json"]}),
            ],
            "responses": {
                "101": {"description": "switching protocols"},
                "400": {"description": "no supported subprotocol"},
                "401": {"description": "not signed in"},
                "403": {"description": "cookie sign-in from another origin"},
            },
        }
    },
    "/": {"get": _page("The sign-in form, or my inboxes with unread counts", "public")},
    "/inboxes/{id}": {"get": _page("An inbox's conversations, live", "member", (PATH_ID,))},
    "/conversations/{id}": {"get": _page("A thread, live", "member", (PATH_ID,))},
    "/contacts": {
        "get": _page(
            "Contacts I may see, found by ?q=; texting a new number",
            "user",
            (CONTACT_QUERY, CURSOR),
        )
    },
    "/contacts/{id}": {"get": _page("A contact record", "member", (PATH_ID,))},
    "/admin": {
        "get": {
            "summary": "To the admin pages",
            "tags": ["pages"],
            "security": [],
            "responses": {"307": {"description": "to /admin/inboxes"}},
        }
    },
    "/admin/inboxes": {"get": _page("Admin: inboxes", "admin")},
    "/admin/inboxes/{id}": {"get": _page("Admin: one inbox", "admin", (PATH_ID,))},
    "/admin/services": {"get": _page("Admin: messaging services", "admin")},
    "/admin/numbers": {"get": _page("Admin: phone numbers and routing", "admin")},
    "/admin/users": {"get": _page("Admin: users", "admin")},
    "/admin/campaigns": {"get": _page("Admin: campaigns", "admin")},
    "/healthz": {
        "get": operation("Liveness", who="public", ok=(200, {"type": "object"}), auth=False)
    },
    "/readyz": {
        "get": operation(
            "Readiness: database and Redis",
            who="public",
            ok=(200, {"type": "object"}),
            errors=(503,),
            auth=False,
        )
    },
    "/metrics": {
        "get": operation(
            "Prometheus metrics",
            who="public",
            ok=(200, {"type": "string"}),
            auth=False,
            content_type="text/plain",
        )
    },
    "/admin/campaigns/{id}": {"get": _page("Admin: one campaign", "admin", (PATH_ID,))},
    "/admin/{rest}": {
        "get": _page("Admin: anything else (not found)", "admin", (_param("rest", "path", STRING),))
    },
    "/simulator": {"get": _page("Simulator mode: the fake phone", "admin")},
    "/static/{path}": {
        "get": {
            "summary": "Static files of the pages (CSS, scripts, fonts, images)",
            "tags": ["pages"],
            "security": [],
            "parameters": [_param("path", "path", STRING)],
            "responses": {"200": {"description": "the file"}, "404": {"description": "none"}},
        }
    },
    "/twilio/messages": {
        "post": _twilio("Twilio inbound SMS webhook (signed against PUBLIC_URL)"),
    },
    "/twilio/status": {
        "post": _twilio("Twilio status callback (signed); statuses only move forward"),
    },
    "/openapi.json": {
        "get": operation(
            "This description",
            who="public",
            ok=(200, {"type": "object"}),
            auth=False,
        )
    },
}


def document(server_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard",
            "version": "1",
            "description": (
                "A shared SMS inbox. Authenticate with `Authorization: Bearer <token>` or the "
                "`sb_session` cookie (cookie writes also need `X-CSRF-Token`). Errors answer "
                '`{"error", "detail"}`; lists answer `{"items", "next_cursor"}`, newest first.'
            ),
        },
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": copy.deepcopy(PATHS),
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "sb_session"},
            },
        },
    }
