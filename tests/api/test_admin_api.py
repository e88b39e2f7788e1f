"""Admin routes over HTTP: services, numbers and routing, inboxes, members, users."""

from __future__ import annotations

from typing import Any

import httpx

from store.models import Campaign
from tests.api.conftest import AccessSpy, World
from tests.support.live_server import LiveServer
from tests.support.messaging import inbound_params, signed_post


async def call(
    http: httpx.AsyncClient, world: World, method: str, url: str, body: Any = None, who="admin"
) -> httpx.Response:
    return await http.request(method, url, json=body, headers=world.auth(who))


async def test_messaging_services(http: httpx.AsyncClient, world: World) -> None:
    body = {"name": "Quick replies", "sid": "MG" + "a" * 32, "purpose": "one_to_one"}
    created = await call(http, world, "POST", "/api/v1/messaging-services", body)
    assert created.status_code == 201, created.text
    assert created.json()["id"] and created.json()["sid"] == body["sid"]
    again = await call(http, world, "POST", "/api/v1/messaging-services", body)
    assert again.status_code == 409 and again.json()["field"] == "sid"
    for bad, field in (
        ({**body, "sid": "XX123"}, "sid"),
        ({**body, "sid": "MG" + "b" * 40}, "sid"),
        ({**body, "sid": "MG123"}, "sid"),  # as short as a typo
        ({**body, "sid": "MG" + "g" * 32}, "sid"),  # not hexadecimal
        ({**body, "purpose": "both"}, "purpose"),
        ({**body, "name": "  "}, "name"),
        ({**body, "name": 7}, "name"),
        ({"sid": "MG" + "a" * 32, "purpose": "blast"}, "name"),
        ({**body, "extra": 1}, "extra"),
    ):
        response = await call(http, world, "POST", "/api/v1/messaging-services", bad)
        assert response.status_code == 422, bad
        assert response.json()["error"] == "invalid" and response.json()["field"] == field
    listed = (await call(http, world, "GET", "/api/v1/messaging-services?limit=2")).json()
    assert listed["items"][0]["id"] == created.json()["id"] and listed["next_cursor"]
    rest = await call(
        http, world, "GET", f"/api/v1/messaging-services?cursor={listed['next_cursor']}"
    )
    assert len(rest.json()["items"]) == 1 and rest.json()["next_cursor"] is None


async def test_a_service_is_renamed_or_its_sid_corrected_and_names_stay_distinct(
    http: httpx.AsyncClient, world: World
) -> None:
    body = {"name": "Admissions texts", "sid": "MG" + "d" * 32, "purpose": "one_to_one"}
    created = (await call(http, world, "POST", "/api/v1/messaging-services", body)).json()
    twin = {**body, "name": "admissions TEXTS", "sid": "MG" + "e" * 32}
    refused = await call(http, world, "POST", "/api/v1/messaging-services", twin)
    assert refused.status_code == 409 and refused.json()["field"] == "name"

    path = f"/api/v1/messaging-services/{created['id']}"
    fixed = await call(http, world, "PATCH", path, {"name": "Admissions 1:1 texts"})
    assert fixed.status_code == 200 and fixed.json()["name"] == "Admissions 1:1 texts"
    same_name = await call(http, world, "PATCH", path, {"name": "Admissions 1:1 texts"})
    assert same_name.status_code == 200  # its own name is no clash
    sid = "MG" + "f" * 32
    corrected = await call(http, world, "PATCH", path, {"sid": sid})
    assert (corrected.json()["sid"], corrected.json()["purpose"]) == (sid, "one_to_one")
    other = f"/api/v1/messaging-services/{world.ids['blast_service']}"
    for patch, status, field in (
        ({"sid": sid}, 409, "sid"),
        ({"name": "ADMISSIONS 1:1 TEXTS"}, 409, "name"),
        ({"sid": "PN123"}, 422, "sid"),
        ({"purpose": "one_to_one"}, 422, "purpose"),
        ({"name": ""}, 422, "name"),
    ):
        response = await call(http, world, "PATCH", other, patch)
        assert (response.status_code, response.json()["field"]) == (status, field), patch
    missing = await call(http, world, "PATCH", "/api/v1/messaging-services/987654", {"name": "x"})
    assert missing.status_code == 404


async def test_a_number_removed_keeps_its_texts_and_new_ones_land_in_unrouted(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    number_b = world.numbers["b"]
    removed = await call(http, world, "DELETE", f"/api/v1/phone-numbers/{world.ids['number_b']}")
    assert removed.status_code == 204
    again = await call(http, world, "DELETE", f"/api/v1/phone-numbers/{world.ids['number_b']}")
    assert again.status_code == 404
    listed = (await call(http, world, "GET", "/api/v1/phone-numbers?limit=100")).json()["items"]
    assert number_b not in [n["number"] for n in listed]
    kept = await call(http, world, "GET", f"/api/v1/conversations/{world.ids['conv_b']}/messages")
    assert [m["body"] for m in kept.json()["items"]] == ["hi from Bea"]

    params = inbound_params("+16175550177", number_b, "Anyone still at this number?")
    assert (await signed_post(http, live_server.settings, "/twilio/messages", params)).is_success
    unrouted = f"/api/v1/inboxes/{world.ids['unrouted']}/conversations"
    found = (await call(http, world, "GET", unrouted)).json()["items"]
    assert "Anyone still at this number?" in [c["last_message"]["body"] for c in found]


async def test_phone_numbers_routing_and_mixed_purpose_warnings(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    body = {
        "number": "(415) 555-0199",
        "sid": "PN" + "c" * 32,
        "messaging_service_id": world.ids["service"],
        "inbox_id": world.ids["inbox_a"],
    }
    created = await call(http, world, "POST", "/api/v1/phone-numbers", body)
    assert created.status_code == 201, created.text
    number = created.json()
    assert number["number"] == "+14155550199" and number["inbox_id"] == world.ids["inbox_a"]
    assert number["warnings"] == []
    dup_number = await call(
        http, world, "POST", "/api/v1/phone-numbers", {**body, "sid": "PN" + "1" * 32}
    )
    assert dup_number.status_code == 409 and dup_number.json()["field"] == "number"
    dup_sid = await call(
        http, world, "POST", "/api/v1/phone-numbers", {**body, "number": "+14155550198"}
    )
    assert dup_sid.status_code == 409 and dup_sid.json()["field"] == "sid"
    for bad, field in (
        ({**body, "number": "not a number"}, "number"),
        ({**body, "number": "+1"}, "number"),
        ({**body, "messaging_service_id": 987654}, "messaging_service_id"),
        ({**body, "messaging_service_id": "1"}, "messaging_service_id"),
        ({**body, "inbox_id": 987654}, "inbox_id"),
        ({**body, "inbox_id": world.ids["unrouted"]}, "inbox_id"),
    ):
        response = await call(http, world, "POST", "/api/v1/phone-numbers", bad)
        assert response.status_code == 422, bad
        assert response.json()["field"] == field

    # A blast-service number routed to an inbox: allowed, with a warning.
    spare = world.ids["spare_number"]
    routed = await call(
        http, world, "PATCH", f"/api/v1/phone-numbers/{spare}", {"inbox_id": world.ids["inbox_b"]}
    )
    assert routed.status_code == 200
    assert [w["code"] for w in routed.json()["warnings"]] == ["mixed_purpose"]
    assert routed.json()["warnings"][0]["messaging_service_id"] == world.ids["blast_service"]
    inboxes = (await call(http, world, "GET", "/api/v1/inboxes")).json()["items"]
    warned = {i["id"]: [w["code"] for w in i["warnings"]] for i in inboxes}
    assert warned[world.ids["inbox_b"]] == ["mixed_purpose"] and warned[world.ids["inbox_a"]] == []

    # A 1:1 service that campaigns also use makes its inboxes mixed too.
    async with live_server.state.transaction() as s:
        s.add(Campaign(name="Fall", messaging_service_id=world.ids["service"], body="Hi"))
    again = await call(
        http,
        world,
        "PATCH",
        f"/api/v1/phone-numbers/{number['id']}",
        {"inbox_id": world.ids["inbox_a"]},
    )
    assert [w["code"] for w in again.json()["warnings"]] == ["mixed_purpose"]
    assert "campaigns" in again.json()["warnings"][0]["detail"]

    unrouted = await call(
        http, world, "PATCH", f"/api/v1/phone-numbers/{spare}", {"inbox_id": None}
    )
    assert unrouted.status_code == 200 and unrouted.json()["inbox_id"] is None
    assert unrouted.json()["warnings"] == []

    # Routed to an inbox of its own, as advised, a blast number warns of nothing.
    replies = await call(http, world, "POST", "/api/v1/inboxes", {"name": "Campaign replies"})
    own = await call(
        http, world, "PATCH", f"/api/v1/phone-numbers/{spare}", {"inbox_id": replies.json()["id"]}
    )
    assert own.status_code == 200 and own.json()["warnings"] == []
    inboxes = (await call(http, world, "GET", "/api/v1/inboxes")).json()["items"]
    assert [i["warnings"] for i in inboxes if i["id"] == replies.json()["id"]] == [[]]
    await call(http, world, "PATCH", f"/api/v1/phone-numbers/{spare}", {"inbox_id": None})
    missing = await call(http, world, "PATCH", f"/api/v1/phone-numbers/{spare}", {})
    assert missing.status_code == 422 and missing.json()["field"] == "inbox_id"
    listed = await call(
        http, world, "GET", f"/api/v1/phone-numbers?inbox_id={world.ids['inbox_a']}"
    )
    assert {n["id"] for n in listed.json()["items"]} == {world.ids["number_a"], number["id"]}
    bad_filter = await call(http, world, "GET", "/api/v1/phone-numbers?inbox_id=abc")
    assert bad_filter.status_code == 422


async def test_inboxes_and_notification_settings(http: httpx.AsyncClient, world: World) -> None:
    created = await call(http, world, "POST", "/api/v1/inboxes", {"name": "Housing"})
    assert created.status_code == 201 and created.json()["id"]
    inbox_id = created.json()["id"]
    dup = await call(http, world, "POST", "/api/v1/inboxes", {"name": "housing"})
    assert dup.status_code == 409 and dup.json()["field"] == "name"
    patch = {
        "name": "Housing office",
        "notifications": {"enabled": True, "delay_seconds": 600, "to": ["a@x.test", "b@x.test"]},
    }
    changed = await call(http, world, "PATCH", f"/api/v1/inboxes/{inbox_id}", patch)
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "Housing office"
    assert changed.json()["notifications"] == patch["notifications"]
    partial = await call(
        http, world, "PATCH", f"/api/v1/inboxes/{inbox_id}", {"notifications": {"to": "members"}}
    )
    assert partial.json()["notifications"] == {
        "enabled": True,
        "delay_seconds": 600,
        "to": "members",
    }
    for bad, field in (
        ({"notifications": {"enabled": "yes"}}, "enabled"),
        ({"notifications": {"delay_seconds": -1}}, "delay_seconds"),
        ({"notifications": {"delay_seconds": 1.5}}, "delay_seconds"),
        ({"notifications": {"to": "everyone"}}, "notifications.to"),
        ({"notifications": {"to": ["not-an-address"]}}, "notifications.to"),
        ({"notifications": {"to": []}}, "notifications.to"),
        ({"notifications": {"when": 1}}, "when"),
        ({"notifications": []}, "notifications"),
        ({"name": ""}, "name"),
    ):
        response = await call(http, world, "PATCH", f"/api/v1/inboxes/{inbox_id}", bad)
        assert response.status_code == 422, bad
        assert response.json()["field"] == field
    taken = await call(http, world, "PATCH", f"/api/v1/inboxes/{inbox_id}", {"name": "Finance"})
    assert taken.status_code == 409


async def test_members_join_and_leave(
    http: httpx.AsyncClient, world: World, access_spy: AccessSpy
) -> None:
    carol, inbox_a = world.users["carol"], world.ids["inbox_a"]
    url = f"/api/v1/inboxes/{inbox_a}/members/{carol}"
    assert (
        await call(http, world, "GET", f"/api/v1/inboxes/{inbox_a}", who="carol")
    ).status_code == 404
    added = await call(http, world, "PUT", url)
    assert added.status_code == 201 and added.json() == {"inbox_id": inbox_a, "user_id": carol}
    assert (await call(http, world, "PUT", url)).status_code == 200
    mine = await call(http, world, "GET", f"/api/v1/inboxes/{inbox_a}/conversations", who="carol")
    assert [c["id"] for c in mine.json()["items"]] == [world.ids["conv_a"]]
    members = await call(http, world, "GET", f"/api/v1/inboxes/{inbox_a}/members")
    assert carol in {m["id"] for m in members.json()["items"]}

    # Joining (once: adding again changes nothing) and leaving both re-check her sockets.
    assert (await call(http, world, "DELETE", url)).status_code == 204
    assert access_spy.users == [carol, carol]
    gone = await call(http, world, "GET", f"/api/v1/inboxes/{inbox_a}/conversations", who="carol")
    assert gone.status_code == 404
    assert (
        await call(http, world, "GET", f"/api/v1/contacts/{world.ids['contact_a']}", who="carol")
    ).status_code == 404
    unrouted = f"/api/v1/inboxes/{world.ids['unrouted']}/members/{carol}"
    refused = await call(http, world, "PUT", unrouted)
    assert refused.status_code == 422
    assert (
        await call(http, world, "PUT", f"/api/v1/inboxes/{inbox_a}/members/99999")
    ).status_code == 404


async def test_an_inbox_without_conversations_can_be_deleted(
    live_server: LiveServer, http: httpx.AsyncClient, world: World, access_spy: AccessSpy
) -> None:
    carol = world.users["carol"]
    inbox = (await call(http, world, "POST", "/api/v1/inboxes", {"name": "Scholarships"})).json()
    url = f"/api/v1/inboxes/{inbox['id']}"
    assert (await call(http, world, "PUT", f"{url}/members/{carol}")).status_code == 201
    number = "+16175550188"
    routed = await call(
        http,
        world,
        "POST",
        "/api/v1/phone-numbers",
        {
            "number": number,
            "sid": "PN" + "e" * 32,
            "messaging_service_id": world.ids["service"],
            "inbox_id": inbox["id"],
        },
    )
    assert routed.status_code == 201

    # Texts are never deleted with an inbox; the Unrouted inbox stays.
    busy = await call(http, world, "DELETE", f"/api/v1/inboxes/{world.ids['inbox_a']}")
    assert busy.status_code == 409
    assert busy.json()["detail"].startswith("Admissions has 1 conversation, whose texts")
    unrouted = await call(http, world, "DELETE", f"/api/v1/inboxes/{world.ids['unrouted']}")
    assert unrouted.status_code == 409
    assert (await call(http, world, "DELETE", "/api/v1/inboxes/987654")).status_code == 404
    assert (await call(http, world, "DELETE", url, who="carol")).status_code == 403
    assert access_spy.users == [carol]

    assert (await call(http, world, "DELETE", url)).status_code == 204
    # Her open pages lose it at once, and so do the admins'.
    assert sorted(access_spy.users) == sorted([carol, carol, world.users["admin"]])
    assert (await call(http, world, "DELETE", url)).status_code == 404
    assert (await call(http, world, "GET", url)).status_code == 404
    mine = (await call(http, world, "GET", "/api/v1/inboxes", who="carol")).json()["items"]
    assert mine == []
    numbers = (await call(http, world, "GET", "/api/v1/phone-numbers?limit=100")).json()["items"]
    assert [n["inbox_id"] for n in numbers if n["number"] == number] == [None]
    params = inbound_params("+16175550177", number, "Is the scholarship office open?")
    assert (await signed_post(http, live_server.settings, "/twilio/messages", params)).is_success
    landed = f"/api/v1/inboxes/{world.ids['unrouted']}/conversations"
    found = (await call(http, world, "GET", landed)).json()["items"]
    assert "Is the scholarship office open?" in [c["last_message"]["body"] for c in found]


async def test_users(http: httpx.AsyncClient, world: World, access_spy: AccessSpy) -> None:
    body = {
        "email": "New.Person@Example.test",
        "password": "long enough",
        "name": "New",
        "role": "staff",
    }
    created = await call(http, world, "POST", "/api/v1/users", body)
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["email"] == "new.person@example.test" and user["role"] == "staff"
    assert "password" not in user and "password_hash" not in user
    dup = await call(
        http, world, "POST", "/api/v1/users", {**body, "email": "new.person@EXAMPLE.test"}
    )
    assert dup.status_code == 409 and dup.json()["field"] == "email"
    for bad, field in (
        ({**body, "email": "nobody"}, "email"),
        ({**body, "password": "short"}, "password"),
        ({**body, "password": None}, "password"),
        ({**body, "role": "owner"}, "role"),
        ({"password": "long enough"}, "email"),
    ):
        response = await call(http, world, "POST", "/api/v1/users", bad)
        assert response.status_code == 422, bad
        assert response.json()["field"] == field

    url = f"/api/v1/users/{user['id']}"
    promoted = await call(http, world, "PATCH", url, {"role": "admin", "name": "Boss"})
    assert promoted.json()["role"] == "admin" and promoted.json()["name"] == "Boss"
    assert access_spy.users == []
    demoted = await call(http, world, "PATCH", url, {"role": "staff"})
    assert demoted.status_code == 200 and access_spy.users == [user["id"]]
    assert (await call(http, world, "GET", url)).json()["role"] == "staff"
    listed = await call(http, world, "GET", "/api/v1/users")
    assert listed.json()["items"][0]["id"] == user["id"]

    me = world.users["admin"]
    last = await call(http, world, "PATCH", f"/api/v1/users/{me}", {"active": False})
    assert last.status_code == 409 and last.json()["error"] == "last_admin"
    last = await call(http, world, "PATCH", f"/api/v1/users/{me}", {"role": "staff"})
    assert last.status_code == 409
    assert (await call(http, world, "PATCH", url, {"active": "no"})).status_code == 422
    assert (await call(http, world, "PATCH", url, {"email": "x@y.z"})).status_code == 422
