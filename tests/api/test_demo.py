"""`switchboard demo` seeds a team whose printed sign-ins work against the running server."""

from __future__ import annotations

import subprocess
import sys

import httpx

from server import demo
from server.settings import Settings
from tests.api.conftest import login
from tests.support.live_server import REPO, LiveServer, settings_env


def run_demo(settings: Settings) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "demo"],
        cwd=REPO,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_demo_seeds_once_and_its_sign_ins_work(
    settings: Settings, live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    first = run_demo(settings)
    assert "Demo data created." in first
    assert demo.ADMIN[0] in first and demo.ADMIN[1] in first
    assert "Demo data is already there" in run_demo(settings)

    admin = await login(http, demo.ADMIN[0], demo.ADMIN[1])
    assert admin.status_code == 200, admin.text
    as_admin = {"Authorization": f"Bearer {admin.json()['token']}"}
    inboxes = (await http.get("/api/v1/inboxes", headers=as_admin)).json()["items"]
    assert {i["name"] for i in inboxes} == set(demo.INBOX_NUMBERS)
    contacts = (await http.get("/api/v1/contacts", headers=as_admin)).json()["items"]
    assert len(contacts) == len(demo.THREADS)

    email, password, _name, member_of = demo.STAFF[0]
    staff = await login(http, email, password)
    as_staff = {"Authorization": f"Bearer {staff.json()['token']}"}
    mine = (await http.get("/api/v1/inboxes", headers=as_staff)).json()["items"]
    assert [i["name"] for i in mine] == list(member_of) and mine[0]["unread_count"] > 0
    threads = await http.get(f"/api/v1/inboxes/{mine[0]['id']}/conversations", headers=as_staff)
    items = threads.json()["items"]
    assert len(items) == sum(1 for t in demo.THREADS if t[2] == member_of[0])
    assert all(c["last_message"] for c in items)
    stopped = next(c for c in items if c["contact"]["first_name"] == "Alex")
    record = await http.get(f"/api/v1/contacts/{stopped['contact']['id']}", headers=as_staff)
    assert [o["opted_out"] for o in record.json()["opt_outs"]] == [True]
