"""No secret in the logs across a whole session: create-user, sign-in (right and wrong),
admin calls by bearer and by cookie, websockets by bearer and by cookie, signed and forged
webhooks delivered live, sign-out revoking the live subscription.

The server runs as `switchboard serve` with logging at DEBUG (the most any operator could turn
on), real Twilio credentials, a PostgreSQL URL with a password, and a Redis that requires one;
every line it writes is captured and searched for each secret.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator

from server.settings import Settings
from tests.live.helpers import LiveClient
from tests.ops.conftest import json_lines, start_logged_server
from tests.support.live_server import REPO, free_port, settings_env
from tests.support.messaging import inbound_params
from tests.support.private_redis import PrivateRedis

API = "/api/v1"


def with_password(database_url: str, password: str) -> str:
    """PostgreSQL URLs get a password (the local server trusts loopback, so any one works)."""
    if "@" not in database_url:
        return database_url  # SQLite: a file path has no password
    scheme, rest = database_url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


async def test_no_secret_reaches_the_logs(
    settings: Settings, tmp_path: Path, private_redis: PrivateRedis
) -> None:
    # private_redis was started without a password; restart it requiring one.
    private_redis.stop()
    private_redis.password = "redis-" + secrets.token_hex(12)
    private_redis.start()

    known = {
        "secret key": "sk-" + secrets.token_hex(24),
        "twilio auth token": secrets.token_hex(16),
        "database password": "db-" + secrets.token_hex(12),
        "redis password": private_redis.password,
        "admin password": "admin-pw-" + secrets.token_hex(8),
        "staff password": "staff-pw-" + secrets.token_hex(8),
        "wrong password": "wrong-pw-" + secrets.token_hex(8),
    }
    settings = replace(
        settings,
        secret_key=known["secret key"],
        twilio_account_sid="AC" + "5" * 32,
        twilio_auth_token=known["twilio auth token"],
        twilio_api_base=f"http://127.0.0.1:{free_port()}",  # nothing sent in this test
        database_url=with_password(settings.database_url, known["database password"]),
        redis_url=private_redis.url,
        redis_prefix=f"sec{free_port()}:",
    )
    if "@" not in settings.database_url:
        del known["database password"]

    created = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "server.cli", "create-user", "admin@example.edu", "--admin"]
        + ["--password", known["admin password"]],
        cwd=REPO,
        env={**settings_env(settings), "SWITCHBOARD_LOG_LEVEL": "DEBUG"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr

    server = start_logged_server(settings, tmp_path / "serve.log", SWITCHBOARD_LOG_LEVEL="DEBUG")
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            wrong = await http.post(
                f"{API}/auth/login",
                json={"email": "admin@example.edu", "password": known["wrong password"]},
            )
            assert wrong.status_code == 401
            login = await http.post(
                f"{API}/auth/login",
                json={"email": "admin@example.edu", "password": known["admin password"]},
            )
            assert login.status_code == 200, login.text
            token = login.json()["token"]
            csrf = login.json()["csrf_token"]
            known["session token"] = token
            known["csrf token"] = csrf
            bearer = {"Authorization": f"Bearer {token}"}

            service = await http.post(
                f"{API}/messaging-services",
                headers=bearer,
                json={"name": "1:1", "sid": "MG" + "a" * 32, "purpose": "one_to_one"},
            )
            assert service.status_code == 201, service.text
            inbox = await http.post(f"{API}/inboxes", headers=bearer, json={"name": "Admissions"})
            assert inbox.status_code == 201, inbox.text
            number = await http.post(
                f"{API}/phone-numbers",
                headers=bearer,
                json={
                    "number": "+16175550199",
                    "sid": "PN" + "b" * 32,
                    "messaging_service_id": service.json()["id"],
                    "inbox_id": inbox.json()["id"],
                },
            )
            assert number.status_code == 201, number.text
            # A cookie-authenticated write (with its CSRF header), as the pages make them.
            staff = await http.post(
                f"{API}/users",
                headers={"X-CSRF-Token": csrf},
                json={
                    "email": "staff@example.edu",
                    "password": known["staff password"],
                    "name": "Staff",
                    "role": "staff",
                },
            )
            assert staff.status_code == 201, staff.text
            assert "sb_session" in http.cookies

            channel = f"inbox:{inbox.json()['id']}"
            ws_url = server.base_url.replace("http://", "ws://") + "/ws"
            by_bearer = await LiveClient.connect(ws_url, token)
            by_cookie = await LiveClient.connect(ws_url, cookie=token, origin=server.base_url)
            for client in (by_bearer, by_cookie):
                await client.subscribe(channel)

            url = server.base_url + "/twilio/messages"  # PUBLIC_URL of the logged server
            params = inbound_params("+16175552999", "+16175550199", "hello")
            signature = RequestValidator(known["twilio auth token"]).compute_signature(url, params)
            signed = await http.post(
                "/twilio/messages", data=params, headers={"X-Twilio-Signature": signature}
            )
            assert signed.status_code == 200, signed.text
            forged = await http.post(
                "/twilio/messages", data=params, headers={"X-Twilio-Signature": "forged="}
            )
            assert forged.status_code == 403
            for client in (by_bearer, by_cookie):
                await client.until(op="event", type="message.created")

            ready = await http.get("/readyz")  # Redis with its password, and the database
            assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}, ready.text

            logout = await http.post(f"{API}/auth/logout", headers=bearer)
            assert logout.status_code == 204
            await by_bearer.until(op="event", type="access.revoked")
            for client in (by_bearer, by_cookie):
                await client.close()
    finally:
        log = server.stop()

    everything = log + created.stdout + created.stderr
    assert "/twilio/messages" in log and "/auth/login" in log  # the session was logged
    json_lines(log)
    for what, secret in known.items():
        assert secret not in everything, f"the {what} was logged"
