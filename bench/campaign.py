"""Campaigns: the time to enqueue 100,000 recipients, and the dispatch rate `switchboard worker`
processes reach against the Twilio stand-in with the throttle out of the way.

Enqueueing goes through the HTTP API of a server on the benchmark's database: a CSV upload of
new people (contacts created, numbers normalised, recipients inserted, merge fields checked),
then a `contact_ids` campaign of the same, now existing contacts, then sending the first (the
merge fields of every recipient checked again). Meanwhile a probe makes a small write every
10 ms in the server's process; its longest wait is what an inbound webhook would have waited
(on SQLite, every write waits for the one write lock). Dispatching runs 1, then 2
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
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import text

from bench.common import bench_parser, machine_line, print_table
from bench.switchboard import bench_database, serve_env
from server.auth import start_session
from server.services.users import create_user
from server.settings import Settings
from server.state import AppState
from store.models import Inbox, MessagingService, PhoneNumber
from tests.support.live_server import REPO, LiveServer, start_live_server
from tests.worker.support import TimedStandIn

UNTHROTTLED = 10_000
COLUMNS = ("step", "database", "count", "seconds", "per second", "longest write wait ms")
PROBE_EVERY = 0.01
DRAFT = {"name": "Bench", "body": "Hi {first_name}!"}


@dataclass
class Row:
    step: str
    count: int
    seconds: float
    longest_wait: float | None = None

    def cells(self, database: str) -> list[str]:
        rate = self.count / self.seconds if self.seconds else float("inf")
        wait = "" if self.longest_wait is None else f"{self.longest_wait * 1000:,.0f}"
        return [self.step, database, str(self.count), f"{self.seconds:.2f}", f"{rate:,.0f}", wait]


@asynccontextmanager
async def write_probe(state: AppState) -> AsyncIterator[list[float]]:
    """A small write every PROBE_EVERY seconds while the block runs; yields the waits."""
    waits: list[float] = []
    running = True

    async def probe() -> None:
        while running:
            started = time.perf_counter()
            async with state.transaction() as session:
                await session.execute(text("UPDATE campaigns SET name = name WHERE id = 0"))
            waits.append(time.perf_counter() - started)
            await asyncio.sleep(PROBE_EVERY)

    task = asyncio.create_task(probe())
    try:
        yield waits
    finally:
        running = False
        await task


async def timed(state: AppState, request: Awaitable[httpx.Response]) -> tuple[Any, float, float]:
    """The JSON of `request`'s answer, its seconds, and the longest wait of a write meanwhile."""
    async with write_probe(state) as waits:
        started = time.perf_counter()
        response = await request
        seconds = time.perf_counter() - started
    response.raise_for_status()
    return response.json(), seconds, max(waits, default=0.0)


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
    payload = {**DRAFT, "messaging_service_id": service_id, **body}
    response = await http.post("/api/v1/campaigns", json=payload)
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


async def enqueue(
    server: LiveServer, http: httpx.AsyncClient, service_id: int, count: int
) -> tuple[list[Row], int]:
    """Enqueue `count` new people by CSV, then the same people by contact id; send the first."""
    csv = "phone,first_name,last_name\n" + "".join(
        f"+1617{2_000_000 + i:07d},First{i},Last{i}\n" for i in range(count)
    )
    draft = await create(http, service_id)
    added, csv_seconds, csv_wait = await timed(
        server.state,
        http.post(
            f"/api/v1/campaigns/{draft['id']}/recipients",
            content=csv.encode(),
            headers={"Content-Type": "text/csv"},
        ),
    )
    assert added["total"] == count, added

    contact_ids = await contact_ids_of(http, draft["id"])
    payload = {**DRAFT, "messaging_service_id": service_id, "contact_ids": contact_ids}
    by_id, ids_seconds, ids_wait = await timed(
        server.state, http.post("/api/v1/campaigns", json=payload)
    )
    assert by_id["counts"]["total"] == count
    sent, send_seconds, send_wait = await timed(
        server.state, http.post(f"/api/v1/campaigns/{draft['id']}/send")
    )
    assert sent["status"] == "sending", sent
    (await http.post(f"/api/v1/campaigns/{draft['id']}/cancel")).raise_for_status()
    rows = [
        Row("enqueue: CSV upload of new people", count, csv_seconds, csv_wait),
        Row("enqueue: contact_ids of existing people", count, ids_seconds, ids_wait),
        Row("send: merge fields checked, started", count, send_seconds, send_wait),
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
                rows, campaign_id = await enqueue(server, http, service_id, recipients)
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
