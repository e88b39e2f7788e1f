"""Dropped connections resume with nothing missed; hostile text stays text; outsiders see nothing;
opted-out contacts cannot be texted; pages work at phone width and under the strict CSP."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Page, expect

from server.auth import revoke_user_sessions
from server.settings import Settings
from server.state import AppState
from tests.browser.conftest import OwnServer
from tests.browser.support import (
    LIVE,
    PASSWORD,
    Contexts,
    Team,
    assert_not_reloaded,
    live_ready,
    mark_no_reload,
    sign_in,
    text_in,
)
from tests.support.live_server import LiveServer, start_live_server

pytestmark = pytest.mark.browser

MARIA = "+16175550123"
XSS = "<img src=x onerror=alert(1)>"


async def open_thread(page: Page, text: str) -> None:
    await page.get_by_role("link", name="Admissions").first.click()
    await page.locator(".conv", has_text=text).click()
    await page.wait_for_selector('body[data-page="thread"]')
    await live_ready(page)


async def test_connection_lost_and_restored_misses_nothing(
    own_contexts: Contexts, settings: Settings, own_server: OwnServer
) -> None:
    server, team = own_server.server, own_server.team
    await text_in(server, MARIA, team.number, "Before the outage")
    ann = await sign_in(await own_contexts.new(), server, team.emails["ann"])
    await open_thread(ann, "Before the outage")
    await mark_no_reload(ann)
    port = int(server.base_url.rsplit(":", 1)[1])

    # The server goes away: the page says so.
    await own_server.stop()
    await expect(ann.locator("[data-conn-banner]")).to_be_visible(timeout=LIVE)

    # Meanwhile texts arrive through another server process on the same database.
    other = await start_live_server(settings)
    try:
        await text_in(other, MARIA, team.number, "During the outage, one")
        await text_in(other, "+16175550144", team.number, "During the outage, two")
    finally:
        await other.stop()

    # The server is back on the same port: the page resumes from its seqs, silently.
    back = await own_server.restart(port)
    try:
        await expect(ann.locator("[data-conn-banner]")).to_be_hidden(timeout=LIVE)
        bubbles = ann.locator(".msg--in .msg__bubble")
        await expect(bubbles).to_have_text(
            ["Before the outage", "During the outage, one"], timeout=LIVE
        )
        await expect(ann.locator(".conv").first).to_contain_text(
            "During the outage, two", timeout=LIVE
        )
        await expect(ann.locator(".conv")).to_have_count(2)
        # And it goes on live afterwards.
        await text_in(back, MARIA, team.number, "After the outage")
        await expect(bubbles.last).to_have_text("After the outage", timeout=LIVE)
        await expect(bubbles).to_have_count(3)
        await assert_not_reloaded(ann)
    finally:
        await own_server.stop()


async def test_hostile_text_is_shown_as_text(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        answer = await http.post(
            "/api/v1/contacts",
            json={"phone": "+16175550166", "first_name": "<script>alert(2)</script>"},
            headers=team.auth(),
        )
        assert answer.status_code == 201, answer.text
    await text_in(live_server, "+16175550166", team.number, "hello")
    ann = await sign_in(await contexts.new(), live_server, team.emails["ann"])
    await open_thread(ann, "hello")
    await mark_no_reload(ann)

    # Arriving live, and rendered by the server after a reload: text both times.
    await text_in(live_server, "+16175550166", team.number, XSS)
    bubble = ann.locator(".msg--in .msg__bubble").last
    await expect(bubble).to_have_text(XSS, timeout=LIVE)
    await expect(ann.locator(".conv").first.locator("[data-slot=preview]")).to_have_text(XSS)
    await assert_not_reloaded(ann)
    await ann.reload()
    await expect(ann.locator(".msg--in .msg__bubble").last).to_have_text(XSS)
    await expect(ann.locator("#thread-title")).to_have_text("<script>alert(2)</script>")
    await expect(ann.locator(".msg img, .conv img, #main script")).to_have_count(0)
    await ann.get_by_role("link", name="Contact record").click()
    await expect(ann.locator("h1")).to_have_text("<script>alert(2)</script>")
    # No alert ran (the watch fixture fails the test on any alert or script error).


async def test_someone_outside_the_inbox_sees_no_trace_of_it(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    await text_in(live_server, MARIA, team.number, "Private question")
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        threads = await http.get(f"/api/v1/inboxes/{team.inbox}/conversations", headers=team.auth())
        conversation = threads.json()["items"][0]
    cy = await sign_in(await contexts.new(), live_server, team.emails["cy"])
    await live_ready(cy)
    await mark_no_reload(cy)
    nav = cy.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="Financial Aid")).to_be_visible()
    await expect(nav.get_by_role("link", name="Admissions")).to_have_count(0)

    # A text to Admissions while Cy watches: nothing of it reaches Cy's page.
    await text_in(live_server, MARIA, team.number, "Another private question")
    await text_in(live_server, "+16175550188", team.other_number, "For financial aid")
    await expect(cy.locator("[data-nav-inbox] .badge").first).to_have_text("1 unread", timeout=LIVE)
    assert "Admissions" not in await cy.content()
    assert "private question" not in (await cy.content()).lower()
    await assert_not_reloaded(cy)

    for path in (
        f"/inboxes/{team.inbox}",
        f"/conversations/{conversation['id']}",
        f"/contacts/{conversation['contact']['id']}",
        "/admin/inboxes",
    ):
        response = await cy.goto(live_server.base_url + path)
        assert response is not None
        assert response.status in (403, 404), path
        html = await cy.content()
        for secret in ("Admissions", "Private question", "(617) 555-0123", MARIA):
            assert secret not in html, (path, secret)


async def test_opted_out_contact_cannot_be_texted_and_the_page_says_why(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    await text_in(live_server, MARIA, team.number, "Hi")
    ben = await sign_in(await contexts.new(), live_server, team.emails["ben"])
    await open_thread(ben, "Hi")
    await mark_no_reload(ben)
    composer = ben.get_by_label("Message to (617) 555-0123")
    await expect(composer).to_be_visible()

    await text_in(live_server, MARIA, team.number, "STOP")
    blocked = ben.locator("[data-composer-blocked]")
    await expect(blocked).to_be_visible(timeout=LIVE)
    await expect(blocked).to_contain_text("They opted out of texts from Admissions 1:1")
    await expect(blocked).to_contain_text("START")
    await expect(composer).to_be_hidden()
    await expect(ben.locator(".msg__opt--opted_out")).to_contain_text(
        "Opted out of texts from Admissions 1:1"
    )

    # Loaded afresh, the page still refuses, and so does the API behind it.
    await ben.reload()
    await expect(ben.locator("[data-composer-blocked]")).to_be_visible()
    await live_ready(ben)
    await mark_no_reload(ben)

    await text_in(live_server, MARIA, team.number, "START")
    await expect(ben.get_by_label("Message to (617) 555-0123")).to_be_visible(timeout=LIVE)
    await expect(ben.locator(".msg__opt--opted_in")).to_contain_text("Opted back in")
    await assert_not_reloaded(ben)


async def test_composer_counts_segments_gsm7_and_ucs2(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    await text_in(live_server, MARIA, team.number, "Hi")
    ann = await sign_in(await contexts.new(), live_server, team.emails["ann"])
    await open_thread(ann, "Hi")
    composer = ann.get_by_label("Message to (617) 555-0123")
    counter = ann.locator("[data-counter]")
    await composer.fill("a" * 160)
    await expect(counter).to_have_text("160 / 160 · 1 segment · GSM-7")
    await composer.fill("a" * 161)
    await expect(counter).to_have_text("161 / 306 · 2 segments · GSM-7")
    await composer.fill("Price: 5€ [ok]")  # € [ ] take two septets each
    await expect(counter).to_have_text("17 / 160 · 1 segment · GSM-7")
    await composer.fill("It’s done")  # a curly apostrophe is not GSM-7
    await expect(counter).to_have_text("9 / 70 · 1 segment · Unicode (UCS-2) because of “’”")
    await composer.fill("é" * 10 + "😀" * 35)  # an emoji is two UTF-16 units
    await expect(counter).to_contain_text("80 / 134 · 2 segments · Unicode (UCS-2)")

    # A half-written reply survives a reload, counted; once sent, it is gone.
    await composer.fill("See you on Saturday at")
    await ann.reload()
    await live_ready(ann)
    await expect(composer).to_have_value("See you on Saturday at")
    await expect(counter).to_have_text("22 / 160 · 1 segment · GSM-7")
    await composer.press("End")
    await composer.type(" 10")
    await ann.get_by_role("button", name="Send").click()
    await expect(ann.locator(".msg--out .msg__bubble")).to_have_text(
        "See you on Saturday at 10", timeout=LIVE
    )
    await ann.reload()
    await live_ready(ann)
    await expect(composer).to_have_value("")


async def test_pages_fit_a_phone_and_work_by_keyboard(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    await text_in(live_server, MARIA, team.number, "Can I text you from my phone?")
    context = await contexts.new(width=360, height=740)
    page = await context.new_page()
    await page.goto(live_server.base_url + "/")
    # Sign in by keyboard only.
    await page.keyboard.type(team.emails["dana"])  # the email field has focus
    await page.keyboard.press("Tab")
    await page.keyboard.type("wrong password")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    await page.get_by_label("Password").fill("")
    await page.get_by_label("Password").press_sequentially(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_selector('body[data-page="home"]')

    async def fits() -> None:
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{page.url} is {width}px wide at a 360px viewport"

    await fits()
    # The menu opens the sidebar on a phone.
    await page.get_by_role("button", name="Menu").click()
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Admissions").click()
    await page.wait_for_selector('body[data-page="inbox"]')
    await fits()
    # Tab to the first conversation and open it with Enter.
    conversation = page.locator(".conv__link").first
    await conversation.focus()
    await page.keyboard.press("Enter")
    await page.wait_for_selector('body[data-page="thread"]')
    await live_ready(page)
    await fits()
    await page.get_by_label("Message to (617) 555-0123").focus()
    await page.keyboard.type("Yes, any time.")
    await page.keyboard.press("Enter")
    await expect(page.locator(".msg--out .msg__bubble")).to_have_text(
        "Yes, any time.", timeout=LIVE
    )
    await page.get_by_role("link", name="Contact record").click()
    await fits()
    for path in ("/admin/inboxes", "/admin/numbers", "/admin/users", "/admin/services"):
        await page.goto(live_server.base_url + path)
        await fits()
    # The numbers' and users' tables stack at phone width rather than scroll sideways, so the
    # routing and role selects stay in reach.
    for path in ("/admin/numbers", "/admin/users"):
        await page.goto(live_server.base_url + path)
        wide = await page.evaluate(
            "[...document.querySelectorAll('.table-wrap')]"
            ".filter((wrap) => wrap.scrollWidth > wrap.clientWidth).length"
        )
        assert wide == 0, f"{path} has a table wider than the screen"


async def test_going_offline_and_back_resumes_with_nothing_missed(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    await text_in(live_server, MARIA, team.number, "Before going offline")
    context = await contexts.new()
    ann = await sign_in(context, live_server, team.emails["ann"])
    await open_thread(ann, "Before going offline")
    await mark_no_reload(ann)

    await context.set_offline(True)
    await expect(ann.locator("[data-conn-banner]")).to_be_visible(timeout=LIVE)
    await text_in(live_server, MARIA, team.number, "Sent while offline")
    await text_in(live_server, "+16175550144", team.number, "Also while offline")
    # A reply tried offline says why it did not go, and keeps the draft.
    composer = ann.get_by_label("Message to (617) 555-0123")
    await composer.fill("Are you still there?")
    await composer.press("Enter")
    await expect(ann.get_by_role("alert")).to_have_text(
        "Could not reach the server. Check your connection."
    )
    await context.set_offline(False)

    await expect(ann.locator("[data-conn-banner]")).to_be_hidden(timeout=LIVE)
    # Back online, that no longer holds; the draft is still there to send.
    await expect(ann.get_by_role("alert")).to_be_hidden()
    await expect(composer).to_have_value("Are you still there?")
    await expect(ann.locator(".msg--in .msg__bubble")).to_have_text(
        ["Before going offline", "Sent while offline"], timeout=LIVE
    )
    await expect(ann.locator(".conv").first).to_contain_text("Also while offline")
    await assert_not_reloaded(ann)


async def test_a_session_ended_while_away_sends_the_page_to_sign_in(
    own_contexts: Contexts, own_server: OwnServer
) -> None:
    server, team = own_server.server, own_server.team
    ann = await sign_in(await own_contexts.new(), server, team.emails["ann"])
    await live_ready(ann)
    port = int(server.base_url.rsplit(":", 1)[1])
    await own_server.stop()
    await expect(ann.locator("[data-conn-banner]")).to_be_visible(timeout=LIVE)
    # While the page is cut off, Ann's sessions end (as a sign-out elsewhere would).
    state = AppState(own_server.settings)
    try:
        async with state.transaction() as session:
            await revoke_user_sessions(session, team.users["ann"])
    finally:
        await state.close()
    await own_server.restart(port)
    await expect(ann.get_by_role("heading", name="Sign in")).to_be_visible(timeout=LIVE)
