"""Admin pages, the contact record and the simulator's phone, driven like a person would."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from server.settings import Settings
from tests.browser.support import (
    LIVE,
    PASSWORD,
    Contexts,
    ErrorWatch,
    Team,
    assert_not_reloaded,
    build_team,
    live_ready,
    mark_no_reload,
    sign_in,
    text_in,
)
from tests.support.live_server import LiveServer, start_live_server

pytestmark = pytest.mark.browser


def card(page: Page, title: str):  # noqa: ANN201 - a Playwright locator
    return page.locator("section.card", has=page.get_by_role("heading", name=title))


async def add_blast_service(server: LiveServer, team: Team, number: str | None = None) -> None:
    """A blast messaging service "Spring blasts", through the API; with `number`, that number
    in it, routed to Admissions."""
    async with httpx.AsyncClient(base_url=server.base_url, headers=team.auth()) as http:
        service = await http.post(
            "/api/v1/messaging-services",
            json={"name": "Spring blasts", "sid": "MG" + "e" * 32, "purpose": "blast"},
        )
        assert service.status_code == 201, service.text
        if number is not None:
            routed = await http.post(
                "/api/v1/phone-numbers",
                json={
                    "number": number,
                    "sid": "PN" + "e" * 32,
                    "messaging_service_id": service.json()["id"],
                    "inbox_id": team.inbox,
                },
            )
            assert routed.status_code == 201, routed.text


async def test_admin_sets_up_an_inbox_numbers_and_people(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    dana = await sign_in(await contexts.new(), live_server, team.emails["dana"])
    ben = await sign_in(await contexts.new(), live_server, team.emails["ben"])
    await live_ready(ben)
    await mark_no_reload(ben)

    # A new inbox, renamed, with a member and email alerts.
    await (
        dana.get_by_role("navigation", name="Main").get_by_role("link", name="Inboxes").last.click()
    )
    await dana.get_by_label("Name").fill("Transfers")
    async with dana.expect_navigation():
        await dana.get_by_label("Name").press("Enter")
    await dana.wait_for_url("**/admin/inboxes/*")
    await expect(dana.locator("h1")).to_have_text("Transfers")
    await dana.get_by_label("Inbox name").fill("Transfer Students")
    async with dana.expect_navigation():
        await dana.get_by_role("button", name="Rename").click()
    await expect(dana.locator("h1")).to_have_text("Transfer Students")
    await dana.get_by_label("Add a member").select_option(label="Ann Lee (ann@example.edu)")
    async with dana.expect_navigation():
        await dana.get_by_role("button", name="Add", exact=True).click()
    await expect(card(dana, "Members").locator("[data-member]")).to_have_count(1)
    await expect(card(dana, "Members")).to_contain_text("Ann Lee")
    alerts = card(dana, "Email alerts")
    await alerts.get_by_label("Send email alerts for unread texts").check()
    await alerts.get_by_label("After this many minutes unread").fill("-5")
    await alerts.get_by_label("These addresses").check()
    await alerts.locator("textarea").fill("desk@example.edu, dean@@example.edu")
    await alerts.get_by_role("button", name="Save alerts").click()
    await expect(alerts.get_by_role("alert")).to_have_text(
        "The minutes must be a whole number from 1 to 10080 (a week)."
    )
    await alerts.get_by_label("After this many minutes unread").fill("30")
    await alerts.get_by_role("button", name="Save alerts").click()
    await expect(alerts.get_by_role("alert")).to_contain_text(
        "not an email address: 'dean@@example.edu'"
    )
    await alerts.locator("textarea").fill("desk@example.edu, dean@example.edu")
    await alerts.get_by_role("button", name="Save alerts").click()
    await expect(alerts.get_by_text("Saved.")).to_be_visible()
    await dana.reload()
    await expect(dana.get_by_label("After this many minutes unread")).to_have_value("30")
    await expect(dana.get_by_label("Send email alerts for unread texts")).to_be_checked()
    await expect(dana.locator("textarea")).to_have_value("desk@example.edu, dean@example.edu")

    # A blast messaging service, and a number of it routed into the new inbox.
    await dana.goto(live_server.base_url + "/admin/services")
    new_service = card(dana, "Add a messaging service")
    await new_service.get_by_label("Name").fill("Spring blasts")
    await new_service.get_by_label("Service SID").fill("MG" + "b" * 32)
    await new_service.get_by_label("Purpose").select_option(label="Blast (campaigns)")
    async with dana.expect_navigation():
        await dana.get_by_role("button", name="Add service").click()
    await expect(dana.get_by_role("row", name="Spring blasts")).to_contain_text("Blast (campaigns)")

    await dana.goto(live_server.base_url + "/admin/numbers")
    await dana.get_by_label("Number", exact=True).fill("(415) 555-0123")
    await dana.get_by_label("Number SID").fill("PN" + "c" * 32)
    await dana.get_by_label("Messaging service").select_option(label="Spring blasts (blast)")
    await dana.get_by_label("Route to").select_option(label="Transfer Students")
    async with dana.expect_navigation():
        await dana.get_by_role("button", name="Add number").click()
    # Alone in its inbox, as advised, the blast number warns of nothing.
    await expect(dana.get_by_role("row", name="(415) 555-0123")).to_contain_text("Transfer")
    await expect(dana.get_by_role("row", name="(415) 555-0123")).not_to_contain_text("mixes")
    # Route the 1:1 number there as well: the routing select saves at once and warns.
    await dana.get_by_label("Inbox for (415) 555-0100").select_option(label="Transfer Students")
    await expect(dana.get_by_role("row", name="(415) 555-0100")).to_contain_text(
        "Saved — inbox mixes blast numbers", timeout=LIVE
    )
    await dana.goto(live_server.base_url + "/admin/inboxes")
    warning = dana.locator("[data-routing-warning]", has_text="Transfer Students")
    await expect(warning).to_contain_text("Transfer Students gets texts from blast numbers")
    await expect(warning).to_contain_text("Spring blasts")

    # People: a new user, a role change, and a deactivation that signs Ben out live.
    await dana.goto(live_server.base_url + "/admin/users")
    new_user = card(dana, "Add a user")
    await new_user.get_by_label("Name").fill("Eve Park")
    await new_user.get_by_label("Email").fill("eve@example.edu")
    await new_user.get_by_label("Password").fill("a long enough password")
    async with dana.expect_navigation():
        await dana.get_by_role("button", name="Add user").click()
    await expect(dana.get_by_role("row", name="Eve Park")).to_contain_text("eve@example.edu")
    await dana.get_by_label("Role of Cy Young").select_option(label="Admin")
    await expect(dana.get_by_role("row", name="Cy Young")).to_contain_text("Saved", timeout=LIVE)
    async with dana.expect_navigation():
        await (
            dana.get_by_role("row", name="Ben Ortiz")
            .get_by_role("button", name="Deactivate")
            .click()
        )
    await expect(dana.get_by_role("row", name="Ben Ortiz")).to_contain_text("Deactivated")
    await expect(ben.get_by_role("heading", name="Sign in")).to_be_visible(timeout=LIVE)

    # A forgotten password: the admin sets a new one, and Ann signs in with it.
    ann = dana.get_by_role("row", name="Ann Lee")
    await ann.get_by_text("Edit name or password").click()
    await ann.get_by_label("Name").fill("Ann Lee-Park")
    await ann.get_by_label("New password").fill("a brand new password")
    async with dana.expect_navigation():
        await ann.get_by_role("button", name="Save").click()
    await expect(dana.get_by_role("row", name="Ann Lee-Park")).to_be_visible()
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        for password, status in (("a brand new password", 200), (PASSWORD, 401)):
            login = await http.post(
                "/api/v1/auth/login", json={"email": team.emails["ann"], "password": password}
            )
            assert login.status_code == status, login.text

    # A name cleared is cleared (the row then shows the email); the password left blank stays.
    ann = dana.get_by_role("row", name="Ann Lee-Park")
    await ann.get_by_text("Edit name or password").click()
    await ann.get_by_label("Name").fill("")
    async with dana.expect_navigation():
        await ann.get_by_role("button", name="Save").click()
    await expect(dana.get_by_role("row", name="Ann Lee-Park")).to_have_count(0)
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        login = await http.post(
            "/api/v1/auth/login",
            json={"email": team.emails["ann"], "password": "a brand new password"},
        )
        assert login.status_code == 200 and login.json()["user"]["name"] == ""


async def test_admin_deletes_an_inbox_without_conversations(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    await text_in(live_server, "+16175550142", team.number, "Hello?")
    dana = await sign_in(await contexts.new(), live_server, team.emails["dana"])
    await dana.goto(f"{live_server.base_url}/admin/inboxes/{team.inbox}")
    await expect(card(dana, "Delete this inbox")).to_contain_text(
        "Admissions has 1 conversation, so it cannot be deleted"
    )
    await expect(card(dana, "Delete this inbox").get_by_role("button")).to_have_count(0)

    async with httpx.AsyncClient(base_url=live_server.base_url, headers=team.auth()) as http:
        made = await http.post("/api/v1/inboxes", json={"name": "Scholarships"})
        inbox = made.json()["id"]
        member = f"/api/v1/inboxes/{inbox}/members/{team.users['ann']}"
        assert (await http.put(member)).status_code == 201
        routed = await http.patch(
            f"/api/v1/phone-numbers/{(await phone_number(http, team.other_number))['id']}",
            json={"inbox_id": inbox},
        )
        assert routed.status_code == 200
    ann = await sign_in(await contexts.new(), live_server, team.emails["ann"])
    await live_ready(ann)
    await mark_no_reload(ann)
    sidebar = ann.get_by_role("navigation", name="Main")
    await expect(sidebar.get_by_text("Scholarships")).to_have_count(1)

    await dana.goto(f"{live_server.base_url}/admin/inboxes/{inbox}")
    delete = card(dana, "Delete this inbox")
    await expect(delete).to_contain_text(
        "Its numbers ((415) 555-0177) will route nowhere: texts to them land in Unrouted."
    )
    async with dana.expect_navigation(url="**/admin/inboxes"):
        await delete.get_by_role("button", name="Delete inbox").click()
    await expect(dana.get_by_text("Scholarships")).to_have_count(0)
    # Ann's open page loses it at once; the number now routes nowhere.
    await expect(sidebar.get_by_text("Scholarships")).to_have_count(0)
    await expect(ann.get_by_text("Scholarships")).to_have_count(0)  # nor among the cards
    await assert_not_reloaded(ann)
    await dana.goto(f"{live_server.base_url}/admin/numbers")
    await expect(dana.get_by_label("Inbox for (415) 555-0177")).to_have_value("")


async def test_a_routing_select_saves_a_choice_not_each_arrow_key(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    dana = await sign_in(await contexts.new(), live_server, team.emails["dana"])
    await dana.goto(live_server.base_url + "/admin/numbers")
    route = dana.get_by_label("Inbox for (415) 555-0100")
    status = dana.get_by_role("row", name="(415) 555-0100").locator("[data-change-status]")
    admissions = str(team.inbox)
    await expect(route).to_have_value(admissions)

    async def routed_to() -> int | None:
        async with httpx.AsyncClient(base_url=live_server.base_url, headers=team.auth()) as http:
            return (await phone_number(http, team.number))["inbox_id"]

    # Looking through the inboxes with the keys changes nothing; leaving puts it back.
    await route.focus()
    await route.press("ArrowDown")
    await expect(status).to_have_text("Press Enter to save")
    assert await routed_to() == team.inbox
    await route.press("Tab")
    await expect(status).to_have_text("Not saved")
    await expect(route).to_have_value(admissions)
    assert await routed_to() == team.inbox

    # Enter saves the choice the keys made.
    await route.focus()
    await route.press("ArrowDown")
    chosen = await route.input_value()
    assert chosen != admissions
    await route.press("Enter")
    await expect(status).to_contain_text("Saved", timeout=LIVE)
    assert await routed_to() == int(chosen)
    await expect(route).to_be_focused()


async def phone_number(http: httpx.AsyncClient, number: str) -> dict[str, Any]:
    """One of our numbers as the API lists it."""
    listed = (await http.get("/api/v1/phone-numbers", params={"limit": 100})).json()["items"]
    return next(n for n in listed if n["number"] == number)


async def test_admin_mistakes_get_a_clear_answer(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    dana = await sign_in(await contexts.new(), live_server, team.emails["dana"])
    await dana.goto(live_server.base_url + "/admin/numbers")
    await dana.get_by_label("Number", exact=True).fill("not a number")
    await dana.get_by_label("Number SID").fill("PN" + "d" * 32)
    await dana.get_by_role("button", name="Add number").click()
    await expect(card(dana, "Add a phone number").get_by_role("alert")).to_contain_text("number")
    await expect(dana.get_by_label("Number", exact=True)).to_have_value("not a number")

    # A number added by mistake is removed (after a confirmation, which the test accepts).
    await dana.get_by_label("Number", exact=True).fill("(415) 555-0166")
    async with dana.expect_navigation():
        await dana.get_by_role("button", name="Add number").click()
    mistake = dana.get_by_role("row", name="(415) 555-0166")
    async with dana.expect_navigation():
        await mistake.get_by_role("button", name="Remove (415) 555-0166", exact=True).click()
    await expect(mistake).to_have_count(0)

    # A second service of the same name is refused; a service is renamed and its SID fixed.
    await dana.goto(live_server.base_url + "/admin/services")
    new_service = card(dana, "Add a messaging service")
    await new_service.get_by_label("Name").fill("admissions 1:1")
    await new_service.get_by_label("Service SID").fill("MG" + "d" * 32)
    await new_service.get_by_role("button", name="Add service").click()
    await expect(new_service.get_by_role("alert")).to_have_text(
        "a messaging service named 'admissions 1:1' exists already"
    )
    row = dana.get_by_role("row", name="Admissions 1:1")
    await row.get_by_text("Rename or correct the SID").click()
    await row.get_by_label("Name of Admissions 1:1").fill("Admissions texting")
    await row.get_by_label("Service SID of Admissions 1:1").fill("MG" + "9" * 32)
    async with dana.expect_navigation():
        await row.get_by_role("button", name="Save").click()
    renamed = dana.get_by_role("row", name="Admissions texting")
    await expect(renamed).to_contain_text("MG" + "9" * 32)


async def test_contact_record_shows_details_and_sends_from_a_chosen_inbox(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    await text_in(live_server, "+16175550123", team.number, "Hello there")
    ann = await sign_in(await contexts.new(), live_server, team.emails["ann"])
    await ann.get_by_role("link", name="Admissions").first.click()
    await ann.get_by_text("Hello there").click()
    await ann.get_by_role("link", name="Contact record").click()
    await ann.wait_for_selector('body[data-page="contact"]')
    await expect(ann.locator("h1")).to_have_text("(617) 555-0123")
    permission = card(ann, "Texting permission")
    await expect(permission).to_contain_text("Admissions 1:1")
    await expect(permission).to_contain_text("Can be texted")
    await expect(card(ann, "Conversations")).to_contain_text("Admissions")
    await expect(card(ann, "Conversations")).to_contain_text("Hello there")

    send = card(ann, "Send a text")
    await expect(send.get_by_label("From inbox")).to_have_value(str(team.inbox))
    await send.get_by_label("Message").fill("Following up on your question")
    await expect(send.locator("[data-counter]")).to_have_text("29 / 160 · 1 segment · GSM-7")
    await send.get_by_role("button", name="Send").click()
    await ann.wait_for_selector('body[data-page="thread"]')
    await expect(ann.locator(".msg--out .msg__bubble")).to_have_text(
        "Following up on your question"
    )

    # After a STOP the record says so, and the send box refuses.
    await text_in(live_server, "+16175550123", team.number, "stop")
    await ann.get_by_role("link", name="Contact record").click()
    await expect(ann.locator(".contact-head").get_by_text("Opted out")).to_be_visible()
    await expect(card(ann, "Texting permission")).to_contain_text("Opted out")
    await expect(ann.locator("[data-send-blocked]")).to_contain_text(
        "Opted out of texts from Admissions 1:1"
    )
    await expect(ann.get_by_role("button", name="Send")).to_be_disabled()

    # A STOP holds for its own service: from an inbox of another, the text may go, but the
    # page says they asked to stop.
    async with httpx.AsyncClient(base_url=live_server.base_url, headers=team.auth()) as http:
        replies = (await http.post("/api/v1/inboxes", json={"name": "Campaign replies"})).json()
        member = f"/api/v1/inboxes/{replies['id']}/members/{team.users['ann']}"
        assert (await http.put(member)).status_code == 201
        await add_blast_service(live_server, team)
        services = (await http.get("/api/v1/messaging-services")).json()["items"]
        [blast] = [service["id"] for service in services if service["purpose"] == "blast"]
        routed = await http.post(
            "/api/v1/phone-numbers",
            json={
                "number": "+14155550190",
                "sid": "PN" + "f" * 32,
                "messaging_service_id": blast,
                "inbox_id": replies["id"],
            },
        )
        assert routed.status_code == 201, routed.text
    await ann.reload()
    await (
        card(ann, "Send a text")
        .get_by_label("From inbox")
        .select_option(label="Campaign replies · (415) 555-0190")
    )
    await expect(ann.locator("[data-send-blocked]")).to_be_hidden()
    await expect(ann.locator("[data-send-caution]")).to_have_text(
        "They replied STOP to Admissions 1:1. This text goes from Spring blasts, which they have"
        " not opted out of: be sure they want it."
    )
    await expect(ann.get_by_role("button", name="Send")).to_be_enabled()

    # The open record follows START and STOP as they arrive, without a reload.
    await live_ready(ann)
    await mark_no_reload(ann)
    await text_in(live_server, "+16175550123", team.number, "START")
    await expect(ann.locator("[data-send-caution]")).to_be_hidden(timeout=LIVE)
    opted_out_mark = ann.locator(".contact-head").get_by_text("Opted out")
    await expect(opted_out_mark).to_be_hidden()
    admissions_service = card(ann, "Texting permission").locator(
        "[data-service-id]", has_text="Admissions 1:1"
    )
    await expect(admissions_service).to_contain_text("Opted back in")
    inbox_choice = card(ann, "Send a text").get_by_label("From inbox")
    await inbox_choice.select_option(value=str(team.inbox))
    await expect(ann.locator("[data-send-blocked]")).to_be_hidden()
    await expect(ann.get_by_role("button", name="Send")).to_be_enabled()
    await text_in(live_server, "+16175550123", team.number, "STOP")
    await expect(ann.locator("[data-send-blocked]")).to_contain_text(
        "Opted out of texts from Admissions 1:1", timeout=LIVE
    )
    await expect(inbox_choice.locator("option:checked")).to_have_text(re.compile(r"opted out\)$"))
    await expect(opted_out_mark).to_be_visible()
    await expect(admissions_service).to_contain_text("Opted out · just now")
    await assert_not_reloaded(ann)


async def test_staff_find_their_contacts_and_text_a_new_number(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    await text_in(live_server, "+16175550101", team.number, "Hi from Admissions' student")
    await text_in(live_server, "+16175550199", team.other_number, "A Financial Aid question")
    ben = await sign_in(await contexts.new(), live_server, team.emails["ben"])
    await ben.goto(live_server.base_url + f"/inboxes/{team.inbox}")
    await live_ready(ben)
    await mark_no_reload(ben)

    ann = await sign_in(await contexts.new(), live_server, team.emails["ann"])
    await ann.get_by_role("navigation", name="Main").get_by_role("link", name="Contacts").click()
    await ann.wait_for_selector('body[data-page="contacts"]')
    found = card(ann, "Find a contact")
    await expect(found.locator(".plain-list li")).to_have_count(1)  # not Financial Aid's
    await expect(found.locator(".plain-list")).to_contain_text("(617) 555-0101")
    await found.get_by_label("Name, email or phone").fill("617 555 0199")
    await found.get_by_label("Name, email or phone").press("Enter")
    await expect(found).to_contain_text("Nobody you can see matches “617 555 0199”.")

    # Someone nobody has texted: added, texted, and the thread opens; Ben sees it arrive.
    new_text = card(ann, "Text a new number")
    await new_text.get_by_label("Phone").fill("617 555 0150")
    await new_text.get_by_label("First name (optional)").fill("Noor")
    await new_text.get_by_label("Message").fill("Hi Noor, this is Admissions.")
    await new_text.get_by_role("button", name="Send").click()
    await ann.wait_for_selector('body[data-page="thread"]')
    await expect(ann.locator(".msg--out .msg__bubble")).to_have_text("Hi Noor, this is Admissions.")
    await expect(ben.locator(".conv", has_text="Noor")).to_contain_text(
        "Hi Noor, this is Admissions.", timeout=LIVE
    )
    await assert_not_reloaded(ben)

    # A number already in my inbox goes to its conversation; another inbox's is refused.
    await ann.goto(live_server.base_url + "/contacts?q=0101")
    new_text = card(ann, "Text a new number")
    await new_text.get_by_label("Phone").fill("+1 (617) 555-0101")
    await new_text.get_by_label("Message").fill("Following up")
    await new_text.get_by_label("Message").press("Control+Enter")
    await ann.wait_for_selector('body[data-page="thread"]')
    await expect(ann.locator(".msg__bubble")).to_have_text(
        ["Hi from Admissions' student", "Following up"]
    )
    await ann.goto(live_server.base_url + "/contacts")
    new_text = card(ann, "Text a new number")
    await new_text.get_by_label("Phone").fill("6175550199")
    await new_text.get_by_label("Message").fill("Hello?")
    await new_text.get_by_role("button", name="Send").click()
    await expect(new_text.get_by_role("alert")).to_have_text(
        "6175550199 already texts with an inbox you are not in: ask an admin."
    )


async def test_a_corrected_contact_name_shows_live_in_every_open_list_and_thread(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    await text_in(live_server, "+16175550177", team.number, "Is the deadline Friday?")
    ben = await sign_in(await contexts.new(), live_server, team.emails["ben"])
    await ben.goto(live_server.base_url + f"/inboxes/{team.inbox}")
    await ben.get_by_text("Is the deadline Friday?").click()
    await ben.wait_for_selector('body[data-page="thread"]')
    await live_ready(ben)
    await mark_no_reload(ben)
    await expect(ben.locator(".thread-head__name")).to_have_text("(617) 555-0177")

    ann = await sign_in(await contexts.new(), live_server, team.emails["ann"])
    await ann.goto(ben.url)
    await ann.get_by_role("link", name="Contact record").click()
    details = card(ann, "Details")
    await details.get_by_role("button", name="Edit").click()
    await details.get_by_label("First name").fill("Maya")
    await details.get_by_label("Last name").fill("Lopez")
    await details.get_by_label("Email").fill("not an address")
    await details.get_by_role("button", name="Save").click()
    await expect(details.get_by_role("alert")).to_have_text("email must be an email address")
    await details.get_by_label("Email").fill("maya@example.edu")
    async with ann.expect_navigation():
        await details.get_by_role("button", name="Save").click()
    await expect(ann.locator("h1")).to_have_text("Maya Lopez")
    await expect(card(ann, "Details")).to_contain_text("maya@example.edu")

    await expect(ben.locator(".thread-head__name")).to_have_text("Maya Lopez", timeout=LIVE)
    await expect(ben.locator(".thread-head [data-contact-phone]")).to_have_text("(617) 555-0177")
    row = ben.locator(".conv", has_text="Is the deadline Friday?")
    await expect(row.locator("[data-slot=name]")).to_have_text("Maya Lopez")
    await expect(row.locator("[data-slot=avatar]")).to_have_text("ML")
    assert (await ben.title()).startswith("Maya Lopez")
    await assert_not_reloaded(ben)


async def test_simulator_phone_texts_in_and_gets_the_reply(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    dana = await sign_in(await contexts.new(), live_server, team.emails["dana"])
    ann = await sign_in(await contexts.new(), live_server, team.emails["ann"])
    await ann.get_by_role("link", name="Admissions").first.click()
    await live_ready(ann)

    await dana.get_by_role("link", name="Text in as a phone").click()
    await dana.wait_for_selector('body[data-page="simulator"]')
    await dana.get_by_label("This phone's number (From)").fill("+16175550199")
    await dana.get_by_label("This phone's number (From)").press("Tab")
    await dana.get_by_label("Texting our number (To)").fill(team.number)
    await dana.get_by_label("Texting our number (To)").press("Tab")
    await expect(dana.locator("[data-phone-sub]")).to_have_text("Admissions")
    await dana.get_by_label("Text message").fill("Is the campus tour still on?")
    await dana.get_by_label("Text message").press("Enter")
    phone = dana.locator("[data-phone-messages]")
    await expect(phone.locator(".msg--phone-out .msg__bubble")).to_have_text(
        ["Is the campus tour still on?"], timeout=LIVE
    )

    await ann.locator(".conv", has_text="Is the campus tour still on?").click(timeout=LIVE)
    await ann.wait_for_selector('body[data-page="thread"]')
    await ann.get_by_label("Message to (617) 555-0199").fill("Yes! 10am at the library.")
    await ann.get_by_label("Message to (617) 555-0199").press("Enter")
    await expect(phone.locator(".msg--phone-in .msg__bubble")).to_have_text(
        "Yes! 10am at the library.", timeout=LIVE
    )

    # Twilio answers STOP and START itself; the phone shows its answers, once each, also
    # after the thread is loaded again.
    for keyword in ("STOP", "START"):
        await dana.get_by_label("Text message").fill(keyword)
        await dana.get_by_label("Text message").press("Enter")
        await expect(phone.locator(".msg--phone-out .msg__bubble").last).to_have_text(
            keyword, timeout=LIVE
        )
        await expect(dana.get_by_role("button", name="Send")).to_be_enabled(timeout=LIVE)
    replies = phone.locator("[data-twilio-reply]")
    await expect(replies).to_have_count(2, timeout=LIVE)
    await expect(replies.locator(".msg__bubble")).to_have_text(
        [
            re.compile(r"^You have successfully been unsubscribed\. .* Reply START"),
            re.compile(r"^You have successfully been re-subscribed"),
        ]
    )
    await expect(replies.first.locator(".msg__meta")).to_contain_text("Automatic reply from Twilio")
    await dana.reload()
    await dana.get_by_label("This phone's number (From)").fill("+16175550199")
    await dana.get_by_label("This phone's number (From)").press("Tab")
    await dana.get_by_label("Texting our number (To)").fill(team.number)
    await dana.get_by_label("Texting our number (To)").press("Tab")
    await expect(phone.locator("[data-twilio-reply]")).to_have_count(2, timeout=LIVE)
    await expect(phone.locator(".msg__bubble")).to_have_count(6, timeout=LIVE)


async def test_staff_get_no_admin_or_simulator_pages(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    ann = await sign_in(await contexts.new(), live_server, team.emails["ann"])
    nav = ann.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("heading", name="Admin")).to_have_count(0)
    await expect(nav.get_by_role("link", name="Text in as a phone")).to_have_count(0)
    for path in ("/admin/users", "/admin/inboxes", "/simulator"):
        response = await ann.goto(live_server.base_url + path)
        assert response is not None and response.status == 403
        await expect(ann.locator("h1")).to_have_text("Admins only")
    # Signing out ends the session: the next page asks to sign in again.
    await ann.get_by_role("button", name="Sign out").click()
    await expect(ann.get_by_role("heading", name="Sign in")).to_be_visible()
    await ann.goto(live_server.base_url + f"/inboxes/{team.inbox}")
    await expect(ann.get_by_role("heading", name="Sign in")).to_be_visible()
    assert "/?next=" in ann.url


async def test_campaign_from_draft_to_done_with_live_progress(
    browser: Browser, watch: ErrorWatch, settings: Settings
) -> None:
    server = await start_live_server(replace(settings, run_worker_in_process=True))
    opened = Contexts(browser, watch)
    try:
        team = await build_team(server)
        blast_number = "+14155550190"
        await add_blast_service(server, team, blast_number)
        await text_in(server, "+16175550101", team.number, "Question one")
        await text_in(server, "+16175550102", team.number, "Question two")
        await text_in(server, "+16175550103", blast_number, "STOP")  # opted out of blasts

        dana = await sign_in(await opened.new(), server, team.emails["dana"])
        await dana.get_by_role("link", name="Campaigns").click()
        form = card(dana, "New campaign")
        await form.get_by_label("Name").fill("Spring open day")
        await form.get_by_label("Send from").select_option(label="Spring blasts")
        await form.get_by_label("Message").fill("Hi {first_name}! Open day is Saturday.")
        await form.get_by_label("Admissions").check()
        await form.get_by_role("button", name="Create draft").click()
        # Contacts without a first name: the API names them and nothing is created.
        await expect(form.get_by_role("alert")).to_contain_text("first_name")
        await form.get_by_label("Message").fill("Open day is Saturday at 10am. Reply to book!")
        async with dana.expect_navigation():
            await form.get_by_role("button", name="Create draft").click()
        await dana.wait_for_url("**/admin/campaigns/*")
        await expect(dana.locator("[data-campaign-status]")).to_have_text("Draft")
        await expect(dana.locator('[data-count="total"]')).to_have_text("3")
        await expect(card(dana, "Message")).to_contain_text("Open day is Saturday at 10am.")
        # The campaigns list, open in another tab, follows the sending too.
        board = await sign_in(await opened.new(), server, team.emails["dana"])
        await board.goto(server.base_url + "/admin/campaigns")
        await live_ready(board)
        await mark_no_reload(board)
        listed = board.get_by_role("row", name="Open day")
        await expect(listed).to_contain_text("Draft")

        async with dana.expect_navigation():
            await dana.get_by_role("button", name="Send now").click()
        await live_ready(dana)
        await mark_no_reload(dana)
        await expect(dana.locator("[data-campaign-status]")).to_have_text("Done", timeout=LIVE)
        await expect(dana.locator('[data-count="skipped_opted_out"]')).to_have_text("1")
        # Done, and two of three sent: the summary says why it is one short.
        await expect(dana.locator('[data-count="summary"]')).to_have_text(
            "2 of 3 sent · 1 skipped (opted out)"
        )
        await expect(dana.locator('[data-count="delivered"]')).to_have_text("2", timeout=LIVE)
        await expect(dana.locator('[data-figure="delivery_rate"]')).to_have_text("100%")
        await expect(dana.get_by_role("button", name="Send now")).to_be_hidden()
        # The list of recipients follows too: nobody is left "Waiting" once it is done.
        fates = card(dana, "Recipients").locator("[data-recipients] li .pill")
        await expect(fates.filter(has_text="Delivered")).to_have_count(2, timeout=LIVE)
        await expect(fates.filter(has_text="Skipped: opted out")).to_have_count(1)
        await expect(fates.filter(has_text="Waiting")).to_have_count(0)
        await assert_not_reloaded(dana)
        await expect(listed).to_contain_text("Done", timeout=LIVE)
        await expect(listed).to_contain_text("2 of 3 sent")
        await assert_not_reloaded(board)

        # Who it went to, and how each fared: the opted-out contact was skipped (its figure
        # links to them).
        await dana.get_by_role("link", name="1 skipped: opted out: list them").click()
        await expect(card(dana, "Recipients").locator('[aria-current="true"]')).to_have_text(
            "Skipped: opted out · 1"
        )
        skipped = card(dana, "Recipients").locator("[data-recipients] li")
        await expect(skipped).to_have_count(1)
        await expect(skipped).to_contain_text("(617) 555-0103")
        await expect(skipped.locator(".pill")).to_have_text("Skipped: opted out")
        await card(dana, "Recipients").get_by_role("link", name="Delivered · 2").click()
        await expect(card(dana, "Recipients").locator("[data-recipients] li")).to_have_count(2)

        # The texts are in the contacts' threads, tagged Campaign.
        await dana.goto(server.base_url + f"/inboxes/{team.inbox}")
        await dana.locator(".conv", has_text="(617) 555-0101").click()
        campaign_message = dana.locator(".msg--campaign")
        await expect(campaign_message.locator("[data-slot=tag]")).to_have_text("Campaign")
        await expect(campaign_message.locator(".msg__bubble")).to_have_text(
            "Open day is Saturday at 10am. Reply to book!"
        )
    finally:
        await opened.close()
        await server.stop()


async def test_a_campaign_with_a_start_time_is_scheduled_not_sent(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    await add_blast_service(live_server, team, "+14155550191")
    dana = await sign_in(await contexts.new(), live_server, team.emails["dana"])
    await dana.goto(live_server.base_url + "/admin/campaigns")
    form = card(dana, "New campaign")
    await form.get_by_label("Name").fill("Decision day")
    await form.get_by_label("Message").fill("Hi {first_name|there}, decisions are out on Friday!")
    await form.get_by_label("Start at (optional)").fill("2031-03-14T09:30")
    # A typed line may carry a name, before or after the number.
    await form.get_by_label("Phone numbers", exact=True).fill(
        "617 555 0160\nMaría José Ortiz, 617 555 0161\n(617) 555-0162\tLee"
    )
    # A rate the API refuses is refused, not quietly replaced.
    await form.get_by_label("Texts per second").fill("0")
    await form.get_by_role("button", name="Create draft").click()
    await expect(form.get_by_role("alert")).to_contain_text(
        "texts per second) must be above 0 and at most 100"
    )
    await form.get_by_label("Texts per second").fill("5")
    async with dana.expect_navigation():
        await form.get_by_role("button", name="Create draft").click()
    previews = card(dana, "Message").locator(".campaign-preview")
    await expect(previews).to_have_text(
        [
            "Hi there, decisions are out on Friday!",
            "Hi María, decisions are out on Friday!",
            "Hi Lee, decisions are out on Friday!",
        ]
    )
    async with httpx.AsyncClient(base_url=live_server.base_url, headers=team.auth()) as http:
        found = (await http.get("/api/v1/contacts", params={"q": "Ortiz"})).json()["items"]
    assert [(c["first_name"], c["last_name"], c["phone"]) for c in found] == [
        ("María", "José Ortiz", "+16175550161")
    ]
    # The browser's 9:30 in New York is 13:30 UTC; the page says it back in local time.
    await expect(dana.locator("[data-starts]")).to_have_text("Starts March 14, 2031, 9:30 AM")
    await expect(dana.locator("[data-no-sender]")).to_have_count(0)
    async with dana.expect_navigation():
        await dana.get_by_role("button", name="Schedule").click()
    await expect(dana.locator("[data-campaign-status]")).to_have_text("Scheduled")
    async with httpx.AsyncClient(base_url=live_server.base_url, headers=team.auth()) as http:
        campaigns = (await http.get("/api/v1/campaigns")).json()["items"]
    [shown] = [c for c in campaigns if c["name"] == "Decision day"]
    assert (shown["status"], shown["start_at"]) == ("scheduled", "2031-03-14T13:30:00Z")
    assert shown["rate_per_second"] == 5

    # A draft whose start time passed before anyone pressed Schedule says so.
    async with httpx.AsyncClient(base_url=live_server.base_url, headers=team.auth()) as http:
        services = (await http.get("/api/v1/messaging-services")).json()["items"]
        [blast] = [s["id"] for s in services if s["purpose"] == "blast"]
        late = await http.post(
            "/api/v1/campaigns",
            json={
                "name": "Missed it",
                "messaging_service_id": blast,
                "body": "Hello!",
                "recipients": [{"phone": "617 555 0163"}],
                "start_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
            },
        )
        assert late.status_code == 201, late.text
    await dana.goto(f"{live_server.base_url}/admin/campaigns/{late.json()['id']}")
    await expect(dana.locator("[data-start-passed]")).to_contain_text(
        "has passed: Send now sends at once"
    )
    await expect(dana.get_by_role("button", name="Send now")).to_be_visible()
    assert shown["counts"]["sent"] == 0


async def test_campaign_recipients_from_csv_files(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    await add_blast_service(live_server, team)
    dana = await sign_in(await contexts.new(), live_server, team.emails["dana"])
    await dana.goto(live_server.base_url + "/admin/campaigns")
    form = card(dana, "New campaign")
    await form.get_by_label("Name").fill("Open day by program")
    await form.get_by_label("Message").fill("Hi {first_name}, the {program} open day is Saturday.")
    # A spreadsheet's UTF-8 export, BOM and all; choosing the file picks "A CSV file".
    students = (
        "\ufeffPhone,First Name,Program\n(617) 555-0140,José,Music\n617 555 0141,Maya,Nursing\n"
    )
    await form.get_by_label("CSV file", exact=True).set_input_files(
        {"name": "students.csv", "mimeType": "text/csv", "buffer": students.encode("utf-8")}
    )
    await expect(form.get_by_label("A CSV file")).to_be_checked()
    async with dana.expect_navigation():
        await form.get_by_role("button", name="Create draft").click()
    await expect(dana.locator('[data-count="total"]')).to_have_text("2")
    await expect(card(dana, "Message")).to_contain_text("Hi José, the Music open day is Saturday.")
    # Its service has no number yet: the draft says so before anyone presses Send.
    await expect(dana.locator("[data-no-sender]")).to_contain_text(
        "Nothing can go out: Spring blasts has no phone numbers."
    )

    # A second admin watches the draft while recipients are added.
    watcher = await sign_in(await contexts.new(), live_server, team.emails["dana"])
    await watcher.goto(dana.url)
    await live_ready(watcher)
    await mark_no_reload(watcher)

    adding = card(dana, "Add recipients")
    bad = "phone,first_name,program\n+16175550150,Ana,Art\nnot-a-phone,Bob,Law\n+16175550151,Cy\n"
    await adding.get_by_label("CSV file", exact=True).set_input_files(
        {"name": "more.csv", "mimeType": "text/csv", "buffer": bad.encode()}
    )
    await adding.get_by_role("button", name="Add recipients").click()
    alert = adding.get_by_role("alert")
    await expect(alert).to_contain_text("nothing was added")
    await expect(alert).to_contain_text("line 3: not a phone number")
    await expect(alert).to_contain_text("line 4: expected 3 cells, found 2")
    await expect(dana.locator('[data-count="total"]')).to_have_text("2")

    # An Excel export in Windows-1252: "René" arrives as René.
    legacy = "phone,first_name,program\n+16175550160,Ren\xe9,Art\n".encode("cp1252")
    await adding.get_by_label("CSV file", exact=True).set_input_files(
        {"name": "legacy.csv", "mimeType": "text/csv", "buffer": legacy}
    )
    async with dana.expect_navigation():
        await adding.get_by_role("button", name="Add recipients").click()
    await expect(dana.locator('[data-count="total"]')).to_have_text("3")
    await expect(watcher.locator('[data-count="total"]')).to_have_text("3", timeout=LIVE)
    await assert_not_reloaded(watcher)
    async with httpx.AsyncClient(base_url=live_server.base_url, headers=team.auth()) as http:
        found = await http.get("/api/v1/contacts", params={"q": "+16175550160"})
    [rene] = found.json()["items"]
    assert (rene["first_name"], rene["fields"]) == ("René", {"program": "Art"})

    # A draft that is not wanted after all is deleted (it sent nothing); its contacts stay.
    async with dana.expect_navigation(url="**/admin/campaigns"):
        await dana.get_by_role("button", name="Delete").click()
    await expect(dana.get_by_role("link", name="Open day by program")).to_have_count(0)
    async with httpx.AsyncClient(base_url=live_server.base_url, headers=team.auth()) as http:
        assert (await http.get("/api/v1/contacts", params={"q": "René"})).json()["items"]
