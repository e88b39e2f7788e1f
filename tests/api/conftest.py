"""Fixtures for the API tests: a small team with two inboxes, signed in without the login route."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from server.auth import start_session
from server.state import AppState
from store.models import Campaign, CampaignRecipient, Inbox, User
from tests.api import builders as b
from tests.support.live_server import LiveServer


@dataclass
class World:
    """Ids of a team: alice is a member of inbox A, bob of inbox B, carol of nothing; dave was a
    member of A and is deactivated; erin is a spare member of A (for removal)."""

    tokens: dict[str, str] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    numbers: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


class AccessSpy:
    """Records `access_changed` calls and passes them (and publishes) on to the real publisher."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.users: list[int] = []

    async def publish(self, envelopes: Sequence[dict[str, Any]]) -> None:
        if self.inner is not None:
            await self.inner.publish(envelopes)

    async def access_changed(self, user_id: int) -> None:
        self.users.append(user_id)
        if self.inner is not None:
            await self.inner.access_changed(user_id)


async def sign_in(state: AppState, user: User) -> str:
    async with state.transaction() as session:
        return await start_session(session, user)


async def build_world(state: AppState) -> World:
    world = World()
    async with state.transaction() as s:
        admin = await b.user(s, "admin")
        people = {name: await b.user(s) for name in ("alice", "bob", "carol", "dave", "erin")}
        inbox_a = await b.inbox(s, "Admissions", (people["alice"], people["dave"], people["erin"]))
        inbox_b = await b.inbox(s, "Finance", (people["bob"],))
        unrouted = Inbox(name="Unrouted", is_unrouted=True)
        s.add(unrouted)
        await s.flush()
        one_to_one = await b.service(s)
        blast = await b.service(s, "blast")
        number_a = await b.number(s, one_to_one, inbox_a)
        number_b = await b.number(s, one_to_one, inbox_b)
        spare_number = await b.number(s, blast, None)
        doomed_number = await b.number(s, one_to_one, None)  # the one a test removes
        doomed_inbox = await b.inbox(s, "Given up", ())  # the one a test deletes
        contact_a = await b.contact(s, "Ann")
        contact_b = await b.contact(s, "Bea")
        contact_u = await b.contact(s, "Uma")
        shared = await b.contact(s, "Sam")
        conv_a = await b.conversation(s, inbox_a, contact_a)
        conv_b = await b.conversation(s, inbox_b, contact_b)
        conv_u = await b.conversation(s, unrouted, contact_u)
        conv_shared_b = await b.conversation(s, inbox_b, shared)
        msg_a = await b.message(s, conv_a, body="hi from Ann")
        await b.message(s, conv_a, "outbound", body="hello Ann")
        msg_b = await b.message(s, conv_b, body="hi from Bea")
        msg_u = await b.message(s, conv_u, body="who is this")
        await b.message(s, conv_shared_b, body="from Sam")
        campaigns = {}
        for status in ("draft", "to_send", "sending", "paused", "to_cancel", "to_delete"):
            campaign = Campaign(
                name=f"Campaign {status}",
                messaging_service_id=blast.id,
                body="Hi {first_name}",
                status=status if status in ("sending", "paused") else "draft",
            )
            s.add(campaign)
            await s.flush()
            s.add(CampaignRecipient(campaign_id=campaign.id, contact_id=contact_a.id))
            campaigns[f"campaign_{status}"] = campaign.id
    world.users = {"admin": admin.id, **{name: u.id for name, u in people.items()}}
    world.ids = {
        "inbox_a": inbox_a.id,
        "inbox_b": inbox_b.id,
        "unrouted": unrouted.id,
        "service": one_to_one.id,
        "blast_service": blast.id,
        "number_a": number_a.id,
        "number_b": number_b.id,
        "spare_number": spare_number.id,
        "doomed_number": doomed_number.id,
        "doomed_inbox": doomed_inbox.id,
        "contact_a": contact_a.id,
        "contact_b": contact_b.id,
        "contact_u": contact_u.id,
        "contact_shared": shared.id,
        "conv_a": conv_a.id,
        "conv_b": conv_b.id,
        "conv_u": conv_u.id,
        "msg_a": msg_a.id,
        "msg_b": msg_b.id,
        "msg_u": msg_u.id,
        **campaigns,
    }
    world.numbers = {"a": number_a.number, "b": number_b.number}
    for name, person in [("admin", admin), *people.items()]:
        world.tokens[name] = await sign_in(state, person)
    async with state.transaction() as s:
        dave = await s.get(User, people["dave"].id)
        assert dave is not None
        dave.active = False
    return world


@pytest.fixture
async def world(live_server: LiveServer) -> World:
    return await build_world(live_server.state)


@pytest.fixture
def access_spy(live_server: LiveServer) -> AccessSpy:
    spy = AccessSpy(live_server.state.publisher)
    live_server.state.publisher = spy
    return spy


async def login(http: httpx.AsyncClient, email: str, password: str = b.PASSWORD) -> httpx.Response:
    return await http.post("/api/v1/auth/login", json={"email": email, "password": password})
