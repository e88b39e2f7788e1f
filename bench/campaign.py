"""Campaign benchmark: the time to enqueue 100,000 recipients, and the dispatch rate that worker
processes reach against the Twilio stand-in with the throttle set out of the way.

    python -m bench.campaign                       # SQLite: 100,000 enqueued, 5,000 dispatched
    python -m bench.campaign --database postgres   # a scratch database on the local PostgreSQL
    python -m bench.campaign --smoke               # a few seconds

Enqueueing goes through the real HTTP API of a server in this process: a CSV upload of new
people (contacts created, numbers normalised, recipients inserted) and a `contact_ids` campaign
of the same, existing contacts. Dispatching runs `switchboard worker` child processes (1, then
2) on a campaign at 10,000 messages per second, the stand-in answering in this process; the
rate is messages over the time from the first request the stand-in saw to the last.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from server.auth import start_session  # noqa: E402
from server.services.users import create_user  # noqa: E402
from server.settings import Settings  # noqa: E402
from store.migrate import upgrade_async  # noqa: E402
from store.models import Inbox, MessagingService, PhoneNumber  # noqa: E402
from tests.support.live_server import LiveServer, settings_env, start_live_server  # noqa: E402
from tests.worker.support import TimedStandIn  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
UNTHROTTLED = 10_000


@dataclass
class Row:
    what: str
    count: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else float("inf")


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

    contact_ids = await _contact_ids(http, draft["id"])
    started = time.perf_counter()
    by_id = await create(http, service_id, contact_ids=contact_ids)
    ids_seconds = time.perf_counter() - started
    assert by_id["counts"]["total"] == count
    return [
        Row("enqueue: CSV upload, new contacts", count, csv_seconds),
        Row("enqueue: contact_ids, existing contacts", count, ids_seconds),
    ], by_id["id"]


async def _contact_ids(http: httpx.AsyncClient, campaign_id: int) -> list[int]:
    ids: list[int] = []
    cursor: str | None = None
    while True:
        query = f"?cursor={cursor}" if cursor else ""
        page = (await http.get(f"/api/v1/campaigns/{campaign_id}/recipients{query}")).json()
        ids.extend(item["contact"]["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


def spawn_worker(settings: Settings, log: Path, concurrency: int) -> subprocess.Popen[bytes]:
    env = {
        **settings_env(settings),
        "SWITCHBOARD_WORKER_POLL_SECONDS": "0.05",
        "SWITCHBOARD_SEND_CONCURRENCY": str(concurrency),
    }
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
    concurrency: int,
    workdir: Path,
) -> Row:
    campaign = await create(http, service_id, contact_ids=contact_ids, rate_per_second=UNTHROTTLED)
    processes = [
        spawn_worker(server.settings, workdir / f"worker-{workers}-{n}.log", concurrency)
        for n in range(workers)
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
    label = f"dispatch: {workers} worker{'s' if workers > 1 else ''} x {concurrency} in flight"
    if counts["failed"] or counts["unknown"]:
        label += f" ({counts['failed']} failed, {counts['unknown']} unknown)"
    times = [moment for moment, _ in arrivals]
    return Row(label, len(arrivals), max(times) - min(times))


async def run(args: argparse.Namespace, url: str, workdir: Path) -> list[Row]:
    await upgrade_async(url)
    async with TimedStandIn() as twilio:
        base = Settings(
            database_url=url,
            secret_key="bench-" + uuid.uuid4().hex,
            data_dir=workdir / "data",
            run_worker_in_process=False,
        )
        server = await start_live_server(twilio.configure(base))
        try:
            service_id, token = await seed(server)
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(
                base_url=server.base_url, headers=headers, timeout=600
            ) as http:
                rows, campaign_id = await enqueue(http, service_id, args.recipients)
                contact_ids = (await _contact_ids(http, campaign_id))[: args.dispatch]
                for workers in args.workers:
                    rows.append(
                        await dispatch(
                            http,
                            server,
                            twilio,
                            service_id,
                            contact_ids,
                            workers,
                            args.concurrency,
                            workdir,
                        )
                    )
        finally:
            await server.stop()
    return rows


def table(rows: list[Row], database: str) -> str:
    lines = [
        f"{'campaign benchmark (' + database + ')':<46} {'count':>8} {'seconds':>9} {'per s':>9}",
        "-" * 75,
    ]
    for row in rows:
        lines.append(f"{row.what:<46} {row.count:>8} {row.seconds:>9.2f} {row.per_second:>9.0f}")
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-admin", default=PG_ADMIN, help="where to create the scratch db")
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--dispatch", type=int, default=5_000)
    parser.add_argument("--workers", default="1,2", help="worker process counts to try")
    parser.add_argument("--concurrency", type=int, default=8, help="sends in flight per worker")
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run")
    args = parser.parse_args(argv)
    args.workers = [int(n) for n in args.workers.split(",")]
    if args.smoke:
        args.recipients, args.dispatch, args.workers = 500, 100, [1]
    with tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp:
        workdir = Path(tmp)
        if args.database == "sqlite":
            rows = await run(args, f"sqlite+aiosqlite:///{workdir / 'bench.db'}", workdir)
        else:
            name = f"sbbench_{uuid.uuid4().hex[:10]}"
            admin = await asyncpg.connect(args.pg_admin)
            await admin.execute(f'CREATE DATABASE "{name}"')
            try:
                base = args.pg_admin.rsplit("/", 1)[0].replace(
                    "postgresql://", "postgresql+asyncpg://", 1
                )
                rows = await run(args, f"{base}/{name}", workdir)
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.close()
    print(table(rows, args.database))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
