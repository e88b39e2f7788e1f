"""Contacts over HTTP: adding, who sees which contact, search, and hostile text kept as data."""

from __future__ import annotations

import httpx

from tests.api.conftest import World

HOSTILE = [
    "Robert'); DROP TABLE contacts;--",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    '"><img src=x onerror=alert(1)>',
    "%_\\",
    "名前 😀",
]


async def test_create_contact_and_conflicts(http: httpx.AsyncClient, world: World) -> None:
    body = {
        "phone": "617-555-0142",
        "first_name": " Maya ",
        "last_name": "Lopez",
        "email": "maya@example.test",
        "fields": {"program": "MBA", "year": 2027, "vip": True, "note": None},
    }
    created = await http.post("/api/v1/contacts", json=body, headers=world.auth("alice"))
    assert created.status_code == 201, created.text
    contact = created.json()
    assert contact["id"] and contact["phone"] == "+16175550142"
    assert contact["first_name"] == "Maya" and contact["name"] == "Maya Lopez"
    assert contact["fields"] == body["fields"]
    # Nobody has a conversation with it yet: anyone may learn its id (to text it).
    staff_dup = await http.post("/api/v1/contacts", json=body, headers=world.auth("bob"))
    assert staff_dup.status_code == 409 and staff_dup.json()["id"] == contact["id"]
    # A contact of another inbox: staff learn that the phone is taken, not which contact it is.
    bea = await http.get(f"/api/v1/contacts/{world.ids['contact_b']}", headers=world.auth("admin"))
    hidden = await http.post(
        "/api/v1/contacts", json={"phone": bea.json()["phone"]}, headers=world.auth("alice")
    )
    assert hidden.status_code == 409 and "id" not in hidden.json()
    assert "Bea" not in hidden.text
    admin_dup = await http.post(
        "/api/v1/contacts", json={"phone": "+16175550142"}, headers=world.auth("admin")
    )
    assert admin_dup.status_code == 409 and admin_dup.json()["id"] == contact["id"]
    # No conversation with it in her inboxes yet: staff do not see it, admins do.
    url = f"/api/v1/contacts/{contact['id']}"
    assert (await http.get(url, headers=world.auth("alice"))).status_code == 404
    record = await http.get(url, headers=world.auth("admin"))
    assert record.status_code == 200 and record.json()["conversations"] == []
    # Found by any of its words, in any order; every word must match.
    for q, found in (
        ("Maya Lopez", True),
        ("lopez  maya", True),
        ("maya example.test", True),
        ("617 555 0142", True),
        ("maya smith", False),
    ):
        items = (
            await http.get("/api/v1/contacts", params={"q": q}, headers=world.auth("admin"))
        ).json()["items"]
        assert (contact["id"] in [c["id"] for c in items]) is found, q
    for bad, field in (
        ({"phone": "hello"}, "phone"),
        ({}, "phone"),
        ({"phone": "+16175550143", "email": "nope"}, "email"),
        ({"phone": "+16175550143", "fields": {"bad key": 1}}, "fields.bad key"),
        ({"phone": "+16175550143", "fields": {"k": [1]}}, "fields.k"),
        ({"phone": "+16175550143", "fields": "x"}, "fields"),
        ({"phone": "+16175550143", "fields": {f"f{i}": 1 for i in range(51)}}, "fields"),
        ({"phone": "+16175550143", "fields": {"essay": "x" * 2001}}, "fields.essay"),
        ({"phone": "+16175550143", "first_name": "x" * 201}, "first_name"),
        ({"phone": "+16175550143", "nickname": "x"}, "nickname"),
    ):
        response = await http.post("/api/v1/contacts", json=bad, headers=world.auth("alice"))
        assert response.status_code == 422, bad
        assert response.json()["field"] == field


async def test_our_own_numbers_are_nobody_to_text(http: httpx.AsyncClient, world: World) -> None:
    ours = world.numbers["a"]
    refused = await http.post("/api/v1/contacts", json={"phone": ours}, headers=world.auth("alice"))
    assert refused.status_code == 422 and refused.json()["field"] == "phone"
    assert refused.json()["detail"] == f"{ours} is one of our own numbers"

    # A contact that became one of our numbers later (a number bought back, say) is not texted.
    phone = "+16175550177"
    made = await http.post("/api/v1/contacts", json={"phone": phone}, headers=world.auth("admin"))
    assert made.status_code == 201
    number = {
        "number": phone,
        "sid": "PN" + "d" * 32,
        "messaging_service_id": world.ids["service"],
        "inbox_id": world.ids["inbox_b"],
    }
    assert (
        await http.post("/api/v1/phone-numbers", json=number, headers=world.auth("admin"))
    ).status_code == 201
    sent = await http.post(
        f"/api/v1/contacts/{made.json()['id']}/messages",
        json={"inbox_id": world.ids["inbox_a"], "body": "hello"},
        headers=world.auth("admin"),
    )
    assert sent.status_code == 422, sent.text
    assert "is one of our own numbers" in sent.json()["detail"]
    record = await http.get(f"/api/v1/contacts/{made.json()['id']}", headers=world.auth("admin"))
    assert record.json()["conversations"] == []  # refused before anything was written


async def test_contacts_visible_through_conversations(
    http: httpx.AsyncClient, world: World
) -> None:
    alice, bob, admin = world.auth("alice"), world.auth("bob"), world.auth("admin")
    listed = (await http.get("/api/v1/contacts", headers=alice)).json()
    assert [c["id"] for c in listed["items"]] == [world.ids["contact_a"]]
    bobs = (await http.get("/api/v1/contacts", headers=bob)).json()
    assert {c["id"] for c in bobs["items"]} == {world.ids["contact_b"], world.ids["contact_shared"]}
    everyone = (await http.get("/api/v1/contacts", headers=admin)).json()
    assert len(everyone["items"]) == 4

    record = (await http.get(f"/api/v1/contacts/{world.ids['contact_a']}", headers=alice)).json()
    assert [c["id"] for c in record["conversations"]] == [world.ids["conv_a"]]
    assert record["conversations"][0]["unread_count"] == 1
    for contact in ("contact_b", "contact_u", "contact_shared"):
        hidden = await http.get(f"/api/v1/contacts/{world.ids[contact]}", headers=alice)
        assert hidden.status_code == 404 and hidden.json()["error"] == "not_found"
    only_unrouted = await http.get(f"/api/v1/contacts/{world.ids['contact_u']}", headers=admin)
    assert [c["inbox_id"] for c in only_unrouted.json()["conversations"]] == [world.ids["unrouted"]]

    found = (await http.get("/api/v1/contacts", params={"q": "bea"}, headers=bob)).json()
    assert [c["first_name"] for c in found["items"]] == ["Bea"]
    nothing = (await http.get("/api/v1/contacts", params={"q": "bea"}, headers=alice)).json()
    assert nothing["items"] == []


async def test_hostile_text_is_stored_and_returned_as_plain_data(
    http: httpx.AsyncClient, world: World
) -> None:
    admin = world.auth("admin")
    for n, text in enumerate(HOSTILE):
        body = {"phone": f"+1617555{n + 300:04d}", "first_name": text, "fields": {"note": text}}
        created = await http.post("/api/v1/contacts", json=body, headers=admin)
        assert created.status_code == 201, (text, created.text)
        assert created.headers["content-type"].startswith("application/json")
        back = (await http.get(f"/api/v1/contacts/{created.json()['id']}", headers=admin)).json()
        assert back["first_name"] == text.strip() and back["fields"]["note"] == text
        found = (await http.get("/api/v1/contacts", params={"q": text}, headers=admin)).json()
        assert [c["id"] for c in found["items"]] == [created.json()["id"]], text
        inbox = await http.post("/api/v1/inboxes", json={"name": f"{text} {n}"}, headers=admin)
        assert inbox.status_code == 201 and inbox.json()["name"] == f"{text} {n}".strip()
    # Wildcards in a search are literal, and the table is still there.
    assert len((await http.get("/api/v1/contacts?q=%25", headers=admin)).json()["items"]) == 1
    everything = (await http.get("/api/v1/contacts?limit=200", headers=admin)).json()
    assert len(everything["items"]) == 4 + len(HOSTILE)
    for param in ("q", "cursor", "filter"):
        response = await http.get(
            f"/api/v1/inboxes/{world.ids['inbox_a']}/conversations",
            params={param: HOSTILE[0]},
            headers=admin,
        )
        assert response.status_code in (200, 422), (param, response.text)


async def test_an_oversized_json_body_is_refused_however_it_is_sent(
    http: httpx.AsyncClient, world: World
) -> None:
    """Past 1 MB a JSON body is refused with 413, by its Content-Length or, sent in chunks,
    as soon as it passes the limit; nothing is stored."""
    body = b'{"phone": "+16175550190", "fields": {"essay": "' + b"x" * 1_000_000 + b'"}}'
    headers = {**world.auth("alice"), "Content-Type": "application/json"}

    async def chunks():  # noqa: ANN202 - an async generator of bytes
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    for content in (body, chunks()):
        refused = await http.post("/api/v1/contacts", content=content, headers=headers)
        assert refused.status_code == 413
        assert refused.json() == {
            "error": "too_large",
            "detail": "the body is larger than 1,000,000 bytes",
        }
    found = await http.get(
        "/api/v1/contacts", params={"q": "+16175550190"}, headers=world.auth("admin")
    )
    assert found.json()["items"] == []


async def test_members_correct_a_contact_and_bad_changes_are_refused(
    http: httpx.AsyncClient, world: World
) -> None:
    url = f"/api/v1/contacts/{world.ids['contact_a']}"
    changed = await http.patch(
        url,
        json={"first_name": " Annie ", "email": "annie@example.edu", "fields": {"year": 2027}},
        headers=world.auth("alice"),
    )
    assert changed.status_code == 200, changed.text
    contact = changed.json()
    assert (contact["name"], contact["email"], contact["fields"]) == (
        "Annie",
        "annie@example.edu",
        {"year": 2027},
    )
    record = await http.get(url, headers=world.auth("admin"))
    assert record.json()["name"] == "Annie"
    for bad, field in (
        ({"email": "nope"}, "email"),
        ({"phone": "+16175550100"}, "phone"),  # a contact is its number: not changed here
        ({"fields": {"bad key": 1}}, "fields.bad key"),
        ({"first_name": "x" * 201}, "first_name"),
        ({}, None),
    ):
        refused = await http.patch(url, json=bad, headers=world.auth("alice"))
        assert refused.status_code == 422, bad
        assert refused.json().get("field") == field
    # Bob's inbox does not talk with Annie: to him she does not exist.
    hidden = await http.patch(url, json={"first_name": "X"}, headers=world.auth("bob"))
    assert hidden.status_code == 404
    assert (await http.get(url, headers=world.auth("admin"))).json()["name"] == "Annie"
