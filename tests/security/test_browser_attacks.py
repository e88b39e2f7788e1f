"""What a hostile web page or a password guesser can try against a signed-in browser's server.

- Cross-site websocket hijacking: the session cookie opens `/ws` only with this site's Origin,
  however the foreign one is dressed up.
- CSRF: every cookie-authenticated write in the app's route table (taken from the access
  matrix, so a new route is swept too) is refused without its session's CSRF token, and
  changes nothing; no CORS is granted to other origins.
- Session fixation: signing in never adopts a session token the browser was given.
- Login brute force: the limits hold under concurrent guesses and against X-Forwarded-For.
- Security headers on every page and answer, no inline script or style in any page.
- Cookies: HttpOnly, SameSite, Path, and Secure when PUBLIC_URL is https (as `serve` runs).

tests/api/test_auth.py and tests/test_pages.py cover the plain cases; these fill the gaps.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select
from websockets.exceptions import InvalidStatus

from server.auth import CSRF_HEADER, SESSION_COOKIE, csrf_token
from server.security_headers import CONTENT_SECURITY_POLICY
from server.settings import Settings
from server.state import AppState
from store.models import Base
from tests.api import builders as b
from tests.api.conftest import World, build_world, login
from tests.api.test_access_matrix import RULES, Rule, fill, scopes
from tests.live.helpers import LiveClient
from tests.support.live_server import LiveServer, ServerProcess, start_server_process

WRITES = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
async def world(live_server: LiveServer) -> World:
    return await build_world(live_server.state)


def as_cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={token}"}


async def snapshot(state: AppState) -> dict[str, list[str]]:
    """Every row of every table, to show that nothing changed."""
    found: dict[str, list[str]] = {}
    async with state.reading() as session:
        for table in Base.metadata.sorted_tables:
            rows = (await session.execute(select(table))).all()
            found[table.name] = sorted(repr(tuple(row)) for row in rows)
    return found


# -- cross-site websocket hijacking -----------------------------------------------------------


def foreign_origins(public_url: str) -> list[str | None]:
    scheme, rest = public_url.split("://", 1)
    other_scheme = "https" if scheme == "http" else "http"
    host = rest.split(":")[0]
    return [
        None,
        "null",
        f"{other_scheme}://{rest}",
        f"{scheme}://{rest}.evil.example",
        f"{scheme}://evil.example/{rest}",
        f"{scheme}://{rest}@evil.example",
        f"{scheme}://{rest}, https://evil.example",
        f"{scheme}://localhost:{rest.split(':')[-1]}" if ":" in rest else f"{scheme}://localhost",
        f"{scheme}://{host}:1",
        "https://evil.example",
    ]


async def refused_handshake(server: LiveServer, token: str, origin: str | None) -> int:
    with pytest.raises(InvalidStatus) as refused:
        await LiveClient.connect(server.ws_url, cookie=token, origin=origin, encoding="json")
    return refused.value.response.status_code


async def test_the_session_cookie_opens_a_socket_only_from_this_site(
    live_server: LiveServer, world: World
) -> None:
    token = world.tokens["alice"]
    for origin in foreign_origins(live_server.settings.public_url):
        assert await refused_handshake(live_server, token, origin) == 403, origin
    own = await LiveClient.connect(
        live_server.ws_url, cookie=token, origin=live_server.settings.public_url, encoding="json"
    )
    await own.subscribe(f"inbox:{world.ids['inbox_a']}")
    await own.close()

    # Behind https, the http origin of the same host is another site.
    state = live_server.state
    state.settings = replace(state.settings, public_url="https://sms.example.edu")
    for origin in ("http://sms.example.edu", "https://sms.example.edu.evil.example"):
        assert await refused_handshake(live_server, token, origin) == 403, origin
    for origin in ("https://sms.example.edu", "https://SMS.example.edu:443"):
        client = await LiveClient.connect(
            live_server.ws_url, cookie=token, origin=origin, encoding="json"
        )
        await client.close()


# -- CSRF -------------------------------------------------------------------------------------


def one_off(token: str) -> str:
    return token[:-1] + ("1" if token.endswith("0") else "0")


def cookie_writes() -> list[tuple[tuple[str, str], Rule]]:
    return [
        (key, rule)
        for key, rule in sorted(RULES.items())
        if key[0] in WRITES and rule.who not in ("public", "twilio")
    ]


async def test_every_cookie_write_needs_its_sessions_csrf_token(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    writes = cookie_writes()
    assert len(writes) >= 20, "the sweep found the app's write routes"
    own = scopes(world)["own"]
    secret = live_server.settings.secret_key
    admin = world.tokens["admin"]
    presented = {
        "no token": {},
        "a made-up token": {CSRF_HEADER: "0" * 64},
        "another session's token": {CSRF_HEADER: csrf_token(secret, world.tokens["alice"])},
        "the right token, one character off": {CSRF_HEADER: one_off(csrf_token(secret, admin))},
    }
    before = await snapshot(live_server.state)
    for (method, path), rule in writes:
        url = fill(path, (rule.params or (lambda w, s: {}))(world, own))
        body = rule.body(world, own) if rule.body else None
        for name, headers in presented.items():
            response = await http.request(
                method,
                url,
                json=body,
                headers={**as_cookie(admin), "Origin": "https://evil.example", **headers},
            )
            assert response.status_code == 403, (method, url, name, response.text)
            assert response.json()["error"] == "csrf", (method, url, name)
    assert await snapshot(live_server.state) == before, "a refused write changed something"


async def test_no_cross_origin_access_is_granted(http: httpx.AsyncClient, world: World) -> None:
    evil = {"Origin": "https://evil.example", **as_cookie(world.tokens["alice"])}
    preflight = await http.options(
        "/api/v1/contacts",
        headers={
            **evil,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": f"content-type, {CSRF_HEADER}",
        },
    )
    read = await http.get("/api/v1/inboxes", headers=evil)
    for response in (preflight, read):
        assert not any(h.lower().startswith("access-control-") for h in response.headers)


# -- session fixation -------------------------------------------------------------------------


async def test_signing_in_never_adopts_a_planted_session(
    live_server: LiveServer, world: World
) -> None:
    async with live_server.state.transaction() as session:
        victim = await b.user(session)
    attacker_token = world.tokens["carol"]  # a real session, the attacker's own
    for planted in (attacker_token, "attacker-chosen-" + "x" * 40):
        async with httpx.AsyncClient(base_url=live_server.base_url) as browser:
            browser.cookies.set(SESSION_COOKIE, planted, domain="127.0.0.1", path="/")
            signed_in = await login(browser, victim.email)
            assert signed_in.status_code == 200
            token = signed_in.json()["token"]
            assert token != planted and browser.cookies[SESSION_COOKIE] == token
            me = await browser.get("/api/v1/auth/me")
            assert me.json()["user"]["id"] == victim.id
        # The planted token is whatever it was before: not the victim's.
        async with httpx.AsyncClient(base_url=live_server.base_url) as attacker:
            theirs = await attacker.get(
                "/api/v1/auth/me", headers={"Authorization": f"Bearer {planted}"}
            )
        if planted == attacker_token:
            assert theirs.json()["user"]["id"] == world.users["carol"]
        else:
            assert theirs.status_code == 401


# -- login brute force ------------------------------------------------------------------------


async def test_concurrent_guesses_get_no_more_tries_than_the_limit(
    live_server: LiveServer,
) -> None:
    async with live_server.state.transaction() as session:
        user = await b.user(session)

    async def guess(n: int) -> int:
        async with httpx.AsyncClient(base_url=live_server.base_url, timeout=60) as client:
            return (await login(client, user.email, f"guess {n}")).status_code

    answers = list(await asyncio.gather(*(guess(n) for n in range(25))))
    assert set(answers) <= {401, 429}
    # Refused guesses are not counted, so a burst may leave fewer than 5 failures on record;
    # guessing on one at a time, exactly 5 wrong passwords are ever checked in the window.
    while answers.count(401) < 5:
        answers.append(await guess(len(answers)))
        assert len(answers) < 50, answers
    assert await guess(len(answers)) == 429
    assert answers.count(401) == 5, answers
    async with httpx.AsyncClient(base_url=live_server.base_url) as client:
        assert (await login(client, user.email)).status_code == 429


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[tuple[AppState, ServerProcess]]:
    state = AppState(settings)
    process = start_server_process(settings)
    try:
        yield state, process
    finally:
        process.terminate()
        await state.close()


async def test_forwarded_for_headers_do_not_reset_the_address_limit(
    served: tuple[AppState, ServerProcess],
) -> None:
    """`serve` does not trust X-Forwarded-For (no proxy is configured): rotating it changes
    nothing about which address the guesses come from."""
    state, process = served
    async with state.transaction() as session:
        user = await b.user(session)
    async with httpx.AsyncClient(base_url=process.base_url, timeout=60) as client:
        for n in range(30):
            spoofed = {"X-Forwarded-For": f"203.0.113.{n}", "X-Real-IP": f"198.51.100.{n}"}
            response = await client.post(
                "/api/v1/auth/login",
                json={"email": f"guess{n}@example.test", "password": "wrong"},
                headers=spoofed,
            )
            assert response.status_code == 401
        limited = await client.post(
            "/api/v1/auth/login",
            json={"email": user.email, "password": b.PASSWORD},
            headers={"X-Forwarded-For": "192.0.2.77", "Forwarded": "for=192.0.2.78"},
        )
        assert limited.status_code == 429, limited.text


async def test_behind_a_trusted_proxy_each_client_address_has_its_own_limit(
    settings: Settings,
) -> None:
    """With SWITCHBOARD_TRUSTED_PROXIES naming the proxy, the limit counts the address the
    proxy forwards: one client guessing is stopped, another behind the same proxy is not."""
    proxied = replace(settings, trusted_proxies="127.0.0.1")
    state = AppState(proxied)
    process = start_server_process(proxied)
    try:
        async with state.transaction() as session:
            user = await b.user(session)
        async with httpx.AsyncClient(base_url=process.base_url, timeout=60) as client:

            async def attempt(address: str, email: str, password: str = "wrong") -> int:
                response = await client.post(
                    "/api/v1/auth/login",
                    json={"email": email, "password": password},
                    headers={"X-Forwarded-For": address},
                )
                return response.status_code

            for n in range(30):
                assert await attempt("203.0.113.5", f"guess{n}@example.test") == 401
            assert await attempt("203.0.113.5", user.email, b.PASSWORD) == 429
            assert await attempt("203.0.113.6", user.email, b.PASSWORD) == 200
    finally:
        process.terminate()
        await state.close()


# -- headers and pages ------------------------------------------------------------------------


def assert_security_headers(response: httpx.Response, where: str) -> None:
    headers = response.headers
    assert headers.get("content-security-policy") == CONTENT_SECURITY_POLICY, where
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("x-frame-options") == "DENY", where
    assert "frame-ancestors 'none'" in headers["content-security-policy"], where


def assert_no_inline_code(page: str, where: str) -> None:
    for tag in re.findall(r"<script\b[^>]*>", page, re.IGNORECASE):
        assert "src=" in tag or 'type="application/json"' in tag, (where, tag)
    for block in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', page, re.S):
        assert "<" not in block, (where, "markup inside a data block")
    assert not re.search(r"<style\b|\sstyle=", page, re.IGNORECASE), where
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", page, re.IGNORECASE), where
    assert "javascript:" not in page.lower(), where


async def test_every_page_and_answer_carries_the_security_headers(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    own = scopes(world)["own"]
    admin, staff = as_cookie(world.tokens["admin"]), as_cookie(world.tokens["alice"])
    pages = [
        fill(path, (rule.params or (lambda w, s: {}))(world, own))
        for (method, path), rule in sorted(RULES.items())
        if rule.page and method == "GET"
    ]
    assert len(pages) >= 10
    answers: list[tuple[str, httpx.Response]] = []
    for url in pages:
        answers.append((f"admin {url}", await http.get(url, headers=admin)))
        answers.append((f"staff {url}", await http.get(url, headers=staff)))
        answers.append((f"visitor {url}", await http.get(url)))
    for url in ("/no/such/page", "/conversations/987654321", "/api/v1/nothing", "/openapi.json"):
        answers.append((url, await http.get(url, headers=admin)))
    answers.append(("api", await http.get("/api/v1/inboxes", headers=world.auth("admin"))))
    answers.append(("webhook", await http.post("/twilio/messages", data={"x": "y"})))
    answers.append(("csrf refusal", await http.post("/api/v1/contacts", headers=admin, json={})))
    for path in ("/healthz", "/readyz", "/metrics"):
        answers.append((path, await http.get(path)))
    html = 0
    for where, response in answers:
        assert response.status_code < 500, where
        assert_security_headers(response, where)
        if response.headers.get("content-type", "").startswith("text/html"):
            html += 1
            assert_no_inline_code(response.text, where)
    assert html >= len(pages)


# -- cookies as `serve` sets them -------------------------------------------------------------


def cookie_attributes(response: httpx.Response) -> list[dict[str, str]]:
    found = []
    for value in response.headers.get_list("set-cookie"):
        name_value, *attributes = [part.strip() for part in value.split(";")]
        parsed = {"name": name_value.split("=", 1)[0]}
        for attribute in attributes:
            key, _, val = attribute.partition("=")
            parsed[key.lower()] = val.lower()
        found.append(parsed)
    return found


@pytest.mark.parametrize("public_url", ["https://sms.example.edu", "http://sms.example.edu"])
async def test_serve_sets_cookies_http_only_same_site_and_secure_behind_https(
    settings: Settings, public_url: str
) -> None:
    settings = replace(settings, public_url=public_url)
    state = AppState(settings)
    async with state.transaction() as session:
        user = await b.user(session)
    process = start_server_process(settings)
    try:
        async with httpx.AsyncClient(base_url=process.base_url) as client:
            signed_in = await login(client, user.email)
            token = signed_in.json()["token"]
            out = await client.post(
                "/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}
            )
            assert out.status_code == 204
            page = await client.get("/")
        cookies = cookie_attributes(signed_in) + cookie_attributes(out)
        assert [c["name"] for c in cookies] == [SESSION_COOKIE, SESSION_COOKIE]
        assert cookie_attributes(page) == []  # pages set no cookie of their own
        for cookie in cookies:
            assert "httponly" in cookie and cookie["samesite"] in ("lax", "strict"), cookie
            assert cookie["path"] == "/", cookie
            assert ("secure" in cookie) == public_url.startswith("https://"), cookie
    finally:
        process.terminate()
        await state.close()
