"""Campaigns: the time to enqueue 100,000 recipients, and the dispatch rate `switchboard worker`
processes reach against the Twilio stand-in with the throttle out of the way.

Enqueueing goes through the HTTP API of a server on the benchmark's database: a CSV upload of
new people (contacts created, numbers normalised, recipients inserted, merge fields checked),
then a `contact_ids` campaign of the same, now existing contacts. Dispatching runs 1, then 2
`switchboard worker` child processes on a campaign at 10,000 messages per second (unthrottled
in effect), the stand-in answering like Twilio; the rate is messages over the time from the
first request the stand-in saw to the last. The run fails if anyone is sent to twice or a
recipient is left unaccounted for.

    python -m bench.campaign                 # 100,000 enqueued, 5,000 dispatched, both databases
    python -m bench.campaign --smoke         # seconds, for CI
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.common import bench_parser, machine_line, print_table
from bench.switchboard import bench_database, serve_env
from server.auth import start_session
from server.services.users import create_user
from server.settings import Settings
from store.models import Inbox, MessagingService, PhoneNumber
from tests.support.live_server import REPO, LiveServer, start_live_server
from tests.worker.support import TimedStandIn

UNTHROTTLED = 10_000
COLUMNS = ("step", "database", "count", "seconds", "per second")


@dataclass
class Row:
    step: str
    count: int
    seconds: float

    def cells(self, database: str) -> list[str]:
        rate = self.count / self.seconds if self.seconds else float("inf")
        return [self.step, database, str(self.count), f"{self.seconds:.2f}", f"{rate:,.0f}"]


async def seed(server: LiveServer) -> tuple[int, str]:
    """An admin (with a bearer token) and a blast service whose number feeds an inbox."""
    async with server.state.transaction() as session:
        admin = await create_user(
            session, email="bench@example.edu", password="bench-password", role="admin"
        )
        service = MessagingService(sid="MG" + "b" * 32, name="Bench blasts", purpose="blast")
        inbox = Inbox(name="Bench replies")
        session.add_all([service, inbox])
        await session.flush()
        session.add(
            PhoneNumber(
                sid="PN" + "b" * 32,
                number="+16175550199",
                messaging_service_id=service.id,
                inbox_id=inbox.id,
            )
        )
        token = await start_session(session, admin)
    return service.id, token


async def create(http: httpx.AsyncClient, service_id: int, **body: Any) -> dict[str, Any]:
    payload = {"name": "Bench", "messaging_service_id": service_id, "body": "Hi {first_name}!"}
    response = await http.post("/api/v1/campaigns", json={**payload, **body})
    response.raise_for_status()
    return response.json()


async def contact_ids_of(http: httpx.AsyncClient, campaign_id: int) -> list[int]:
    ids: list[int] = []
    cursor: str | None = None
    while True:
        query = f"?cursor={cursor}" if cursor else ""
        page = (await http.get(f"/api/v1/campaigns/{campaign_id}/recipients{query}")).json()
        ids.extend(item["contact"]["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def enqueue(http: httpx.AsyncClient, service_id: int, count: int) -> tuple[list[Row], int]:
    """Enqueue `count` new people by CSV, then the same people by contact id."""
    csv = "phone,first_name,last_name\n" + "".join(
        f"+1617{2_000_000 + i:07d},First{i},Last{i}\n" for i in range(count)
    )
    draft = await create(http, service_id)
    started = time.perf_counter()
    response = await http.post(
        f"/api/v1/campaigns/{draft['id']}/recipients",
        content=csv.encode(),
        headers={"Content-Type": "text/csv"},
    )
    csv_seconds = time.perf_counter() - started
    response.raise_for_status()
    assert response.json()["total"] == count, response.json()

    contact_ids = await contact_ids_of(http, draft["id"])
    started = time.perf_counter()
    by_id = await create(http, service_id, contact_ids=contact_ids)
    ids_seconds = time.perf_counter() - started
    assert by_id["counts"]["total"] == count
    rows = [
        Row("enqueue: CSV upload of new people", count, csv_seconds),
        Row("enqueue: contact_ids of existing people", count, ids_seconds),
    ]
    return rows, by_id["id"]


def spawn_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = serve_env(
        settings.database_url,
        settings.public_url,
        settings.secret_key,
        settings.data_dir,
        TWILIO_ACCOUNT_SID=settings.twilio_account_sid or "",
        TWILIO_AUTH_TOKEN=settings.twilio_auth_token or "",
        TWILIO_API_BASE=settings.twilio_api_base,
        SWITCHBOARD_WORKER_POLL_SECONDS="0.05",
    )
    with open(log, "wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "server.cli", "worker"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


async def dispatch(
    http: httpx.AsyncClient,
    server: LiveServer,
    twilio: TimedStandIn,
    service_id: int,
    contact_ids: list[int],
    workers: int,
    workdir: Path,
) -> Row:
    campaign = await create(http, service_id, contact_ids=contact_ids, rate_per_second=UNTHROTTLED)
    processes = [
        spawn_worker(server.settings, workdir / f"worker-{workers}-{n}.log") for n in range(workers)
    ]
    try:
        seen = len(twilio.arrivals)
        (await http.post(f"/api/v1/campaigns/{campaign['id']}/send")).raise_for_status()
        while True:
            found = (await http.get(f"/api/v1/campaigns/{campaign['id']}")).json()
            if found["status"] == "done":
                break
            await asyncio.sleep(0.5)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
    arrivals = twilio.arrivals[seen:]
    counts = found["counts"]
    assert len({to for _, to in arrivals}) == len(arrivals), "someone was sent to twice"
    assert counts["sent"] + counts["failed"] + counts["unknown"] == len(contact_ids), counts
    step = f"dispatch: {workers} worker process{'es' if workers > 1 else ''}"
    if counts["failed"] or counts["unknown"]:
        step += f" ({counts['failed']} failed, {counts['unknown']} unknown)"
    times = [moment for moment, _ in arrivals]
    return Row(step, len(arrivals), max(times) - min(times))


async def run(kind: str, recipients: int, dispatched: int, workdir: Path) -> list[Row]:
    async with bench_database(kind, workdir) as url, TimedStandIn() as twilio:
        settings = Settings(
            database_url=url,
            secret_key=secrets.token_urlsafe(32),
            data_dir=workdir,
            run_worker_in_process=False,
        )
        server = await start_live_server(twilio.configure(settings))
        try:
            service_id, token = await seed(server)
            async with httpx.AsyncClient(
                base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=600
            ) as http:
                rows, campaign_id = await enqueue(http, service_id, recipients)
                contact_ids = (await contact_ids_of(http, campaign_id))[:dispatched]
                for workers in (1, 2):
                    rows.append(
                        await dispatch(
                            http, server, twilio, service_id, contact_ids, workers, workdir
                        )
                    )
        finally:
            await server.stop()
    return rows


async def main() -> int:
    parser = bench_parser(__doc__, databases="sqlite,postgres")
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--dispatch", type=int, default=5_000)
    args = parser.parse_args()
    if args.smoke:
        args.recipients, args.dispatch = 300, 60
    print(machine_line())
    table: list[list[str]] = []
    for kind in args.databases.split(","):
        with tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp:
            rows = await run(kind, args.recipients, args.dispatch, Path(tmp))
        table.extend(row.cells(kind) for row in rows)
    print_table("Campaigns: enqueue and dispatch", COLUMNS, table)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
