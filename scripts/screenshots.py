"""Take the screenshots in docs/: the inbox, a thread, contacts, admin pages, phone width.

    .venv/bin/python scripts/screenshots.py [--out docs]

Runs the real app on a throwaway SQLite database in simulator mode, seeds it with
`switchboard demo`, then plays a short day at the office through the real routes — a text
comes in, staff reply, a campaign goes out, a reply fails — with two people signed in at once,
so the pictures show live state (who is viewing, typing, "seen by"). Needs Chromium at
/usr/bin/chromium (or CHROMIUM=...).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server import demo  # noqa: E402
from server.app import create_app  # noqa: E402
from server.settings import Settings  # noqa: E402
from server.twilio.simulator import text_in  # noqa: E402
from server.websocket import UVICORN_WS_OPTIONS  # noqa: E402
from store.migrate import upgrade_async  # noqa: E402
from tests.browser.support import CHROMIUM_ARGS  # noqa: E402

DESKTOP = {"width": 1366, "height": 820}
PHONE = {"width": 360, "height": 740}
ADMIN, SAM = demo.ADMIN, demo.STAFF[0]
NO_MOBILE = "+15005550009"  # the simulator answers like Twilio: 21614, not a mobile number


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve(settings: Settings, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        **UVICORN_WS_OPTIONS,  # as `switchboard serve` runs it: live sockets need it
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    for _ in range(400):
        if server.started:
            return server
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    raise TimeoutError("the server did not start")


class Office:
    """The app, its URL, and an admin API client."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base = settings.public_base
        self.http = httpx.AsyncClient(base_url=self.base, timeout=30)
        self.headers: dict[str, str] = {}

    async def login(self) -> None:
        answer = await self.http.post(
            "/api/v1/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]}
        )
        answer.raise_for_status()
        self.headers = {"Authorization": f"Bearer {answer.json()['token']}"}

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        answer = await self.http.request(method, "/api/v1" + path, json=body, headers=self.headers)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    async def text_in(self, phone: str, number: str, body: str) -> None:
        answer = await text_in(self.settings, from_=phone, to=number, body=body)
        answer.raise_for_status()


async def signed_in(browser: Browser, office: Office, who: tuple[str, ...], **kw: Any) -> Page:
    context: BrowserContext = await browser.new_context(
        viewport=kw.get("viewport", DESKTOP), device_scale_factor=kw.get("scale", 1)
    )
    page = await context.new_page()
    await page.goto(office.base + "/")
    await page.get_by_label("Email").fill(who[0])
    await page.get_by_label("Password").fill(who[1])
    await page.get_by_label("Password").press("Enter")
    await page.wait_for_selector('body[data-page="home"]')
    return page


async def visit(page: Page, office: Office, path: str) -> None:
    await page.goto(office.base + path)
    await page.wait_for_load_state("networkidle")


async def shoot(page: Page, out: Path, name: str) -> None:
    await page.wait_for_timeout(400)  # let fonts and the last live update settle
    await page.screenshot(path=str(out / f"{name}.png"))
    print(f"  {out / name}.png")


async def conversation_of(office: Office, inbox_id: int, text: str) -> int:
    page = await office.api("GET", f"/inboxes/{inbox_id}/conversations")
    for item in page["items"]:
        if item["last_message"] and text in item["last_message"]["body"]:
            return int(item["id"])
    raise LookupError(text)


async def day_at_the_office(office: Office, browser: Browser, out: Path) -> None:
    inboxes = {i["name"]: i["id"] for i in (await office.api("GET", "/inboxes"))["items"]}
    admissions = inboxes["Admissions"]
    numbers = (await office.api("GET", "/phone-numbers"))["items"]
    blast = next(n for n in numbers if n["number"] == demo.BLAST_NUMBER)
    office_number = demo.INBOX_NUMBERS["Admissions"]

    # A campaign from the blast service, its number routed into Admissions so replies land
    # there (the admin pages then warn about the mix, as they should).
    await office.api("PATCH", f"/phone-numbers/{blast['id']}", {"inbox_id": admissions})
    contacts = (await office.api("GET", "/contacts?limit=200"))["items"]
    chosen = [c["id"] for c in contacts if c["first_name"] in ("Diego", "Noor", "Jordan")]
    campaign = await office.api(
        "POST",
        "/campaigns",
        {
            "name": "Campus tour week",
            "messaging_service_id": blast["messaging_service_id"],
            "body": "Hi {first_name}! Campus tours run daily at 10am next week. Reply to book.",
            "contact_ids": chosen,
        },
    )
    await office.api("POST", f"/campaigns/{campaign['id']}/send")
    for _ in range(100):
        status = await office.api("GET", f"/campaigns/{campaign['id']}")
        if status["status"] == "done":
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.5)  # delivery callbacks

    await office.text_in("+16175551003", office_number, "Perfect, we'll book the Tuesday tour.")
    await office.text_in(NO_MOBILE, office_number, "Hi, is this the admissions office?")

    sam = await signed_in(browser, office, SAM)
    ada = await signed_in(browser, office, ADMIN)
    await shoot(ada, out, "home")

    # Sam answers Diego; Ada opens the same thread and starts typing.
    diego = await conversation_of(office, admissions, "Tuesday tour")
    await visit(sam, office, f"/conversations/{diego}")
    composer = sam.locator("[data-composer-body]")
    await composer.fill("Great! You're booked for Tuesday at 10am. Meet us at the Welcome Center.")
    await composer.press("Enter")
    await sam.wait_for_selector('.msg--out [data-kind="delivered"] >> nth=-1')
    await visit(ada, office, f"/conversations/{diego}")
    await ada.locator("[data-composer-body]").press_sequentially("Parking is in lot B")
    await sam.wait_for_selector("text=Ada Admin is typing…")
    await sam.locator("[data-composer-body]").fill("Bring a photo ID for the visitor pass")
    await shoot(sam, out, "thread")
    await ada.locator("[data-composer-body]").fill("")

    # A reply to a number that cannot take texts fails, and says why in words.
    stray = await conversation_of(office, admissions, "admissions office?")
    await visit(sam, office, f"/conversations/{stray}")
    await sam.locator("[data-composer-body]").fill("Yes it is! How can we help?")
    await sam.locator("[data-composer-body]").press("Enter")
    await sam.wait_for_selector('.msg--out [data-kind="problem"]')

    await visit(sam, office, f"/inboxes/{admissions}")
    await shoot(sam, out, "inbox")
    diego_contact = next(c for c in contacts if c["first_name"] == "Diego")
    await visit(sam, office, f"/contacts/{diego_contact['id']}")
    await shoot(sam, out, "contact")
    await visit(sam, office, "/contacts?q=617 555")
    await shoot(sam, out, "contacts")

    for path, name in (
        ("/admin/inboxes", "admin-inboxes"),
        (f"/admin/inboxes/{admissions}", "admin-inbox"),
        ("/admin/numbers", "admin-numbers"),
        ("/admin/services", "admin-services"),
        ("/admin/users", "admin-users"),
        ("/admin/campaigns", "admin-campaigns"),
        (f"/admin/campaigns/{campaign['id']}", "admin-campaign"),
    ):
        await visit(ada, office, path)
        await shoot(ada, out, name)

    await visit(ada, office, "/simulator")
    await ada.get_by_label("This phone's number (From)").fill("+16175550142")
    await ada.get_by_label("This phone's number (From)").press("Tab")
    await ada.get_by_label("Text message").fill("Hi! Do you offer spring campus tours?")
    await ada.get_by_label("Text message").press("Enter")
    await sam.wait_for_timeout(300)
    spring = await conversation_of(office, admissions, "spring campus tours")
    await visit(sam, office, f"/conversations/{spring}")
    await sam.locator("[data-composer-body]").fill("We do: every weekday at 10am and 2pm.")
    await sam.locator("[data-composer-body]").press("Enter")
    await ada.wait_for_selector("text=every weekday at 10am and 2pm")
    await shoot(ada, out, "simulator")

    phone = await signed_in(browser, office, SAM, viewport=PHONE, scale=2)
    await visit(phone, office, f"/inboxes/{admissions}")
    await shoot(phone, out, "phone-inbox")
    await visit(phone, office, f"/conversations/{stray}")
    await shoot(phone, out, "phone-thread")
    await visit(phone, office, "/")
    await phone.context.clear_cookies()
    await visit(phone, office, "/")
    await shoot(phone, out, "phone-signin")


async def main(out: Path) -> None:
    executable = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp}/screens.db",
            public_url=f"http://127.0.0.1:{port}",
            secret_key=secrets.token_urlsafe(32),
            data_dir=Path(tmp),
            run_worker_in_process=True,
        )
        await upgrade_async(settings.database_url)
        await demo.seed(settings)
        server = await serve(settings, port)
        office = Office(settings)
        try:
            await office.login()
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=executable, args=CHROMIUM_ARGS
                )
                try:
                    await day_at_the_office(office, browser, out)
                finally:
                    await browser.close()
        finally:
            await office.http.aclose()
            server.should_exit = True
            await asyncio.sleep(0.5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    target = parser.parse_args().out
    target.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(target))
