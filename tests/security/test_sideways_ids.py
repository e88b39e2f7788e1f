"""Ids of another inbox's objects in query strings: paging cursors, `before`, search.

tests/api/test_access_matrix.py puts them in every path and in the bodies that take ids; here
they go where the matrix does not: a member pages and searches their own inbox with another
inbox's ids and text, and gets only their own inbox back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from server.queries import encode_cursor
from tests.api.conftest import World, build_world
from tests.support.live_server import LiveServer

HIDDEN = ("Bea", "Uma", "Sam", "hi from Bea", "who is this", "from Sam")


@pytest.fixture
async def world(live_server: LiveServer) -> World:
    return await build_world(live_server.state)


def assert_shows_nothing_hidden(response: httpx.Response) -> None:
    assert response.status_code in (200, 404, 422), response.text
    for text in HIDDEN:
        assert text not in response.text, text


async def test_cursors_and_before_with_other_inboxes_ids_stay_in_my_inbox(
    http: httpx.AsyncClient, world: World
) -> None:
    alice, ids = world.auth("alice"), world.ids
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for other in (ids["conv_b"], ids["conv_u"]):
        cursor = encode_cursor(future, other)
        listed = await http.get(
            f"/api/v1/inboxes/{ids['inbox_a']}/conversations",
            params={"cursor": cursor},
            headers=alice,
        )
        assert_shows_nothing_hidden(listed)
        assert {c["inbox_id"] for c in listed.json()["items"]} <= {ids["inbox_a"]}
    for before in (ids["msg_b"] + 1, ids["msg_u"] + 1, 2**62):
        thread = await http.get(
            f"/api/v1/conversations/{ids['conv_a']}/messages",
            params={"before": before},
            headers=alice,
        )
        assert_shows_nothing_hidden(thread)
        assert {m["conversation_id"] for m in thread.json()["items"]} <= {ids["conv_a"]}


async def test_searching_for_another_inboxs_contacts_finds_nothing(
    http: httpx.AsyncClient, world: World
) -> None:
    hidden = []
    for key in ("contact_b", "contact_u", "contact_shared"):
        record = await http.get(f"/api/v1/contacts/{world.ids[key]}", headers=world.auth("admin"))
        hidden.append(record.json())
    for contact in hidden:
        for q in (contact["phone"], contact["phone"][-4:], contact["first_name"]):
            found = await http.get("/api/v1/contacts", params={"q": q}, headers=world.auth("alice"))
            assert_shows_nothing_hidden(found)
            assert contact["id"] not in {c["id"] for c in found.json()["items"]}, q
