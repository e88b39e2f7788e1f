"""The campaigns admin API: creating, recipients (list, CSV, filter), merge fields, preview."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from server.routes import campaigns as campaign_routes
from server.services import campaigns
from store.models import (
    Campaign,
    CampaignRecipient,
    Contact,
    Conversation,
    Message,
    MessagingService,
)
from tests.support.live_server import LiveServer
from tests.support.messaging import inbound_params, signed_post, transactions_of
from tests.worker.support import Blast, add_contacts, phone

CAMPAIGNS = "/api/v1/campaigns"


async def post(
    http: httpx.AsyncClient, blast: Blast, path: str = "", **body: Any
) -> httpx.Response:
    return await http.post(CAMPAIGNS + path, json=body, headers=blast.auth)


def draft(blast: Blast, **extra: Any) -> dict[str, Any]:
    return {"name": "Open day", "messaging_service_id": blast.service_id, **extra}


async def contact(server: LiveServer, number: str) -> Contact:
    async with server.state.reading() as session:
        found = await session.scalar(select(Contact).where(Contact.phone == number))
    assert found is not None
    return found


async def test_a_missing_merge_field_is_refused_naming_the_contacts(
    twilio_server: LiveServer, twilio_http: httpx.AsyncClient, blast: Blast
) -> None:
    with_school = await add_contacts(twilio_server.state, 3, fields={"school": "Elm High"})
    without = await add_contacts(twilio_server.state, 2, start=3000)
    response = await post(
        twilio_http,
        blast,
        **draft(blast, body="Hi {first_name}, see you at {school}!"),
        contact_ids=with_school + without,
    )
    assert response.status_code == 422
    error = response.json()
    assert error["error"] == "missing_merge_fields"
    assert error["missing_count"] == 2
    assert [(m["contact_id"], m["fields"]) for m in error["missing"]] == [
        (without[0], ["school"]),
        (without[1], ["school"]),
    ]
    assert "First0 Last0 (+16175553000) has no school" in error["detail"]
    assert "or a fallback in the text, like {school|there}" in error["detail"]
    listed = await twilio_http.get(CAMPAIGNS, headers=blast.auth)
    assert listed.json() == {"items": [], "next_cursor": None}

    created = await post(
        twilio_http,
        blast,
        **draft(blast, body="Hi {first_name}, see you at {school}!"),
        contact_ids=with_school,
    )
    assert created.status_code == 201, created.text
    preview = created.json()["preview"]["items"]
    assert preview[0]["body"] == "Hi First0, see you at Elm High!"


async def test_fields_with_a_fallback_never_hold_a_campaign_back(
    twilio_server: LiveServer, twilio_http: httpx.AsyncClient, blast: Blast
) -> None:
    with_school = await add_contacts(twilio_server.state, 1, fields={"school": "Elm High"})
    without = await add_contacts(twilio_server.state, 1, start=3000)
    body = "Hi {first_name}, see you at {school|our campus}!"
    created = await post(
        twilio_http, blast, **draft(blast, body=body), contact_ids=with_school + without
    )
    assert created.status_code == 201, created.text
    assert [item["body"] for item in created.json()["preview"]["items"]] == [
        "Hi First0, see you at Elm High!",
        "Hi First0, see you at our campus!",
    ]
    sent = await post(twilio_http, blast, f"/{created.json()['id']}/send")
    assert sent.status_code == 200, sent.text


async def test_recipients_given_as_data_are_normalised_merged_and_saved_on_contacts(
    twilio_server: LiveServer, twilio_http: httpx.AsyncClient, blast: Blast
) -> None:
    response = await post(
        twilio_http,
        blast,
        **draft(blast, body="Hello {first_name} {last_name}"),
        recipients=[
            {"phone": "(617) 555-0100", "first_name": "Ann"},
            {"phone": "+1 617 555 0100", "last_name": "Lee"},
            {"phone": "617.555.0101", "first_name": "Bo", "last_name": "Chan"},
        ],
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["counts"]["total"] == 2
    assert body["duplicates_merged"] == 1
    ann = await contact(twilio_server, "+16175550100")
    assert (ann.first_name, ann.last_name) == ("Ann", "Lee")
    assert [item["body"] for item in body["preview"]["items"]] == ["Hello Ann Lee", "Hello Bo Chan"]

    # A list never renames a contact who has a name, nor changes an email; it fills in what
    # a contact lacks and merges fields.
    again = await post(
        twilio_http,
        blast,
        **draft(blast, body="Hello {first_name} {last_name}"),
        recipients=[
            {"phone": "6175550100", "first_name": "Wrong", "last_name": "Person"},
            {"phone": "6175550101", "first_name": "Bob", "fields": {"grade": "12"}},
        ],
    )
    assert again.status_code == 201, again.text
    assert [item["body"] for item in again.json()["preview"]["items"]] == [
        "Hello Ann Lee",
        "Hello Bo Chan",
    ]
    bo = await contact(twilio_server, "+16175550101")
    assert (bo.first_name, bo.last_name, bo.fields) == ("Bo", "Chan", {"grade": "12"})

    bad = await post(
        twilio_http,
        blast,
        **draft(blast, body="Hi"),
        recipients=[{"phone": "+16175550102"}, {"phone": "not a number"}, {"name": "x"}],
    )
    assert bad.status_code == 422
    assert bad.json()["error"] == "invalid_recipients"
    assert [e["index"] for e in bad.json()["errors"]] == [1, 2]
    assert "item 2: not a phone number: 'not a number'" in bad.json()["detail"]
    async with twilio_server.state.reading() as session:
        assert await session.scalar(select(Contact).where(Contact.phone == "+16175550102")) is None


async def test_csv_upload_reports_bad_rows_by_line_and_adds_nothing(
    twilio_server: LiveServer, twilio_http: httpx.AsyncClient, blast: Blast
) -> None:
    created = await post(twilio_http, blast, **draft(blast, body="Hi {first_name} ({grade})"))
    campaign_id = created.json()["id"]
    bad_csv = (
        "Phone,First Name,Last Name,Grade\n"
        "617-555-0110,Ann,Lee,11\n"
        "hello,Bo,Chan,12\n"
        "617-555-0112,Cy\n"
        ",Di,Fox,10\n"
    )
    with transactions_of(twilio_server.state, "begin") as begun:
        response = await twilio_http.post(
            f"{CAMPAIGNS}/{campaign_id}/recipients",
            content=bad_csv,
            headers={**blast.auth, "Content-Type": "text/csv"},
        )
    assert response.status_code == 422
    state = twilio_server.state
    if state.engine is not state.read_engine:  # SQLite: its write engine, its one write lock
        assert begun == []  # the CSV is read before the write transaction: refused without it
    error = response.json()
    assert error["error"] == "invalid_recipients"
    assert [(e["line"], e["error"]) for e in error["errors"]] == [
        (3, "not a phone number: 'hello'"),
        (4, "expected 4 cells, found 2"),
        (5, "no phone number"),
    ]
    shown = await twilio_http.get(f"{CAMPAIGNS}/{campaign_id}", headers=blast.auth)
    assert shown.json()["counts"]["total"] == 0

    good_csv = (
        "\ufeffphone,first_name,grade\r\n"
        "617-555-0110,Ann,11\r\n"
        '"(617) 555-0111","Bo, Jr.",12\r\n'
        "+16175550110,,11\r\n"
    )
    upload = await twilio_http.post(
        f"{CAMPAIGNS}/{campaign_id}/recipients",
        files={"file": ("students.csv", good_csv.encode(), "text/csv")},
        headers=blast.auth,
    )
    assert upload.status_code == 200, upload.text
    assert upload.json() == {
        "added": 2,
        "already_recipients": 0,
        "duplicates_merged": 1,
        "total": 2,
    }
    bo = await contact(twilio_server, "+16175550111")
    assert (bo.first_name, bo.fields) == ("Bo, Jr.", {"grade": "12"})
    preview = await twilio_http.get(f"{CAMPAIGNS}/{campaign_id}/preview", headers=blast.auth)
    assert [i["body"] for i in preview.json()["items"]] == ["Hi Ann (11)", "Hi Bo, Jr. (12)"]

    # Rows for someone the campaign already has, and a CSV lacking the merge field, are told.
    again = await twilio_http.post(
        f"{CAMPAIGNS}/{campaign_id}/recipients",
        content="phone,first_name\n6175550110,Ann\n6175550113,Eve\n",
        headers={**blast.auth, "Content-Type": "text/csv"},
    )
    assert again.status_code == 422
    assert again.json()["error"] == "missing_merge_fields"
    assert [m["phone"] for m in again.json()["missing"]] == ["+16175550113"]


async def test_a_csv_sent_as_json_text_may_be_larger_than_other_json_bodies(
    twilio_server: LiveServer, twilio_http: httpx.AsyncClient, blast: Blast
) -> None:
    """The admin pages send a chosen CSV file as the `csv` text of a JSON body; a big list is
    megabytes of it, past the 1 MB other JSON bodies may have."""
    note = "n" * 600
    rows = "".join(f"617555{2000 + i:04d},Student {i},{note}\n" for i in range(2000))
    csv_text = "phone,first_name,note\n" + rows
    created = await post(twilio_http, blast, **draft(blast, body="Hi {first_name}!"), csv=csv_text)
    assert len(created.request.content) > 1_000_000
    assert created.status_code == 201, created.text
    assert created.json()["counts"]["total"] == 2000
    more = await post(
        twilio_http,
        blast,
        f"/{created.json()['id']}/recipients",
        csv="phone,first_name\n6175554000,Late\n6175552000,Student 0\n",
    )
    assert more.json() == {
        "added": 1,
        "already_recipients": 1,
        "duplicates_merged": 0,
        "total": 2001,
    }
    late = await contact(twilio_server, "+16175554000")
    assert late.first_name == "Late"


async def post_csv(
    http: httpx.AsyncClient, blast: Blast, campaign_id: int, csv_text: str
) -> httpx.Response:
    return await http.post(
        f"{CAMPAIGNS}/{campaign_id}/recipients",
        content=csv_text,
        headers={**blast.auth, "Content-Type": "text/csv"},
    )


async def recipient_phones(http: httpx.AsyncClient, blast: Blast, campaign_id: int) -> list[str]:
    listed = await http.get(f"{CAMPAIGNS}/{campaign_id}/recipients", headers=blast.auth)
    return [item["contact"]["phone"] for item in listed.json()["items"]]


async def test_an_import_is_checked_before_anything_is_written_then_written_in_chunks(
    twilio_server: LiveServer,
    twilio_http: httpx.AsyncClient,
    blast: Blast,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Merge fields are judged on the values the import will leave each person with, before
    any write: a refused list creates and changes nobody. An accepted one is written a few
    contacts per transaction and keeps its order."""
    monkeypatch.setattr(campaigns, "IMPORT_CHUNK", 2)
    state = twilio_server.state
    [no_grade] = await add_contacts(state, 1, start=2000)
    [graded] = await add_contacts(state, 1, start=2001, fields={"grade": "9"})
    created = await post(twilio_http, blast, **draft(blast, body="Hi {first_name} ({grade})"))
    campaign_id = created.json()["id"]
    rows = (
        "phone,first_name,grade\n"
        "6175552000,,11\n"  # known, given a grade by this import
        "6175552001,Bea,\n"  # known: keeps its name and grade 9 (a blank changes nothing)
        "6175550300,Cy,10\n"  # new
    )
    with transactions_of(state, "begin") as begun:
        refused = await post_csv(twilio_http, blast, campaign_id, rows + "6175550301,Di,\n")
    assert refused.status_code == 422, refused.text
    assert refused.json()["missing"] == [
        {"contact_id": None, "phone": "+16175550301", "name": "Di", "fields": ["grade"]}
    ]
    if state.engine is not state.read_engine:  # SQLite: its write engine, its one write lock
        assert begun == []
    async with state.reading() as session:
        new = await session.scalars(select(Contact).where(Contact.phone.like("+161755503%")))
        assert new.all() == []
        first = await session.get(Contact, no_grade)
        assert first is not None and first.fields == {}

    more = "6175550301,Di,12\n6175550302,Ed,12\n"
    with transactions_of(state, "commit") as committed:
        accepted = await post_csv(twilio_http, blast, campaign_id, rows + more)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["added"] == 5
    if state.engine is not state.read_engine:
        assert len(committed) == 3 + 1  # 5 people 2 at a time, then the recipients
    assert await recipient_phones(twilio_http, blast, campaign_id) == [
        "+16175552000",
        "+16175552001",
        "+16175550300",
        "+16175550301",
        "+16175550302",
    ]
    preview = await twilio_http.get(f"{CAMPAIGNS}/{campaign_id}/preview", headers=blast.auth)
    assert [item["body"] for item in preview.json()["items"]] == [
        "Hi First0 (11)",
        "Hi First0 (9)",
        "Hi Cy (10)",
        "Hi Di (12)",
        "Hi Ed (12)",
    ]
    assert (await contact(twilio_server, "+16175552001")).id == graded


async def test_inbound_texts_are_stored_while_a_big_import_runs_not_after_it(
    twilio_server: LiveServer,
    twilio_http: httpx.AsyncClient,
    blast: Blast,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On SQLite a write transaction holds the database's one write lock: an import written
    in one would keep every inbound webhook waiting until it ends. Written in chunks, the
    contacts of texts arriving meanwhile are made between the import's."""
    monkeypatch.setattr(campaigns, "IMPORT_CHUNK", 50)
    csv_text = "phone,first_name\n" + "".join(f"61755{40000 + i},P{i}\n" for i in range(1500))
    importing = asyncio.create_task(
        post(twilio_http, blast, **draft(blast, body="Hi {first_name}"), csv=csv_text)
    )
    senders: list[str] = []
    while not importing.done():
        senders.append(f"+1617556{len(senders):04d}")
        params = inbound_params(senders[-1], blast.number, "Is the open day still on?")
        answer = await signed_post(twilio_http, twilio_server.settings, "/twilio/messages", params)
        assert answer.status_code == 200
    assert (await importing).status_code == 201
    async with twilio_server.state.reading() as session:
        imported = (
            await session.execute(
                select(func.min(Contact.id), func.max(Contact.id)).where(
                    Contact.phone.like("+161755%"), Contact.first_name.like("P%")
                )
            )
        ).one()
        texted = await session.scalars(select(Contact.id).where(Contact.phone.in_(senders)))
        between = [i for i in texted if imported[0] < i < imported[1]]
    assert between, f"no text was stored while the import ran (imported ids {imported})"


async def test_an_oversized_csv_is_refused_as_it_arrives_and_adds_nothing(
    twilio_server: LiveServer,
    twilio_http: httpx.AsyncClient,
    blast: Blast,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the CSV limit an upload is refused with 413 whichever way it comes: a text/csv body
    or a multipart file, with a Content-Length or in chunks (read no further than the limit)."""
    monkeypatch.setattr(campaign_routes, "MAX_CSV_BYTES", 2_000)
    created = await post(twilio_http, blast, **draft(blast, body="Hi!"))
    path = f"{CAMPAIGNS}/{created.json()['id']}/recipients"
    csv_bytes = b"phone\n" + b"".join(b"617555%04d\n" % i for i in range(7_000))
    assert len(csv_bytes) > 2_000 + campaign_routes.MULTIPART_SLACK

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(csv_bytes), 8_192):
            yield csv_bytes[start : start + 8_192]

    as_csv = {**blast.auth, "Content-Type": "text/csv"}
    for content in (csv_bytes, chunks()):
        refused = await twilio_http.post(path, content=content, headers=as_csv)
        assert refused.status_code == 413
        assert refused.json()["detail"] == "the CSV is larger than 2,000 bytes"
    upload = await twilio_http.post(
        path, files={"file": ("big.csv", csv_bytes, "text/csv")}, headers=blast.auth
    )
    assert upload.status_code == 413
    assert upload.json()["detail"] == "the upload is larger than 67,536 bytes"
    shown = await twilio_http.get(f"{CAMPAIGNS}/{created.json()['id']}", headers=blast.auth)
    assert shown.json()["counts"]["total"] == 0


async def test_filter_picks_contacts_by_inbox_and_field(
    twilio_server: LiveServer, twilio_http: httpx.AsyncClient, blast: Blast
) -> None:
    await add_contacts(twilio_server.state, 3, fields={"year": "2"})
    await add_contacts(twilio_server.state, 2, start=3000, fields={"year": "3"})
    response = await post(
        twilio_http, blast, **draft(blast, body="Year 2 news"), filter={"fields": {"year": "2"}}
    )
    assert response.status_code == 201, response.text
    assert response.json()["counts"]["total"] == 3
    empty = await post(twilio_http, blast, **draft(blast, body="x"), filter={})
    assert empty.status_code == 422


async def test_preview_counts_segments_and_encoding(
    twilio_server: LiveServer, twilio_http: httpx.AsyncClient, blast: Blast
) -> None:
    ids = await add_contacts(twilio_server.state, 2)
    long_body = "Reminder: " + "x" * 160
    created = await post(twilio_http, blast, **draft(blast, body=long_body), contact_ids=ids)
    preview = created.json()["preview"]
    assert preview["template"] == {"encoding": "GSM-7", "segments": 2}
    emoji = await post(
        twilio_http, blast, **draft(blast, body="Hi {first_name} 🎉"), contact_ids=ids
    )
    item = emoji.json()["preview"]["items"][0]
    assert (item["body"], item["encoding"], item["segments"]) == ("Hi First0 🎉", "UCS-2", 1)


async def test_only_blast_services_send_campaigns_and_mixed_inboxes_are_warned(
    twilio_server: LiveServer, twilio_http: httpx.AsyncClient, blast: Blast
) -> None:
    world = blast.world
    one_to_one = await post(
        twilio_http, blast, name="x", messaging_service_id=world.service_a, body="hi"
    )
    assert one_to_one.status_code == 409
    assert one_to_one.json()["error"] == "service_not_blast"

    # The seeded blast service B has a number in the Admissions inbox, next to 1:1 numbers.
    mixed = await post(
        twilio_http, blast, name="x", messaging_service_id=world.service_b, body="hi"
    )
    assert mixed.status_code == 201
    [warning] = mixed.json()["warnings"]
    assert (warning["code"], warning["inbox_id"]) == ("mixed_inbox", world.admissions)

    clean = await post(twilio_http, blast, **draft(blast, body="hi"))
    assert clean.json()["warnings"] == []


async def test_bad_input_gets_clear_errors(
    twilio_server: LiveServer, twilio_http: httpx.AsyncClient, blast: Blast
) -> None:
    cases = [
        ({"body": "hi", "rate_per_second": 0}, 422),
        ({"body": "hi", "start_at": "2030-01-01T09:00:00"}, 422),
        ({"body": "hi", "start_at": "soon"}, 422),
        ({"body": "hi", "start_at": "2020-01-01T09:00:00Z"}, 422),
        ({"body": ""}, 422),
        ({"body": "hi", "colour": "red"}, 422),
        ({"body": "hi", "contact_ids": [1], "filter": {"all": True}}, 422),
        ({"body": "hi", "contact_ids": [999999]}, 422),
        ({"body": "hi", "messaging_service_id": "one"}, 422),
        # Numbers no BIGINT holds name nothing: refused, not a driver error and a 500.
        ({"body": "hi", "messaging_service_id": 2**80}, 422),
        ({"body": "hi", "contact_ids": [2**80]}, 422),
        ({"body": "hi", "contact_ids": [True]}, 422),
        ({"body": "hi", "filter": {"inbox_ids": [-(2**70)]}}, 422),
    ]
    for extra, status in cases:
        response = await post(twilio_http, blast, **{**draft(blast), **extra})
        assert response.status_code == status, (extra, response.text)
        assert set(response.json()) >= {"error", "detail"}
    not_json = await twilio_http.post(CAMPAIGNS, content="name=x", headers=blast.auth)
    assert not_json.status_code == 415
    assert (await twilio_http.get(f"{CAMPAIGNS}/12345", headers=blast.auth)).status_code == 404


async def test_recipients_are_listed_a_page_at_a_time(
    twilio_server: LiveServer, twilio_http: httpx.AsyncClient, blast: Blast
) -> None:
    people = await add_contacts(twilio_server.state, 60)
    created = await post(twilio_http, blast, **draft(blast, body="Hi!"), contact_ids=people)
    path = f"{CAMPAIGNS}/{created.json()['id']}/recipients"
    first = (await twilio_http.get(path, headers=blast.auth)).json()
    second = (
        await twilio_http.get(path, params={"cursor": first["next_cursor"]}, headers=blast.auth)
    ).json()
    assert second["next_cursor"] is None
    listed = [item["contact"]["id"] for item in first["items"] + second["items"]]
    assert (len(first["items"]), listed) == (50, people)
    assert {item["state"] for item in first["items"]} == {"pending"}
    for cursor in ("abc", "9" * 30, "-1"):
        refused = await twilio_http.get(path, params={"cursor": cursor}, headers=blast.auth)
        assert refused.status_code == 422, cursor


async def test_staff_may_not_touch_campaigns(
    twilio_server: LiveServer, twilio_http: httpx.AsyncClient, blast: Blast
) -> None:
    staff = blast.world.auth("member")
    assert (await twilio_http.get(CAMPAIGNS, headers=staff)).status_code == 403
    created = await twilio_http.post(CAMPAIGNS, json=draft(blast, body="hi"), headers=staff)
    assert created.status_code == 403
    assert (await twilio_http.get(CAMPAIGNS)).status_code == 401


async def test_sending_needs_a_draft_with_recipients(
    twilio_server: LiveServer, twilio_http: httpx.AsyncClient, blast: Blast
) -> None:
    empty = (await post(twilio_http, blast, **draft(blast, body="hi"))).json()
    response = await post(twilio_http, blast, f"/{empty['id']}/send")
    assert (response.status_code, response.json()["error"]) == (409, "no_recipients")
    assert (await post(twilio_http, blast, f"/{empty['id']}/pause")).status_code == 409

    ids = await add_contacts(twilio_server.state, 1)
    async with twilio_server.state.transaction() as session:
        bare = MessagingService(sid="MG" + "9" * 32, name="No numbers", purpose="blast")
        session.add(bare)
    created = await post(
        twilio_http, blast, name="x", messaging_service_id=bare.id, body="hi", contact_ids=ids
    )
    response = await post(twilio_http, blast, f"/{created.json()['id']}/send")
    assert (response.status_code, response.json()["error"]) == (409, "no_numbers")

    ready = (await post(twilio_http, blast, **draft(blast, body="hi"), contact_ids=ids)).json()
    sent = await post(twilio_http, blast, f"/{ready['id']}/send")
    assert sent.json()["status"] == "sending"
    assert sent.json()["from_number"] == blast.number
    again = await post(twilio_http, blast, f"/{ready['id']}/send")
    assert (again.status_code, again.json()["error"]) == (409, "bad_status")
    more = await post(twilio_http, blast, f"/{ready['id']}/recipients", contact_ids=ids)
    assert (more.status_code, more.json()["error"]) == (409, "not_draft")
    assert phone(2000) == (await contact(twilio_server, phone(2000))).phone


async def test_sending_checks_merge_fields_again_on_the_recipients_as_they_are_now(
    twilio_server: LiveServer, twilio_http: httpx.AsyncClient, blast: Blast
) -> None:
    ids = await add_contacts(twilio_server.state, 3, fields={"school": "Elm High"})
    body = "Hi {first_name}, see you at {school}!"
    ready = (await post(twilio_http, blast, **draft(blast, body=body), contact_ids=ids)).json()
    corrected = await twilio_http.patch(
        f"/api/v1/contacts/{ids[1]}", json={"fields": {}}, headers=blast.auth
    )
    assert corrected.status_code == 200, corrected.text
    refused = await post(twilio_http, blast, f"/{ready['id']}/send")
    assert refused.status_code == 422
    assert refused.json()["missing"] == [
        {"contact_id": ids[1], "phone": phone(2001), "name": "First1 Last1", "fields": ["school"]}
    ]
    shown = await twilio_http.get(f"{CAMPAIGNS}/{ready['id']}", headers=blast.auth)
    assert shown.json()["status"] == "draft"

    contact = f"/api/v1/contacts/{ids[1]}"
    school = {"fields": {"school": "Elm High"}}
    assert (await twilio_http.patch(contact, json=school, headers=blast.auth)).is_success
    assert (await post(twilio_http, blast, f"/{ready['id']}/send")).status_code == 200
    # Sent already: a second send is refused for that, whatever the contacts now lack.
    assert (await twilio_http.patch(contact, json={"fields": {}}, headers=blast.auth)).is_success
    again = await post(twilio_http, blast, f"/{ready['id']}/send")
    assert (again.status_code, again.json()["error"]) == (409, "bad_status")


async def test_a_campaign_that_sent_nothing_can_be_deleted(
    twilio_server: LiveServer, twilio_http: httpx.AsyncClient, blast: Blast
) -> None:
    async def created(name: str) -> int:
        made = await post(
            twilio_http,
            blast,
            **draft(blast, name=name, body="Hello!"),
            recipients=[{"phone": "6175550170"}, {"phone": "6175550171"}],
        )
        assert made.status_code == 201, made.text
        return int(made.json()["id"])

    async def delete(campaign_id: int) -> httpx.Response:
        return await twilio_http.delete(f"{CAMPAIGNS}/{campaign_id}", headers=blast.auth)

    # A draft goes, recipients and all; its contacts stay.
    typo = await created("Opne day")
    assert (await delete(typo)).status_code == 204
    assert (await twilio_http.get(f"{CAMPAIGNS}/{typo}", headers=blast.auth)).status_code == 404
    assert (await delete(typo)).status_code == 404
    async with twilio_server.state.reading() as session:
        left = await session.scalar(
            select(func.count())
            .select_from(CampaignRecipient)
            .where(CampaignRecipient.campaign_id == typo)
        )
        assert left == 0
    assert (await contact(twilio_server, "+16175550170")).phone == "+16175550170"

    # One under way is not deleted; canceled before a text went, it is.
    started = await created("Open day")
    assert (await post(twilio_http, blast, f"/{started}/send")).status_code == 200
    busy = await delete(started)
    assert (busy.status_code, busy.json()["error"]) == (409, "bad_status")
    assert (await post(twilio_http, blast, f"/{started}/cancel")).status_code == 200
    assert (await delete(started)).status_code == 204

    # One that sent texts stays: it is the record of what went out.
    sent = await created("Sent one")
    async with twilio_server.state.transaction() as session:
        await session.execute(update(Campaign).where(Campaign.id == sent).values(status="canceled"))
        conversation = Conversation(
            inbox_id=blast.inbox_id, contact_id=(await contact(twilio_server, "+16175550171")).id
        )
        session.add(conversation)
        await session.flush()
        session.add(
            Message(
                conversation_id=conversation.id,
                direction="outbound",
                tag="campaign",
                body="Hello!",
                status="delivered",
                from_number=blast.number,
                to_number="+16175550171",
                campaign_id=sent,
            )
        )
    kept = await delete(sent)
    assert (kept.status_code, kept.json()["error"]) == (409, "campaign_sent")
