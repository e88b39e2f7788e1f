"""The pages over plain HTTP: who gets what, what leaks (nothing), and the headers they carry."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from server.security_headers import CONTENT_SECURITY_POLICY
from server.settings import Settings
from tests.browser.support import PASSWORD, Team, build_team, text_in
from tests.support.live_server import LiveServer, start_live_server

MARIA = "+16175550123"


@pytest.fixture
async def team(live_server: LiveServer) -> Team:
    return await build_team(live_server)


class Browserish(httpx.AsyncClient):
    """A client holding the session cookie, the way a browser does after signing in."""

    csrf = ""


async def signed_in(server: LiveServer, email: str) -> Browserish:
    client = Browserish(base_url=server.base_url, timeout=20)
    answer = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    client.csrf = answer.json()["csrf_token"]
    return client


@pytest.fixture
async def ann(live_server: LiveServer, team: Team) -> AsyncIterator[Browserish]:
    client = await signed_in(live_server, team.emails["ann"])
    yield client
    await client.aclose()


@pytest.fixture
async def cy(live_server: LiveServer, team: Team) -> AsyncIterator[Browserish]:
    client = await signed_in(live_server, team.emails["cy"])
    yield client
    await client.aclose()


async def test_a_visitor_gets_the_sign_in_form_and_nothing_else(http: httpx.AsyncClient) -> None:
    page = await http.get("/")
    assert page.status_code == 200
    assert 'type="email"' in page.text and 'type="password"' in page.text
    assert 'data-next="/"' in page.text
    for path in ("/inboxes/1", "/conversations/1", "/contacts/1", "/admin/users", "/simulator"):
        answer = await http.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/?next=" + path.replace("/", "%2F")


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("%2Finboxes%2F3%3Ffilter%3Dunread", "/inboxes/3?filter=unread"),
        ("%2F%2Fevil.example%2F", "/"),
        ("https%3A%2F%2Fevil.example%2F", "/"),
        ("%2F%5Cevil.example", "/"),
    ],
)
async def test_sign_in_goes_on_only_to_a_page_of_this_site(
    http: httpx.AsyncClient, given: str, kept: str
) -> None:
    page = await http.get(f"/?next={given}")
    assert f'data-next="{html.escape(kept)}"' in page.text


async def test_pages_carry_strict_security_headers(
    http: httpx.AsyncClient, team: Team, ann: Browserish
) -> None:
    for answer in (await http.get("/"), await ann.get("/"), await ann.get("/api/v1/inboxes")):
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
    policy = CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    # No inline script or style in any page: everything comes from /static.
    page = (await ann.get("/")).text
    for tag in re.findall(r"<script[^>]*>", page):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert " style=" not in page and "<style" not in page
    assert not re.search(r"<[^>]+\son[a-z]+=", page)


async def test_the_page_embeds_the_csrf_token_of_its_session(team: Team, ann: Browserish) -> None:
    page = await ann.get("/")
    token = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text)
    assert token is not None and token.group(1) == ann.csrf
    # The JSON API takes it for a cookie-authenticated write, and refuses one without it.
    refused = await ann.post(f"/api/v1/conversations/{10**9}/read", json={})
    assert refused.status_code == 403 and refused.json()["error"] == "csrf"


async def test_home_lists_my_inboxes_with_unread_counts(
    live_server: LiveServer, team: Team, ann: Browserish
) -> None:
    await text_in(live_server, MARIA, team.number, "one")
    await text_in(live_server, "+16175550144", team.number, "two")
    page = (await ann.get("/")).text
    card = re.search(rf'<a class="card inbox-card" href="/inboxes/{team.inbox}".*?</a>', page, re.S)
    assert card is not None
    assert "Admissions" in card.group(0) and "2 unread" in card.group(0)
    assert "Financial Aid" not in page  # not Ann's


async def test_an_outsider_gets_404_pages_that_name_nothing(
    live_server: LiveServer, team: Team, cy: Browserish
) -> None:
    await text_in(live_server, MARIA, team.number, "Private question")
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        found = await http.get(f"/api/v1/inboxes/{team.inbox}/conversations", headers=team.auth())
    conversation = found.json()["items"][0]
    for path in (
        f"/inboxes/{team.inbox}",
        f"/inboxes/{team.inbox}?filter=unread",
        f"/conversations/{conversation['id']}",
        f"/contacts/{conversation['contact']['id']}",
        "/inboxes/999999",
        "/inboxes/0",
        "/inboxes/abc",
        "/conversations/99999999999999999999999",
    ):
        answer = await cy.get(path)
        assert answer.status_code == 404, path
        for secret in ("Admissions", "Private question", "555-0123", MARIA):
            assert secret not in answer.text, (path, secret)
        assert "Nothing here" in answer.text


async def test_staff_get_the_admins_only_page(team: Team, ann: Browserish) -> None:
    for path in ("/admin/inboxes", f"/admin/inboxes/{team.inbox}", "/admin/users", "/simulator"):
        answer = await ann.get(path)
        assert answer.status_code == 403, path
        assert "Admins only" in answer.text


async def test_user_written_text_is_escaped_in_rendered_pages(
    live_server: LiveServer, team: Team, ann: Browserish
) -> None:
    evil_name = '<script>alert("name")</script>'
    evil_body = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        made = await http.post(
            "/api/v1/contacts",
            json={"phone": MARIA, "first_name": evil_name, "fields": {"note": "<b>bold</b>"}},
            headers=team.auth(),
        )
        assert made.status_code == 201, made.text
    await text_in(live_server, MARIA, team.number, evil_body)
    listing = await ann.get(f"/inboxes/{team.inbox}")
    conversation_id = re.search(r'data-conversation-id="(\d+)"', listing.text).group(1)
    for path in (f"/inboxes/{team.inbox}", f"/conversations/{conversation_id}"):
        page = (await ann.get(path)).text
        assert evil_name not in page and evil_body not in page
        assert "<img src=x" not in page and 'alert("name")</script>' not in page
        assert "&lt;script&gt;alert(" in page
    record = (await ann.get(f"/contacts/{made.json()['id']}")).text
    assert "<b>bold</b>" not in record and "&lt;b&gt;bold&lt;/b&gt;" in record


async def test_static_files_are_versioned_and_cached(http: httpx.AsyncClient) -> None:
    page = (await http.get("/")).text
    css = re.search(r'href="(/static/css/app\.css\?v=[0-9a-f]+)"', page)
    assert css is not None
    answer = await http.get(css.group(1))
    assert answer.status_code == 200 and "immutable" in answer.headers["cache-control"]
    assert (await http.get("/static/js/live.js")).headers["cache-control"] == "no-cache"
    assert (await http.get("/static/../server/app.py")).status_code == 404
    assert (await http.get("/static/%2e%2e/server/app.py")).status_code == 404


async def test_the_simulator_page_exists_only_in_simulator_mode(settings: Settings) -> None:
    real = replace(settings, twilio_account_sid="AC" + "2" * 32, twilio_auth_token="secret")
    server = await start_live_server(real)
    try:
        team = await build_team(server)
        client = await signed_in(server, team.emails["dana"])
        try:
            page = await client.get("/simulator")
            assert page.status_code == 404
            assert "Text in as a phone" not in (await client.get("/")).text
            sent = await client.post(
                "/simulator/messages",
                json={"phone": MARIA, "number": team.number, "body": "hi"},
                headers={"x-csrf-token": client.csrf},
            )
            assert sent.status_code == 404
        finally:
            await client.aclose()
    finally:
        await server.stop()


async def test_simulator_text_in_needs_an_admin_and_the_csrf_token(
    live_server: LiveServer, team: Team, ann: Browserish
) -> None:
    body = {"phone": MARIA, "number": team.number, "body": "hi"}
    staff = await ann.post("/simulator/messages", json=body, headers={"x-csrf-token": ann.csrf})
    assert staff.status_code == 403
    dana = await signed_in(live_server, team.emails["dana"])
    try:
        no_token = await dana.post("/simulator/messages", json=body)
        assert no_token.status_code == 403 and no_token.json()["error"] == "csrf"
        bad = await dana.post(
            "/simulator/messages",
            json={**body, "phone": "not a phone"},
            headers={"x-csrf-token": dana.csrf},
        )
        assert bad.status_code == 422 and bad.json()["error"] == "invalid"
        sent = await dana.post(
            "/simulator/messages", json=body, headers={"x-csrf-token": dana.csrf}
        )
        assert sent.status_code == 201
        thread = await dana.get(f"/simulator/thread?phone={MARIA}&number={team.number}")
        assert [m["body"] for m in thread.json()["items"]] == ["hi"]
    finally:
        await dana.aclose()
