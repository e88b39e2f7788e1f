"""Sign-in over HTTP: tokens and cookies, bearer precedence, CSRF, sessions ending, rate limits."""

from __future__ import annotations

from dataclasses import replace

import httpx

from server.auth import SESSION_COOKIE
from server.settings import Settings
from store.models import User
from tests.api import builders as b
from tests.api.conftest import AccessSpy, login
from tests.support.live_server import LiveServer, start_live_server


async def login_elsewhere(live_server: LiveServer, email: str) -> dict[str, str]:
    """Sign in from a separate client (no shared cookies)."""
    async with httpx.AsyncClient(base_url=live_server.base_url) as client:
        return (await login(client, email)).json()


async def make_user(live_server: LiveServer, role: str = "staff") -> User:
    async with live_server.state.transaction() as s:
        return await b.user(s, role)


def cookie_header(response: httpx.Response) -> str:
    headers = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    assert len(headers) == 1, headers
    return headers[0]


async def test_login_answers_token_user_csrf_and_an_http_only_cookie(
    live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    user = await make_user(live_server)
    response = await login(http, user.email.upper())
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == {"token", "user", "csrf_token"}
    assert data["user"]["id"] == user.id and data["user"]["role"] == "staff"
    assert "password" not in str(data["user"]) and "hash" not in str(data["user"])
    cookie = cookie_header(response)
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert cookie.startswith(f"{SESSION_COOKIE}={data['token']};")
    assert {"httponly", "path", "samesite"} <= attributes and "secure" not in attributes
    assert "samesite=lax" in cookie.lower() and "path=/" in cookie.lower()

    async with httpx.AsyncClient(base_url=live_server.base_url) as fresh:
        me = await fresh.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {data['token']}"}
        )
        assert me.status_code == 200 and me.json()["user"]["email"] == user.email
        assert me.json()["csrf_token"] == data["csrf_token"]
    me_by_cookie = await http.get("/api/v1/auth/me")
    assert me_by_cookie.json()["user"]["id"] == user.id

    # Session fixation: a login never reuses the token the browser came with.
    second = await login(http, user.email)
    assert second.json()["token"] != data["token"]
    assert http.cookies[SESSION_COOKIE] == second.json()["token"]


async def test_secure_cookie_when_public_url_is_https(
    live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    user = await make_user(live_server)
    state = live_server.state
    state.settings = replace(state.settings, public_url="https://switchboard.example")
    response = await login(http, user.email)
    assert "secure" in [p.strip().lower() for p in cookie_header(response).split(";")]


async def test_wrong_credentials_and_bad_bodies(
    live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    user = await make_user(live_server)
    for email, password in ((user.email, "wrong password"), ("nobody@example.test", b.PASSWORD)):
        response = await login(http, email, password)
        assert response.status_code == 401
        assert response.json() == {
            "error": "invalid_credentials",
            "detail": "wrong email or password",
        }
        assert "set-cookie" not in response.headers
    missing = await http.post("/api/v1/auth/login", json={"email": user.email})
    assert missing.status_code == 422 and missing.json()["field"] == "password"
    form = await http.post("/api/v1/auth/login", data={"email": user.email, "password": "x"})
    assert form.status_code == 415
    broken = await http.post(
        "/api/v1/auth/login", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["error"] == "bad_request"
    typed = await http.post("/api/v1/auth/login", json={"email": 5, "password": b.PASSWORD})
    assert typed.status_code == 422 and typed.json()["field"] == "email"
    assert (await http.get("/api/v1/auth/me")).status_code == 401
    anonymous = await http.get("/api/v1/inboxes")
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"


async def test_bearer_decides_when_both_come(
    live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    cookie_user, bearer_user = await make_user(live_server), await make_user(live_server)
    await login(http, cookie_user.email)  # the client now carries cookie_user's cookie
    bearer = await login_elsewhere(live_server, bearer_user.email)
    me = await http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {bearer['token']}"})
    assert me.json()["user"]["id"] == bearer_user.id
    bad = await http.get("/api/v1/auth/me", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401
    assert (await http.get("/api/v1/auth/me")).json()["user"]["id"] == cookie_user.id


async def test_cookie_writes_need_the_csrf_header_bearer_writes_do_not(
    live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    user = await make_user(live_server)
    session = (await login(http, user.email)).json()
    body = {"phone": "+16175550101"}
    refused = await http.post("/api/v1/contacts", json=body)
    assert refused.status_code == 403 and refused.json()["error"] == "csrf"
    wrong = await http.post("/api/v1/contacts", json=body, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    ok = await http.post(
        "/api/v1/contacts", json=body, headers={"X-CSRF-Token": session["csrf_token"]}
    )
    assert ok.status_code == 201
    async with httpx.AsyncClient(base_url=live_server.base_url) as bearer_only:
        created = await bearer_only.post(
            "/api/v1/contacts",
            json={"phone": "+16175550102"},
            headers={"Authorization": f"Bearer {session['token']}"},
        )
        assert created.status_code == 201
    refused_logout = await http.post("/api/v1/auth/logout")
    assert refused_logout.status_code == 403
    assert (await http.get("/api/v1/auth/me")).status_code == 200


async def test_logout_revokes_the_session_and_announces_it(
    live_server: LiveServer, http: httpx.AsyncClient, access_spy: AccessSpy
) -> None:
    user = await make_user(live_server)
    session = (await login(http, user.email)).json()
    other = await login_elsewhere(live_server, user.email)
    out = await http.post("/api/v1/auth/logout", headers={"X-CSRF-Token": session["csrf_token"]})
    assert out.status_code == 204
    assert (
        f'{SESSION_COOKIE}=""' in out.headers["set-cookie"]
        or "Max-Age=0" in out.headers["set-cookie"]
    )
    assert access_spy.users == [user.id]
    bearer = {"Authorization": f"Bearer {session['token']}"}
    assert (await http.get("/api/v1/auth/me", headers=bearer)).status_code == 401
    # Only that session ended; the user's other sign-in goes on.
    still = await http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {other['token']}"})
    assert still.status_code == 200


async def test_deactivated_user_cannot_sign_in_and_loses_sessions(
    live_server: LiveServer, http: httpx.AsyncClient, access_spy: AccessSpy
) -> None:
    admin, staff = await make_user(live_server, "admin"), await make_user(live_server)
    admin_token = (await login(http, admin.email)).json()["token"]
    staff_token = (await login(http, staff.email)).json()["token"]
    as_admin = {"Authorization": f"Bearer {admin_token}"}
    response = await http.patch(
        f"/api/v1/users/{staff.id}", json={"active": False}, headers=as_admin
    )
    assert response.status_code == 200 and response.json()["active"] is False
    assert access_spy.users == [staff.id]
    gone = await http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {staff_token}"})
    assert gone.status_code == 401
    assert (await login(http, staff.email)).status_code == 401
    await http.patch(f"/api/v1/users/{staff.id}", json={"active": True}, headers=as_admin)
    assert (await login(http, staff.email)).status_code == 200
    # The old token stays revoked after reactivation.
    again = await http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {staff_token}"})
    assert again.status_code == 401


async def test_login_rate_limit_per_email_shared_by_two_processes(
    live_server: LiveServer, http: httpx.AsyncClient, settings: Settings
) -> None:
    user = await make_user(live_server)
    other_server = await start_live_server(settings)
    try:
        async with httpx.AsyncClient(base_url=other_server.base_url) as other:
            for n in range(5):
                client = http if n % 2 else other
                assert (await login(client, user.email, "wrong")).status_code == 401
            for client in (http, other):
                limited = await login(client, user.email)  # even the right password
                assert limited.status_code == 429, limited.text
                assert limited.json()["error"] == "rate_limited"
                assert 1 <= int(limited.headers["retry-after"]) <= 15 * 60
            assert "set-cookie" not in limited.headers
            # Another email from the same address is not held back by this one.
            bystander = await make_user(live_server)
            assert (await login(other, bystander.email)).status_code == 200
    finally:
        await other_server.stop()


async def test_a_successful_login_clears_the_email_failures(
    live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    user = await make_user(live_server)
    for _ in range(4):
        assert (await login(http, user.email, "wrong")).status_code == 401
    assert (await login(http, user.email)).status_code == 200
    for _ in range(4):
        assert (await login(http, user.email, "wrong")).status_code == 401
    assert (await login(http, user.email)).status_code == 200


async def test_login_rate_limit_per_address(
    live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    user = await make_user(live_server)
    for n in range(30):
        response = await login(http, f"guess{n}@example.test", "wrong")
        assert response.status_code == 401
    limited = await login(http, user.email)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
