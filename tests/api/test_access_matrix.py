"""Who may call what: every route of the app, taken from its own route table, called as an admin,
a member, a member with another inbox's ids (sideways), staff with no inbox, a deactivated user
and nobody. A route without a rule here fails the test, so new routes cannot skip the matrix."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.routing import Mount, Route, WebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from server.auth import SESSION_COOKIE, start_session
from store.models import User
from tests.api.conftest import World
from tests.api.openapi_check import DocumentedAnswers
from tests.support.live_server import LiveServer

_n = itertools.count(1)


@dataclass(frozen=True)
class Scope:
    """The ids one caller puts in paths and bodies: all from one inbox's world."""

    name: str
    inbox: int
    conversation: int
    message: int
    contact: int


def scopes(world: World) -> dict[str, Scope]:
    ids = world.ids
    return {
        "own": Scope("own", ids["inbox_a"], ids["conv_a"], ids["msg_a"], ids["contact_a"]),
        "other": Scope("other", ids["inbox_b"], ids["conv_b"], ids["msg_b"], ids["contact_b"]),
        "unrouted": Scope(
            "unrouted", ids["unrouted"], ids["conv_u"], ids["msg_u"], ids["contact_u"]
        ),
    }


Params = Callable[[World, Scope], dict[str, Any]]
Body = Callable[[World, Scope], Any]


@dataclass(frozen=True)
class Rule:
    """`who`: admin (403 to staff), member (404 outside the caller's inboxes), user (anyone signed
    in), public, twilio (403 to anything without Twilio's signature). `ok`: the statuses of an
    allowed call; `unrouted`: those of an admin's call on the Unrouted inbox, when they differ.
    A `page` is HTML, signed in by cookie only; without a session it redirects to sign-in."""

    who: str
    ok: tuple[int, ...] = (200,)
    params: Params | None = None
    body: Body | None = None
    query: Params | None = None
    fresh_session: bool = False  # the call ends the session it uses (logout)
    unrouted: tuple[int, ...] | None = None
    form: bool = False
    page: bool = False


def by_id(key: str) -> Params:
    return lambda w, s: {"id": w.ids[key]}


def none(w: World, s: Scope) -> dict[str, Any]:
    return {}


def campaign(key: str, ok: tuple[int, ...] = (200,), body: Body | None = None) -> Rule:
    return Rule("admin", ok, params=by_id(key), body=body)


RULES: dict[tuple[str, str], Rule] = {
    ("POST", "/api/v1/auth/login"): Rule(
        "public", (401,), body=lambda w, s: {"email": "x@example.test", "password": "wrong"}
    ),
    ("POST", "/api/v1/auth/logout"): Rule("user", (204,), fresh_session=True),
    ("GET", "/api/v1/auth/me"): Rule("user"),
    ("GET", "/openapi.json"): Rule("public"),
    # admin
    ("GET", "/api/v1/messaging-services"): Rule("admin"),
    ("POST", "/api/v1/messaging-services"): Rule(
        "admin",
        (201,),
        body=lambda w, s: {"name": "S", "sid": f"MG{next(_n):032x}", "purpose": "blast"},
    ),
    ("PATCH", "/api/v1/messaging-services/{id}"): Rule(
        "admin", params=by_id("service"), body=lambda w, s: {"name": "Admissions 1:1"}
    ),
    ("GET", "/api/v1/phone-numbers"): Rule("admin"),
    ("POST", "/api/v1/phone-numbers"): Rule(
        "admin",
        (201,),
        body=lambda w, s: {
            "number": f"+1212555{next(_n):04d}",
            "sid": f"PN{next(_n):032x}",
            "messaging_service_id": w.ids["service"],
            "inbox_id": s.inbox if s.name != "unrouted" else None,
        },
    ),
    ("DELETE", "/api/v1/phone-numbers/{id}"): Rule("admin", (204,), params=by_id("doomed_number")),
    ("PATCH", "/api/v1/phone-numbers/{id}"): Rule(
        "admin", params=by_id("number_a"), body=lambda w, s: {"inbox_id": w.ids["inbox_a"]}
    ),
    ("POST", "/api/v1/inboxes"): Rule("admin", (201,), body=lambda w, s: {"name": f"I{next(_n)}"}),
    ("PATCH", "/api/v1/inboxes/{id}"): Rule(
        "admin",
        params=lambda w, s: {"id": s.inbox},
        body=lambda w, s: {"notifications": {"enabled": True}},
    ),
    ("DELETE", "/api/v1/inboxes/{id}"): Rule("admin", (204,), params=by_id("doomed_inbox")),
    ("GET", "/api/v1/inboxes/{id}/members"): Rule("admin", params=lambda w, s: {"id": s.inbox}),
    ("PUT", "/api/v1/inboxes/{id}/members/{user_id}"): Rule(
        "admin", (201,), params=lambda w, s: {"id": w.ids["inbox_a"], "user_id": w.users["carol"]}
    ),
    ("DELETE", "/api/v1/inboxes/{id}/members/{user_id}"): Rule(
        "admin", (204,), params=lambda w, s: {"id": w.ids["inbox_a"], "user_id": w.users["erin"]}
    ),
    ("GET", "/api/v1/users"): Rule("admin"),
    ("POST", "/api/v1/users"): Rule(
        "admin",
        (201,),
        body=lambda w, s: {"email": f"u{next(_n)}@example.test", "password": "long enough"},
    ),
    ("GET", "/api/v1/users/{id}"): Rule("admin", params=lambda w, s: {"id": w.users["erin"]}),
    ("PATCH", "/api/v1/users/{id}"): Rule(
        "admin", params=lambda w, s: {"id": w.users["erin"]}, body=lambda w, s: {"name": "Erin"}
    ),
    # any signed-in user (answers are limited to what they may see)
    ("GET", "/api/v1/inboxes"): Rule("user"),
    ("GET", "/api/v1/contacts"): Rule("user"),
    ("POST", "/api/v1/contacts"): Rule(
        "user", (201,), body=lambda w, s: {"phone": f"+1312555{next(_n):04d}"}
    ),
    # members of the inbox the object belongs to
    ("GET", "/api/v1/inboxes/{id}"): Rule("member", params=lambda w, s: {"id": s.inbox}),
    ("GET", "/api/v1/inboxes/{id}/conversations"): Rule(
        "member", params=lambda w, s: {"id": s.inbox}
    ),
    ("GET", "/api/v1/conversations/{id}"): Rule(
        "member", params=lambda w, s: {"id": s.conversation}
    ),
    ("GET", "/api/v1/conversations/{id}/messages"): Rule(
        "member", params=lambda w, s: {"id": s.conversation}
    ),
    ("POST", "/api/v1/conversations/{id}/read"): Rule(
        "member",
        params=lambda w, s: {"id": s.conversation},
        body=lambda w, s: {"message_id": s.message},
    ),
    ("GET", "/api/v1/contacts/{id}"): Rule("member", params=lambda w, s: {"id": s.contact}),
    ("PATCH", "/api/v1/contacts/{id}"): Rule(
        "member", params=lambda w, s: {"id": s.contact}, body=lambda w, s: {"last_name": "Edited"}
    ),
    # sending (the Unrouted inbox has no number to send from: 409 no_number)
    ("POST", "/api/v1/conversations/{id}/messages"): Rule(
        "member",
        (201,),
        params=lambda w, s: {"id": s.conversation},
        body=lambda w, s: {"body": "Hello <b>there</b>"},
        unrouted=(409,),
    ),
    ("POST", "/api/v1/contacts/{id}/messages"): Rule(
        "member",
        (201,),
        params=lambda w, s: {"id": s.contact},
        body=lambda w, s: {"inbox_id": s.inbox, "body": "Hello"},
        unrouted=(409,),
    ),
    # campaigns (admins only)
    ("GET", "/api/v1/campaigns"): Rule("admin"),
    ("POST", "/api/v1/campaigns"): Rule(
        "admin",
        (201,),
        body=lambda w, s: {
            "name": f"C{next(_n)}",
            "messaging_service_id": w.ids["blast_service"],
            "body": "Hi {first_name}",
            "contact_ids": [w.ids["contact_a"]],
        },
    ),
    ("GET", "/api/v1/campaigns/{id}"): campaign("campaign_draft"),
    ("DELETE", "/api/v1/campaigns/{id}"): campaign("campaign_to_delete", (204,)),
    ("GET", "/api/v1/campaigns/{id}/recipients"): campaign("campaign_draft"),
    ("POST", "/api/v1/campaigns/{id}/recipients"): campaign(
        "campaign_draft", body=lambda w, s: {"contact_ids": [w.ids["contact_b"]]}
    ),
    ("GET", "/api/v1/campaigns/{id}/preview"): campaign("campaign_draft"),
    ("POST", "/api/v1/campaigns/{id}/send"): campaign("campaign_to_send"),
    ("POST", "/api/v1/campaigns/{id}/pause"): campaign("campaign_sending"),
    ("POST", "/api/v1/campaigns/{id}/resume"): campaign("campaign_paused"),
    ("POST", "/api/v1/campaigns/{id}/cancel"): campaign("campaign_to_cancel"),
    # the simulator's fake phone (admins, simulator mode)
    ("GET", "/simulator/thread"): Rule(
        "admin", query=lambda w, s: {"phone": "+12025550123", "number": w.numbers["a"]}
    ),
    ("POST", "/simulator/messages"): Rule(
        "admin",
        (201,),
        body=lambda w, s: {"phone": "+12025550123", "number": w.numbers["a"], "body": "hi"},
    ),
    # pages
    ("GET", "/"): Rule("public", page=True),
    ("GET", "/admin"): Rule("public", (307,), page=True),
    ("GET", "/inboxes/{id}"): Rule("member", page=True, params=lambda w, s: {"id": s.inbox}),
    ("GET", "/conversations/{id}"): Rule(
        "member", page=True, params=lambda w, s: {"id": s.conversation}
    ),
    ("GET", "/contacts/{id}"): Rule("member", page=True, params=lambda w, s: {"id": s.contact}),
    ("GET", "/contacts"): Rule("user", page=True),
    ("GET", "/admin/inboxes"): Rule("admin", page=True),
    ("GET", "/admin/inboxes/{id}"): Rule(
        "admin", page=True, params=lambda w, s: {"id": w.ids["inbox_b"]}
    ),
    ("GET", "/admin/services"): Rule("admin", page=True),
    ("GET", "/admin/numbers"): Rule("admin", page=True),
    ("GET", "/admin/users"): Rule("admin", page=True),
    ("GET", "/admin/campaigns"): Rule("admin", page=True),
    ("GET", "/healthz"): Rule("public"),
    ("GET", "/readyz"): Rule("public"),
    ("GET", "/metrics"): Rule("public"),
    ("GET", "/admin/campaigns/{id}"): Rule(
        "admin", (404,), page=True, params=lambda w, s: {"id": 999999}
    ),
    ("GET", "/admin/{rest:path}"): Rule(
        "admin", (404,), page=True, params=lambda w, s: {"rest": "no/such/page"}
    ),
    ("GET", "/simulator"): Rule("admin", page=True),
    ("GET", "/static/{path}"): Rule(
        "public", params=lambda w, s: {"path": "css/app.css"}, page=True
    ),
    # Twilio's webhooks: nothing unsigned gets in, whoever calls
    ("POST", "/twilio/messages"): Rule(
        "twilio",
        (403,),
        form=True,
        body=lambda w, s: {"MessageSid": "SM" + "1" * 32, "From": "+16175550000", "Body": "hi"},
    ),
    ("POST", "/twilio/status"): Rule(
        "twilio",
        (403,),
        form=True,
        body=lambda w, s: {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"},
    ),
}

# Ids of two inboxes mixed in one call: each answers as if the other object did not exist.
MIXED: list[tuple[tuple[str, str], Params, Body, tuple[int, ...]]] = [
    (
        ("POST", "/api/v1/contacts/{id}/messages"),
        lambda w, s: {"id": w.ids["contact_a"]},
        lambda w, s: {"inbox_id": w.ids["inbox_b"], "body": "x"},
        (404,),
    ),
    (
        ("POST", "/api/v1/contacts/{id}/messages"),
        lambda w, s: {"id": w.ids["contact_b"]},
        lambda w, s: {"inbox_id": w.ids["inbox_a"], "body": "x"},
        (404,),
    ),
    (
        ("POST", "/api/v1/contacts/{id}/messages"),
        lambda w, s: {"id": w.ids["contact_u"]},
        lambda w, s: {"inbox_id": w.ids["inbox_a"], "body": "x"},
        (404,),
    ),
    (
        ("POST", "/api/v1/conversations/{id}/read"),
        lambda w, s: {"id": w.ids["conv_a"]},
        lambda w, s: {"message_id": w.ids["msg_b"]},
        (422,),
    ),
]

# What a refusal must not show, per caller: names and texts of inboxes they are not in.
HIDDEN = {
    "alice": ("Bea", "Uma", "Sam", "Finance", "hi from Bea", "who is this"),
    "bob": ("Admissions", "hi from Ann", "Uma", "who is this"),
}
BAD_IDS = ["987654321", "0", "-1", "abc", "1.5", "9" * 30, "%00", "1%20OR%201=1"]


def http_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every HTTP route; a mount of static files counts as GET {path}."""
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Route):
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((method, route.path))
        elif isinstance(route, Mount):
            found.add(("GET", route.path + "/{path}"))
    return found


def websocket_routes(app: Any) -> set[str]:
    return {route.path for route in app.routes if isinstance(route, WebSocketRoute)}


def fill(path: str, params: dict[str, Any]) -> str:
    return re.sub(r"{(\w+)(:\w+)?}", lambda m: str(params[m.group(1)]), path)


class Caller:
    def __init__(
        self,
        live_server: LiveServer,
        http: httpx.AsyncClient,
        world: World,
        documented: DocumentedAnswers,
    ) -> None:
        self.live_server = live_server
        self.http = http
        self.world = world
        self.documented = documented
        self.log: list[str] = []

    async def token(self, who: str | None, fresh: bool) -> str | None:
        if who is None:
            return None
        if fresh:
            async with self.live_server.state.transaction() as session:
                user = await session.get(User, self.world.users[who])
                assert user is not None
                return await start_session(session, user)
        return self.world.tokens[who]

    async def call(
        self,
        key: tuple[str, str],
        who: str | None,
        scope: Scope,
        expected: tuple[int, ...],
        params: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        method, path = key
        rule = RULES[key]
        params = params if params is not None else (rule.params or none)(self.world, scope)
        token = await self.token(who, rule.fresh_session)
        headers = dict(headers or {})
        if token and rule.page:
            headers["Cookie"] = f"{SESSION_COOKIE}={token}"
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        if body is None and rule.body:
            body = rule.body(self.world, scope)
        url = fill(path, params)
        query = rule.query(self.world, scope) if rule.query else None
        sent: dict[str, Any] = {"data": body} if rule.form else {"json": body}
        response = await self.http.request(method, url, params=query, headers=headers, **sent)
        where = f"{method} {url} as {who or 'anonymous'} ({scope.name}) -> {response.status_code}"
        self.log.append(where)
        assert response.status_code < 500, where + response.text
        assert response.status_code in expected, f"{where}, expected {expected}: {response.text}"
        is_json = response.headers.get("content-type", "").startswith("application/json")
        if response.status_code >= 400 and response.content and not rule.page:
            assert is_json and set(response.json()) >= {"error", "detail"}, where
        self.documented.check(method, re.sub(r"{(\w+):\w+}", r"{\1}", path), response)
        if response.status_code >= 400 and who != "admin":
            for secret in HIDDEN.get(who or "", HIDDEN["alice"]):
                assert secret not in response.text, where
        return response


async def test_every_route_has_a_rule(live_server: LiveServer) -> None:
    routes = http_routes(live_server.app)
    missing = sorted(routes - set(RULES))
    assert not missing, f"routes without an access rule: {missing}"
    stale = sorted(set(RULES) - routes)
    assert not stale, f"rules for routes that do not exist: {stale}"
    assert websocket_routes(live_server.app) == {"/ws"}, "a websocket route without a check"


async def test_access_matrix(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    routes = sorted(http_routes(live_server.app) & set(RULES))
    documented = DocumentedAnswers((await http.get("/openapi.json")).json())
    caller = Caller(live_server, http, world, documented)
    own, other, unrouted = (scopes(world)[n] for n in ("own", "other", "unrouted"))

    # 1. Denials first, so that nothing the allowed calls change can hide one.
    for key in routes:
        rule = RULES[key]
        if rule.who == "public":
            continue
        if rule.who == "twilio":
            forged = {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
            for who in (None, "admin", "alice"):
                await caller.call(key, who, own, (403,))
                await caller.call(key, who, own, (403,), headers=forged)
            continue
        signed_out = (303,) if rule.page else (401,)
        for who in (None, "dave"):  # nobody; a deactivated user with a once-valid token
            await caller.call(key, who, own, signed_out)
        if rule.who == "admin":
            for who in ("alice", "carol"):
                await caller.call(key, who, own, (403,))
        if rule.who == "member":
            await caller.call(key, "carol", own, (404,))
            await caller.call(key, "alice", other, (404,))
            await caller.call(key, "alice", unrouted, (404,))
            await caller.call(key, "bob", own, (404,))
    for key, params, body, expected in MIXED:
        await caller.call(key, "alice", own, expected, params(world, own), body(world, own))

    # 2. Unknown and malformed ids in every path: 404 (admins pass the role check first).
    for key in routes:
        rule = RULES[key]
        if rule.params is None or rule.who in ("twilio", "public"):
            continue
        names = [name for name in rule.params(world, own) if name in ("id", "user_id")]
        for who in ("admin", "alice") if rule.who == "member" else ("admin",):
            for name in names:
                for bad in BAD_IDS:
                    params = {**rule.params(world, own), name: bad}
                    await caller.call(key, who, own, (404,), params=params)

    # 3. The allowed calls.
    for key in routes:
        rule = RULES[key]
        if rule.who == "public":
            for who in (None, "admin", "alice", "carol"):
                await caller.call(key, who, own, rule.ok)
        elif rule.who == "user":
            for who in ("admin", "alice", "carol"):
                await caller.call(key, who, own, rule.ok)
        elif rule.who == "admin":
            await caller.call(key, "admin", own, rule.ok)
        elif rule.who == "member":
            await caller.call(key, "alice", own, rule.ok)
            await caller.call(key, "admin", own, rule.ok)
            await caller.call(key, "admin", unrouted, rule.unrouted or rule.ok)
    assert len(caller.log) > 10 * len(routes)


async def test_websocket_handshake_and_channels(live_server: LiveServer, world: World) -> None:
    """The one websocket route: refused without a live session; inbox channels by membership."""

    async def open_as(who: str | None) -> Any:
        headers = world.auth(who) if who else {}
        return await connect(live_server.ws_url, additional_headers=headers, subprotocols=["json"])

    for who in (None, "dave"):
        with pytest.raises(InvalidStatus) as refused:
            await open_as(who)
        assert refused.value.response.status_code == 401
    async with await open_as("alice") as ws:
        for inbox, expected in (
            ("inbox_b", "error"),
            ("unrouted", "error"),
            ("inbox_a", "subscribed"),
        ):
            channel = f"inbox:{world.ids[inbox]}"
            await ws.send(json.dumps({"op": "subscribe", "channel": channel}))
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert frame["op"] == expected, (channel, frame)
            assert frame.get("channel") == channel
    async with await open_as("admin") as ws:
        channel = f"inbox:{world.ids['unrouted']}"
        await ws.send(json.dumps({"op": "subscribe", "channel": channel}))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert frame["op"] == "subscribed"


async def test_wrong_methods_and_unknown_paths_answer_json_errors(
    http: httpx.AsyncClient, world: World
) -> None:
    admin = world.auth("admin")
    wrong = await http.delete("/api/v1/inboxes", headers=admin)
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    unknown = await http.get("/api/v1/nothing-here", headers=admin)
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    for escape in ("/static/%2e%2e/server/settings.py", "/static/..%2fserver/settings.py"):
        response = await http.get(escape)
        assert response.status_code == 404 and "secret" not in response.text
