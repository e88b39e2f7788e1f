"""Ingest: signed inbound webhooks per second and their latency, on SQLite and on PostgreSQL.

One `switchboard serve` process (the command operators run) on a fresh, migrated database;
`--concurrency` senders post signed inbound webhooks back to back (closed loop: each waits for
its 200 before the next), spread over 100 contacts of one inbox. Latency is per webhook, from
the request leaving to the 200 arriving. Afterwards every message is counted in the database:
the run fails unless each webhook was stored exactly once.

    python -m bench.ingest                 # full run
    python -m bench.ingest --smoke         # seconds, for CI
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from bench.common import (
    Latency,
    ProcessSampler,
    bench_parser,
    http_session,
    machine_line,
    print_table,
)
from bench.switchboard import WebhookSender, one_server
from server.settings import Settings
from server.state import AppState
from store.models import Message

COLUMNS = (
    "database",
    "concurrency",
    "webhooks",
    "stored",
    "webhooks/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "cpu %",
    "rss MiB",
)


async def stored_messages(database_url: str) -> int:
    state = AppState(Settings(database_url=database_url, secret_key="count"))
    try:
        async with state.reading() as session:
            return int(await session.scalar(select(func.count()).select_from(Message)) or 0)
    finally:
        await state.close()


async def run_ingest(kind: str, webhooks: int, concurrency: int, warmup: int) -> list[str]:
    async with one_server(kind) as (url, team, deployment), http_session(concurrency) as http:
        sender = WebhookSender(deployment, team, http)
        for index in range(warmup):  # first contacts and conversations, warm caches
            await sender.send(-1 - index)
        prepared = [sender.sign(i) for i in range(webhooks)]
        latencies: list[float] = []
        queue = iter(prepared)

        async def worker() -> None:
            for webhook in queue:
                started = time.monotonic()
                await sender.post(webhook)
                latencies.append(time.monotonic() - started)

        sampler = ProcessSampler(deployment.pids)
        sampler.start()
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.monotonic() - started
        cpu, rss = await sampler.stop()
        stored = await stored_messages(url) - warmup
    latency = Latency.of(latencies)
    if stored != webhooks:
        print(f"error: {webhooks} webhooks answered 200 but {stored} stored", file=sys.stderr)
    return [
        kind,
        str(concurrency),
        str(webhooks),
        str(stored),
        f"{webhooks / seconds:,.0f}",
        f"{latency.p50:.1f}",
        f"{latency.p99:.1f}",
        f"{latency.max:.1f}",
        f"{cpu:.0f}",
        f"{rss:.0f}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, databases="sqlite,postgres")
    parser.add_argument("--webhooks", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args(argv)
    if args.smoke:
        args.webhooks, args.concurrency, args.warmup = 100, 4, 5
    print(f"machine: {machine_line()}")
    rows = [
        asyncio.run(run_ingest(kind, args.webhooks, args.concurrency, args.warmup))
        for kind in args.databases.split(",")
    ]
    print_table("ingest: signed inbound webhooks on one serve process", COLUMNS, rows)
    return 0 if all(row[2] == row[3] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
