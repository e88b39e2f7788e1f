"""The read-side queries the API and the pages share: visibility, unread counts, pagination."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server import queries
from server.errors import ApiError
from server.settings import Settings
from server.state import AppState
from store.models import ReadMarker
from tests.api import builders as b


@pytest.fixture
async def state(settings: Settings) -> AsyncIterator[AppState]:
    state = AppState(settings)
    yield state
    await state.close()


async def test_inboxes_conversations_and_unread_counts(state: AppState) -> None:
    async with state.transaction() as s:
        admin = await b.user(s, "admin")
        alice = await b.user(s)
        bob = await b.user(s)
        front = await b.inbox(s, "Front desk", (alice,))
        other = await b.inbox(s, "Other", (bob,))
        c1, c2, c3 = [await b.contact(s, n) for n in ("Ann", "Ben", "Cat")]
        t1 = await b.conversation(s, front, c1)
        t2 = await b.conversation(s, front, c2)
        t3 = await b.conversation(s, other, c3)
        m1 = await b.message(s, t1, at=b.minutes_ago(30))
        await b.message(s, t1, "outbound", at=b.minutes_ago(20))
        m3 = await b.message(s, t1, at=b.minutes_ago(10))
        await b.message(s, t2, at=b.minutes_ago(5))
        await b.message(s, t3, at=b.minutes_ago(1))
        s.add(ReadMarker(user_id=alice.id, conversation_id=t1.id, message_id=m1.id))

    async with state.reading() as s:
        mine = await queries.visible_inboxes(s, alice)
        assert [(i["name"], i["unread_count"]) for i in mine] == [("Front desk", 2)]
        everything = await queries.visible_inboxes(s, admin)
        assert {i["name"] for i in everything} == {"Front desk", "Other"}

        page = await queries.list_conversations(s, alice, front.id)
        assert [c["id"] for c in page.items] == [t2.id, t1.id]
        assert [c["unread_count"] for c in page.items] == [1, 1]
        assert page.items[1]["last_message"]["id"] == m3.id
        assert page.items[1]["contact"]["first_name"] == "Ann"
        assert page.next_cursor is None

        with pytest.raises(ApiError) as denied:
            await queries.list_conversations(s, alice, other.id)
        assert denied.value.status == 404
        with pytest.raises(ApiError):
            await queries.list_messages(s, alice, t3.id)
        with pytest.raises(ApiError):
            await queries.get_contact(s, alice, c3.id)
        assert [c["id"] for c in (await queries.search_contacts(s, alice)).items] == [
            c2.id,
            c1.id,
        ]
        assert [c["id"] for c in (await queries.search_contacts(s, admin, "cat")).items] == [c3.id]

    async with state.transaction() as s:
        marker = await s.get(ReadMarker, (alice.id, t1.id))
        assert marker is not None
        marker.message_id = m3.id
    async with state.reading() as s:
        unread = await queries.list_conversations(s, alice, front.id, filter="unread")
        assert [c["id"] for c in unread.items] == [t2.id]
        # bob has no marker anywhere: everything inbound is unread for him, nothing for alice's
        assert (await queries.inbox_unread_counts(s, bob, [other.id])) == {other.id: 1}


async def test_keyset_pagination_walks_every_conversation_once(state: AppState) -> None:
    async with state.transaction() as s:
        alice = await b.user(s)
        box = await b.inbox(s, members=(alice,))
        same_time = b.minutes_ago(3)
        ids = []
        for n in range(7):
            thread = await b.conversation(s, box, await b.contact(s))
            await b.message(s, thread, at=same_time if n < 4 else b.minutes_ago(10 - n))
            ids.append(thread.id)
        thread = await b.conversation(s, box, await b.contact(s))
        for n in range(5):
            await b.message(s, thread, body=f"m{n}", at=b.minutes_ago(60 - n))

    seen: list[int] = []
    cursor = None
    async with state.reading() as s:
        while True:
            page = await queries.list_conversations(s, alice, box.id, cursor=cursor, limit=3)
            seen.extend(c["id"] for c in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert sorted(seen) == sorted([*ids, thread.id]) and len(seen) == len(set(seen))
        assert seen[-1] == thread.id

        bodies: list[str] = []
        before = None
        while True:
            msgs = await queries.list_messages(s, alice, thread.id, before=before, limit=2)
            bodies.extend(m["body"] for m in msgs.items)
            if msgs.next_cursor is None:
                break
            before = queries.parse_before(msgs.next_cursor)
        assert bodies == ["m4", "m3", "m2", "m1", "m0"]

        for bad in ("garbage", queries.encode_cursor("x", 1), queries.encode_cursor(1)):
            with pytest.raises(ApiError) as err:
                await queries.list_conversations(s, alice, box.id, cursor=bad)
            assert err.value.status == 422
