"""Helpers of the browser tests: a team built through the admin API, signed inbound texts,
signing in through the sign-in form, and a watch on every page's script errors.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Dialog, Page
from twilio.request_validator import RequestValidator

from server.services.users import create_user
from tests.support.live_server import LiveServer

PASSWORD = "correct horse battery staple"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Generous guards for things that happen live; they only bound a failure, never time success.
LIVE = 15_000


@dataclass
class Team:
    """Who and what the tests use: built through the real admin API."""

    admin_token: str
    inbox: int  # "Admissions": Ann and Ben are members
    other_inbox: int  # "Financial Aid": Cy is its only member
    number: str  # routed to Admissions (1:1 service)
    other_number: str  # routed to Financial Aid
    service: int
    users: dict[str, int] = field(default_factory=dict)  # "ann" -> id
    emails: dict[str, str] = field(default_factory=dict)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


async def build_team(server: LiveServer) -> Team:
    """An admin (made like `switchboard create-user --admin`), then everything else by API."""
    async with server.state.transaction() as session:
        await create_user(
            session, email="dana@example.edu", password=PASSWORD, name="Dana Admin", role="admin"
        )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as http:
        login = await http.post(
            "/api/v1/auth/login", json={"email": "dana@example.edu", "password": PASSWORD}
        )
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['token']}"}

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            answer = await http.post(f"/api/v1{path}", json=body, headers=headers)
            assert answer.status_code == 201, answer.text
            return answer.json()

        service = await post(
            "/messaging-services",
            {"name": "Admissions 1:1", "sid": _sid("MG"), "purpose": "one_to_one"},
        )
        inbox = await post("/inboxes", {"name": "Admissions"})
        other = await post("/inboxes", {"name": "Financial Aid"})
        number = "+14155550100"
        other_number = "+14155550177"
        for phone, routed in ((number, inbox), (other_number, other)):
            await post(
                "/phone-numbers",
                {
                    "number": phone,
                    "sid": _sid("PN"),
                    "messaging_service_id": service["id"],
                    "inbox_id": routed["id"],
                },
            )
        team = Team(
            admin_token=login.json()["token"],
            inbox=inbox["id"],
            other_inbox=other["id"],
            number=number,
            other_number=other_number,
            service=service["id"],
        )
        team.emails["dana"] = "dana@example.edu"
        team.users["dana"] = login.json()["user"]["id"]
        for key, name, inbox_id in (
            ("ann", "Ann Lee", inbox["id"]),
            ("ben", "Ben Ortiz", inbox["id"]),
            ("cy", "Cy Young", other["id"]),
        ):
            email = f"{key}@example.edu"
            user = await post("/users", {"email": email, "password": PASSWORD, "name": name})
            answer = await http.put(
                f"/api/v1/inboxes/{inbox_id}/members/{user['id']}", headers=headers
            )
            assert answer.status_code in (200, 201), answer.text
            team.users[key] = user["id"]
            team.emails[key] = email
    return team


async def text_in(
    server: LiveServer, from_: str, to: str, body: str, *, public_base: str | None = None
) -> str:
    """A text from `from_` to our number `to`, POSTed and signed exactly as Twilio would."""
    base = public_base or server.settings.public_base
    url = base + "/twilio/messages"
    sid = _sid("SM")
    params = {
        "MessageSid": sid,
        "AccountSid": "AC" + "1" * 32,
        "From": from_,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
    }
    signature = RequestValidator(server.settings.webhook_auth_token).compute_signature(url, params)
    async with httpx.AsyncClient(timeout=20) as http:
        answer = await http.post(url, data=params, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200, answer.text
    return sid


class ErrorWatch:
    """Collects script errors and CSP violations of every page of a context."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def attach(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    async def _dialog(self, dialog: Dialog) -> None:
        """Confirmations (admin pages) are accepted; an alert means injected script ran."""
        if dialog.type == "alert":
            self.errors.append(f"alert: {dialog.message}")
        await dialog.accept()

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.errors.append(f"csp: {message.text}")


class Contexts:
    """Browser contexts (one per person) watched for errors, all closed when the test ends —
    before its server stops, so no open socket holds up the server's shutdown."""

    def __init__(self, browser: Browser, watch: ErrorWatch) -> None:
        self.browser = browser
        self.watch = watch
        self.opened: list[BrowserContext] = []

    async def new(self, width: int = 1280, height: int = 800) -> BrowserContext:
        context = await self.browser.new_context(
            viewport={"width": width, "height": height}, timezone_id="America/New_York"
        )
        context.on("page", self.watch.attach)
        self.opened.append(context)
        return context

    async def close(self) -> None:
        for context in self.opened:
            await context.close()


async def sign_in(context: BrowserContext, server: LiveServer, email: str) -> Page:
    """Sign in through the form, by keyboard (Enter submits), and land on the home page."""
    page = await context.new_page()
    await page.goto(server.base_url + "/")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Password").press("Enter")
    await page.wait_for_selector('body[data-page="home"]', timeout=LIVE)
    return page


async def live_ready(page: Page) -> None:
    """The page's websocket is open (events sent from now on reach it live)."""
    await page.wait_for_selector('body[data-live="open"]', timeout=LIVE)


async def mark_no_reload(page: Page) -> None:
    await page.evaluate("window.__noReload = true")


async def assert_not_reloaded(page: Page) -> None:
    assert await page.evaluate("window.__noReload === true"), "the page reloaded"
