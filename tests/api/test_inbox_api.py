"""Member routes over HTTP: inbox lists, unread filter, read markers and their events, paging."""

from __future__ import annotations

from typing import Any

import httpx

from store import outbox
from store.models import Conversation
from tests.api import builders as b
from tests.api.conftest import World
from tests.support.live_server import LiveServer

MESSAGE_KEYS = {
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
}


async def events(live_server: LiveServer, channel: str) -> list[tuple[str, dict[str, Any]]]:
    async with live_server.state.reading() as session:
        return [(e.type, e.data) for e in await outbox.read_since(session, channel, 0)]


async def get(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> Any:
    response = await http.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_unread_filter_and_read_markers(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    alice, erin = world.auth("alice"), world.auth("erin")
    inbox_a, conv_a = world.ids["inbox_a"], world.ids["conv_a"]
    unread_url = f"/api/v1/inboxes/{inbox_a}/conversations?filter=unread"

    inboxes = await get(http, "/api/v1/inboxes", alice)
    assert inboxes["next_cursor"] is None
    assert [(i["id"], i["unread_count"]) for i in inboxes["items"]] == [(inbox_a, 1)]
    unread = await get(http, unread_url, alice)
    assert [c["id"] for c in unread["items"]] == [conv_a]
    assert unread["items"][0]["unread_count"] == 1
    assert unread["items"][0]["last_message"]["body"] == "hello Ann"
    assert unread["items"][0]["contact"]["first_name"] == "Ann"

    thread = await get(http, f"/api/v1/conversations/{conv_a}/messages", alice)
    newest = thread["items"][0]
    assert [m["direction"] for m in thread["items"]] == ["outbound", "inbound"]
    assert set(newest) >= MESSAGE_KEYS

    read_url = f"/api/v1/conversations/{conv_a}/read"
    read = await http.post(read_url, json={"message_id": newest["id"]}, headers=alice)
    assert read.status_code == 200, read.text
    assert read.json() == {
        "conversation_id": conv_a,
        "user_id": world.users["alice"],
        "message_id": newest["id"],
        "unread_count": 0,
        "moved": True,
    }
    assert (await get(http, unread_url, alice))["items"] == []
    assert (await get(http, "/api/v1/inboxes", alice))["items"][0]["unread_count"] == 0
    # Another member's unread state is their own.
    assert len((await get(http, unread_url, erin))["items"]) == 1
    all_of_them = await get(http, f"/api/v1/inboxes/{inbox_a}/conversations?filter=all", alice)
    assert [c["id"] for c in all_of_them["items"]] == [conv_a]

    expected = {
        "conversation_id": conv_a,
        "user_id": world.users["alice"],
        "message_id": newest["id"],
    }
    assert await events(live_server, f"inbox:{inbox_a}") == [("conversation.read", expected)]
    mine = await events(live_server, f"user:{world.users['alice']}")
    assert mine == [("conversation.read", expected)]

    # Forward only: an older message leaves the marker where it is and announces nothing.
    back = await http.post(read_url, json={"message_id": world.ids["msg_a"]}, headers=alice)
    assert back.status_code == 200
    assert back.json()["message_id"] == newest["id"] and back.json()["moved"] is False
    assert len(await events(live_server, f"inbox:{inbox_a}")) == 1

    # A message of another conversation is refused without saying anything of it.
    sideways = await http.post(read_url, json={"message_id": world.ids["msg_b"]}, headers=alice)
    assert sideways.status_code == 422 and sideways.json()["field"] == "message_id"
    outside = await http.post(
        f"/api/v1/conversations/{world.ids['conv_b']}/read",
        json={"message_id": world.ids["msg_b"]},
        headers=alice,
    )
    assert outside.status_code == 404
    assert await events(live_server, f"inbox:{world.ids['inbox_b']}") == []
    for bad in ({"message_id": "1"}, {"message_id": -4}, {"other": 1}):
        refused = await http.post(read_url, json=bad, headers=alice)
        assert refused.status_code == 422, bad

    # A new inbound message makes it unread again; a read without a body marks the newest.
    async with live_server.state.transaction() as s:
        conversation = await s.get(Conversation, conv_a)
        assert conversation is not None
        latest = await b.message(s, conversation, body="one more")
    assert [c["unread_count"] for c in (await get(http, unread_url, alice))["items"]] == [1]
    no_body = await http.post(read_url, headers=alice)
    assert no_body.status_code == 200
    assert no_body.json()["message_id"] == latest.id and no_body.json()["moved"] is True


async def test_conversations_and_messages_page_newest_first(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    alice = world.auth("alice")
    inbox_a = world.ids["inbox_a"]
    async with live_server.state.transaction() as s:
        conv_a = await s.get(Conversation, world.ids["conv_a"])
        assert conv_a is not None
        threads = []
        for n in range(5):
            contact = await b.contact(s, f"Page{n}")
            thread = Conversation(inbox_id=inbox_a, contact_id=contact.id)
            s.add(thread)
            await s.flush()
            await b.message(s, thread, body=f"t{n}", at=b.minutes_ago(50 - n))
            threads.append(thread.id)
        for n in range(5):
            await b.message(s, conv_a, body=f"m{n}", at=b.minutes_ago(5 - n))

    seen: list[int] = []
    url = f"/api/v1/inboxes/{inbox_a}/conversations?limit=2"
    while url:
        page = await get(http, url, alice)
        assert len(page["items"]) <= 2
        seen.extend(c["id"] for c in page["items"])
        cursor = page["next_cursor"]
        url = f"/api/v1/inboxes/{inbox_a}/conversations?limit=2&cursor={cursor}" if cursor else ""
    assert seen == [world.ids["conv_a"], *reversed(threads)]

    bodies: list[str] = []
    url = f"/api/v1/conversations/{world.ids['conv_a']}/messages?limit=3"
    while url:
        page = await get(http, url, alice)
        bodies.extend(m["body"] for m in page["items"])
        before = page["next_cursor"]
        url = f"/api/v1/conversations/{world.ids['conv_a']}/messages?limit=3&before={before}"
        url = url if before else ""
    assert bodies == ["m4", "m3", "m2", "m1", "m0", "hello Ann", "hi from Ann"]

    for bad in ("cursor=abc", "cursor=%00", "limit=0", "limit=500", "limit=x", "filter=read"):
        response = await http.get(f"/api/v1/inboxes/{inbox_a}/conversations?{bad}", headers=alice)
        assert response.status_code == 422, bad
        assert response.json()["field"] == bad.split("=")[0]
    for bad in ("before=x", "before=-1", "before=1.5"):
        response = await http.get(
            f"/api/v1/conversations/{world.ids['conv_a']}/messages?{bad}", headers=alice
        )
        assert response.status_code == 422 and response.json()["field"] == "before"


async def test_admin_sees_every_inbox_with_routing_warnings(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    admin = world.auth("admin")
    items = (await get(http, "/api/v1/inboxes", admin))["items"]
    assert [i["name"] for i in items] == ["Admissions", "Finance", "Given up", "Unrouted"]
    assert items[-1]["is_unrouted"] is True and items[-1]["unread_count"] == 1
    assert all(i["warnings"] == [] for i in items)
    staff_items = (await get(http, "/api/v1/inboxes", world.auth("carol")))["items"]
    assert staff_items == []
    unrouted = f"/api/v1/inboxes/{world.ids['unrouted']}/conversations"
    assert [c["id"] for c in (await get(http, unrouted, admin))["items"]] == [world.ids["conv_u"]]
