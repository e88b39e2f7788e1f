"""Two staff in one inbox, each in their own browser: everything shows up live, with no reload."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.browser.support import (
    LIVE,
    Contexts,
    Team,
    assert_not_reloaded,
    live_ready,
    mark_no_reload,
    sign_in,
    text_in,
)
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.browser

MARIA = "+16175550123"


def row(page: Page, text: str):  # noqa: ANN201 - a Playwright locator
    return page.locator(".conv", has_text=text)


def tab(page: Page, name: str):  # noqa: ANN201 - a Playwright locator
    filters = page.get_by_role("navigation", name="Filter conversations")
    return filters.get_by_role("link", name=name)


async def open_inbox(page: Page) -> None:
    await page.get_by_role("link", name="Admissions").first.click()
    await page.wait_for_selector('body[data-page="inbox"]')
    await live_ready(page)


async def test_two_staff_share_an_inbox_live(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    ann = await sign_in(await contexts.new(), live_server, team.emails["ann"])
    ben = await sign_in(await contexts.new(), live_server, team.emails["ben"])
    for page in (ann, ben):
        await open_inbox(page)
        await mark_no_reload(page)

    # An inbound text appears in both lists, unread, without a reload.
    await text_in(live_server, MARIA, team.number, "Hi, is my application complete?")
    for page in (ann, ben):
        await expect(row(page, "Hi, is my application complete?")).to_be_visible(timeout=LIVE)
        await expect(row(page, "(617) 555-0123").locator(".badge")).to_have_text(
            "1 unread", timeout=LIVE
        )
        await expect(page.locator("[data-nav-inbox] .badge").first).to_have_text("1 unread")

    # Ben opens the thread (reading it); Ann, still on the list, sees the text too.
    await row(ben, "(617) 555-0123").click()
    await ben.wait_for_selector('body[data-page="thread"]')
    await live_ready(ben)
    await mark_no_reload(ben)
    await expect(ben.locator(".msg--in .msg__bubble")).to_have_text(
        "Hi, is my application complete?"
    )

    # Ann opens it as well: each sees the other viewing, and Ann's reading shows Ben
    # "Seen by Ann Lee" on the latest inbound message.
    await row(ann, "(617) 555-0123").click()
    await ann.wait_for_selector('body[data-page="thread"]')
    await live_ready(ann)
    await mark_no_reload(ann)
    await expect(ann.locator("[data-viewer-label]")).to_have_text(
        "Ben Ortiz is viewing", timeout=LIVE
    )
    await expect(ben.locator("[data-viewer-label]")).to_have_text(
        "Ann Lee is viewing", timeout=LIVE
    )
    await expect(ben.locator(".msg--in [data-slot=seen]")).to_have_text(
        "Seen by Ann Lee", timeout=LIVE
    )
    await expect(ann.locator(".msg--in [data-slot=seen]")).to_have_text(
        "Seen by Ben Ortiz", timeout=LIVE
    )

    # Ben types: Ann sees it.
    await ben.get_by_label("Message to (617) 555-0123").press_sequentially("Yes, it")
    await expect(ann.locator("[data-typing-text]")).to_have_text(
        "Ben Ortiz is typing…", timeout=LIVE
    )

    # Ben sends a quick message (Enter): both see it, tagged, and its status turns Delivered.
    await ben.get_by_label("Message to (617) 555-0123").fill("Yes, it is complete. Good luck!")
    await ben.get_by_label("Message to (617) 555-0123").press("Enter")
    for page in (ann, ben):
        sent = page.locator(".msg--out", has_text="Yes, it is complete. Good luck!")
        await expect(sent.locator("[data-slot=tag]")).to_have_text("Quick Message", timeout=LIVE)
        await expect(sent.locator("[data-slot=who]")).to_have_text("Ben Ortiz")
        await expect(sent.locator("[data-slot=status-words]")).to_have_text(
            "Delivered", timeout=LIVE
        )
    await expect(ann.locator("[data-typing-text]")).to_have_text("", timeout=LIVE)
    # Ann's list shows the reply as the conversation's last message.
    await expect(row(ann, "(617) 555-0123")).to_contain_text("Ben: Yes, it is complete.")

    # A second text while both watch: it shows in both threads, both read it at once.
    await text_in(live_server, MARIA, team.number, "Thank you so much")
    for page, other in ((ann, "Ben Ortiz"), (ben, "Ann Lee")):
        latest = page.locator(".msg--in").last
        await expect(latest.locator(".msg__bubble")).to_have_text("Thank you so much", timeout=LIVE)
        await expect(latest.locator("[data-slot=seen]")).to_have_text(
            f"Seen by {other}", timeout=LIVE
        )
        await expect(page.locator(".msg--in [data-slot=seen]:visible")).to_have_count(1)
    for page in (ann, ben):
        await assert_not_reloaded(page)


async def test_reading_in_one_tab_clears_unread_in_my_other_tabs(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    context = await contexts.new()
    first = await sign_in(context, live_server, team.emails["ann"])
    await text_in(live_server, MARIA, team.number, "Are you open on Saturday?")
    await open_inbox(first)
    await mark_no_reload(first)
    await expect(row(first, "Are you open on Saturday?").locator(".badge")).to_have_text("1 unread")
    await expect(first.locator("[data-total-unread]")).to_be_hidden()  # desktop: no top bar

    second = await context.new_page()
    await second.goto(live_server.base_url + f"/inboxes/{team.inbox}")
    await second.get_by_text("Are you open on Saturday?").click()
    await second.wait_for_selector('body[data-page="thread"]')

    await expect(row(first, "Are you open on Saturday?").locator(".badge")).to_be_hidden(
        timeout=LIVE
    )
    await expect(first.locator("[data-nav-inbox] .badge").first).to_be_hidden(timeout=LIVE)
    await expect(first.locator("[data-inbox-unread]")).to_have_text("0", timeout=LIVE)
    await assert_not_reloaded(first)


async def test_unread_filter(contexts: Contexts, live_server: LiveServer, team: Team) -> None:
    await text_in(live_server, MARIA, team.number, "First question")
    await text_in(live_server, "+16175550144", team.number, "Second question")
    ann = await sign_in(await contexts.new(), live_server, team.emails["ann"])
    await open_inbox(ann)
    await expect(ann.locator(".conv")).to_have_count(2)

    # Read one of them, then look at Unread: only the other is left.
    await row(ann, "First question").click()
    await ann.wait_for_selector('body[data-page="thread"]')
    await live_ready(ann)
    await expect(ann.locator("[data-inbox-unread]")).to_have_text("1", timeout=LIVE)
    await tab(ann, "Unread").click()
    await ann.wait_for_selector('body[data-page="inbox"]')
    await expect(ann.locator(".conv")).to_have_count(1)
    await expect(ann.locator(".conv")).to_contain_text("Second question")
    await expect(tab(ann, "Unread")).to_have_attribute("aria-current", "page")

    # A new text in a read conversation brings it into the unread list live.
    await live_ready(ann)
    await mark_no_reload(ann)
    await text_in(live_server, MARIA, team.number, "One more thing")
    await expect(ann.locator(".conv")).to_have_count(2, timeout=LIVE)
    await expect(ann.locator(".conv").first).to_contain_text("One more thing")

    # All shows both again.
    await tab(ann, "All").click()
    await ann.wait_for_selector('body[data-page="inbox"]')
    await expect(ann.locator(".conv")).to_have_count(2)


async def test_access_revoked_takes_the_inbox_away_at_once(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    await text_in(live_server, MARIA, team.number, "Hello?")
    ben = await sign_in(await contexts.new(), live_server, team.emails["ben"])
    await open_inbox(ben)
    await ben.get_by_text("Hello?").click()
    await ben.wait_for_selector('body[data-page="thread"]')
    await live_ready(ben)
    await mark_no_reload(ben)

    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        answer = await http.delete(
            f"/api/v1/inboxes/{team.inbox}/members/{team.users['ben']}", headers=team.auth()
        )
        assert answer.status_code == 204
    await expect(ben.get_by_role("alert")).to_contain_text(
        "You no longer have access to this inbox", timeout=LIVE
    )
    await expect(ben.locator("[data-nav-inbox]")).to_have_count(0)
    await expect(ben.locator(".msg")).to_have_count(0)
    await assert_not_reloaded(ben)
    # And the page, loaded again, is a plain 404 that names nothing.
    await ben.reload()
    await expect(ben.locator("h1")).to_have_text("Nothing here")
    assert "Hello?" not in await ben.content()


async def test_being_added_to_an_inbox_shows_it_at_once(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        member = f"/api/v1/inboxes/{team.inbox}/members/{team.users['ben']}"
        assert (await http.delete(member, headers=team.auth())).status_code == 204
        ben = await sign_in(await contexts.new(), live_server, team.emails["ben"])
        await live_ready(ben)
        await expect(ben.locator("[data-nav-empty]")).to_be_visible()
        await mark_no_reload(ben)

        assert (await http.put(member, headers=team.auth())).status_code == 201
    sidebar = ben.get_by_role("navigation", name="Main")
    await expect(sidebar.get_by_role("link", name="Admissions")).to_be_visible(timeout=LIVE)
    await expect(ben.locator("[data-nav-empty]")).to_be_hidden()
    # The home page shows it as a card, in place of "No inboxes yet".
    card = ben.locator(f'[data-inbox-cards] [data-nav-inbox="{team.inbox}"]')
    await expect(card).to_contain_text("Admissions")
    await expect(ben.locator("[data-home-empty]")).to_be_hidden()
    # The new inbox is followed live: a text to it shows as unread in the sidebar and home.
    await text_in(live_server, MARIA, team.number, "Are you there?")
    badge = sidebar.locator(f'[data-nav-inbox="{team.inbox}"] [data-slot="badge"]')
    await expect(badge).to_contain_text("1", timeout=LIVE)
    await expect(card).to_contain_text("1 unread")
    await expect(ben.locator("[data-home-summary]")).to_have_text("1 unread conversation.")
    await assert_not_reloaded(ben)
    await sidebar.get_by_role("link", name="Admissions").click()
    await expect(ben.get_by_text("Are you there?")).to_be_visible(timeout=LIVE)


async def test_an_empty_inbox_offers_its_first_text_when_it_arrives(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    ann = await sign_in(await contexts.new(), live_server, team.emails["ann"])
    await ann.goto(f"{live_server.base_url}/inboxes/{team.inbox}")
    await live_ready(ann)
    await expect(ann.locator("[data-empty-title]")).to_have_text("No conversations yet")
    await mark_no_reload(ann)
    await text_in(live_server, MARIA, team.number, "Is anyone there?")
    await expect(ann.locator(".conv")).to_contain_text("Is anyone there?", timeout=LIVE)
    await expect(ann.locator("[data-empty-title]")).to_have_text("Pick a conversation")
    await expect(ann.locator("[data-empty-text]")).to_have_text("Its messages will show here.")
    await assert_not_reloaded(ann)


async def test_long_lists_and_threads_load_more_as_you_scroll(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    # 55 people text in (one page of the list is 50), and Maria sends 55 texts.
    for n in range(55):
        await text_in(live_server, f"+1617555{2000 + n:04d}", team.number, f"Hello number {n}")
    for n in range(55):
        await text_in(live_server, MARIA, team.number, f"Maria's text {n}")
    ann = await sign_in(await contexts.new(), live_server, team.emails["ann"])
    await open_inbox(ann)
    rows = ann.locator(".conv")
    await expect(rows).to_have_count(50)
    await rows.last.scroll_into_view_if_needed()
    await expect(rows).to_have_count(56, timeout=LIVE)
    await expect(ann.locator("[data-list-foot]")).to_have_text("")
    await expect(rows.last).to_contain_text("Hello number 0")

    await row(ann, "Maria's text 54").click()
    await ann.wait_for_selector('body[data-page="thread"]')
    bubbles = ann.locator(".msg--in .msg__bubble")
    await expect(bubbles).to_have_count(50)
    await expect(bubbles.first).to_have_text("Maria's text 5")
    await ann.get_by_role("button", name="Load earlier messages").click()
    await expect(bubbles).to_have_count(55, timeout=LIVE)
    await expect(bubbles.first).to_have_text("Maria's text 0")
    await expect(ann.locator(".messages__start")).to_contain_text("Start of the conversation")
    await expect(ann.locator(".day")).to_have_count(1)  # all today: one separator


async def test_a_failed_reply_says_why_in_words(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    # The simulator answers a send to this magic number as Twilio does: 21614, not a mobile.
    await text_in(live_server, "+15005550009", team.number, "hi from a landline")
    ann = await sign_in(await contexts.new(), live_server, team.emails["ann"])
    await open_inbox(ann)
    await row(ann, "hi from a landline").click()
    await ann.wait_for_selector('body[data-page="thread"]')
    composer = ann.get_by_label("Message to (500) 555-0009")
    await composer.fill("Hello!")
    await composer.press("Enter")
    sent = ann.locator(".msg--out")
    await expect(sent.locator("[data-slot=status-words]")).to_have_text("Failed", timeout=LIVE)
    await expect(sent.locator("[data-slot=error]")).to_have_text(
        "This number cannot receive text messages (error 21614)"
    )
    await ann.reload()
    await expect(ann.locator(".msg--out [data-slot=error]")).to_have_text(
        "This number cannot receive text messages (error 21614)"
    )


async def test_the_composer_sends_a_text_once_and_never_cuts_one_short(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    await text_in(live_server, MARIA, team.number, "Are you there?")
    ann = await sign_in(await contexts.new(), live_server, team.emails["ann"])
    await open_inbox(ann)
    await row(ann, "Are you there?").click()
    await ann.wait_for_selector('body[data-page="thread"]')
    composer = ann.get_by_label("Message to (617) 555-0123")

    # Enter twice before the first send is answered: one text.
    await composer.fill("Yes, here!")
    await composer.press("Enter")
    await composer.press("Enter")
    await expect(ann.locator(".msg--out .msg__bubble")).to_have_text(["Yes, here!"], timeout=LIVE)
    await expect(ann.get_by_role("button", name="Send")).to_be_enabled()  # answered

    # A pasted text past the limit is kept whole, the counter says so, and sending refuses it.
    long_text = "x" * 1700 + " END"
    await composer.fill(long_text)
    await expect(ann.locator("[data-counter]")).to_contain_text(
        "Too long: 1704 characters, at most 1600"
    )
    await composer.press("Enter")
    await expect(ann.get_by_role("alert")).to_contain_text("longer than 1600 characters")
    await expect(composer).to_have_value(long_text)

    async with httpx.AsyncClient(base_url=live_server.base_url, headers=team.auth()) as http:
        conversation = ann.url.rsplit("/", 1)[1]
        sent = (await http.get(f"/api/v1/conversations/{conversation}/messages")).json()
    assert [m["body"] for m in sent["items"] if m["direction"] == "outbound"] == ["Yes, here!"]


async def test_texts_to_an_unrouted_number_reach_admins_only(
    contexts: Contexts, live_server: LiveServer, team: Team
) -> None:
    dana = await sign_in(await contexts.new(), live_server, team.emails["dana"])
    ann = await sign_in(await contexts.new(), live_server, team.emails["ann"])
    await live_ready(dana)
    await mark_no_reload(dana)
    # The first unrouted text makes the Unrouted inbox: an admin's open page shows it at once.
    await text_in(live_server, MARIA, "+14155550999", "Is anyone there?")
    nav = dana.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="Unrouted")).to_contain_text("1", timeout=LIVE)
    await assert_not_reloaded(dana)
    await nav.get_by_role("link", name="Unrouted").click()
    await expect(dana.locator(".conv")).to_contain_text("Is anyone there?")
    await expect(dana.locator(".list-head .pill")).to_have_text("Unrouted")
    await ann.reload()
    assert "Unrouted" not in await ann.locator("#sidebar").inner_text()
    assert "Is anyone there?" not in await ann.content()

    # In the thread, each text says which of our numbers it was sent to (Unrouted gathers
    # texts to many), and the page says how to answer: route the number.
    await dana.locator(".conv", has_text="Is anyone there?").click()
    await dana.wait_for_selector('body[data-page="thread"]')
    await live_ready(dana)
    await expect(dana.locator(".msg--in [data-slot=to]")).to_have_text("to (415) 555-0999")
    await expect(dana.locator("[data-composer-blocked]")).to_contain_text(
        "These texts came to numbers routed to no inbox"
    )
    await text_in(live_server, MARIA, "+14155550998", "Or at this number?")
    await expect(dana.locator(".msg--in [data-slot=to]")).to_have_text(
        ["to (415) 555-0999", "to (415) 555-0998"], timeout=LIVE
    )
