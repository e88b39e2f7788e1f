"""Ingest: signed inbound webhooks per second and their latency, on SQLite and on PostgreSQL.

One `switchboard serve` process (the command operators run) on a fresh, migrated database,
sent signed inbound webhooks spread over 100 contacts of one inbox, two ways:

- back to back: `--concurrency` senders, each waiting for its 200 before sending the next
  (closed loop): the most the process takes, at whatever latency that costs;
- paced: webhooks sent at a fixed rate whatever the answers, as Twilio delivers them (open
  loop), once per `--rates`: is that rate kept up with, and at what latency. Latency is
  counted from when a webhook was due to be sent, so a sender held up counts against it.

Latency is per webhook, up to its 200. Afterwards every message is counted in the database:
the run fails unless each webhook was stored exactly once.

    python -m bench.ingest                 # full run
    python -m bench.ingest --smoke         # seconds, for CI
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
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
from bench.switchboard import SignedWebhook, WebhookSender, one_server
from server.settings import Settings
from server.state import AppState
from store.models import Message

COLUMNS = (
    "database",
    "sent",
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


async def back_to_back(
    sender: WebhookSender, webhooks: list[SignedWebhook], concurrency: int
) -> list[float]:
    latencies: list[float] = []
    queue = iter(webhooks)

    async def worker() -> None:
        for webhook in queue:
            started = time.monotonic()
            await sender.post(webhook)
            latencies.append(time.monotonic() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def paced(sender: WebhookSender, webhooks: list[SignedWebhook], rate: float) -> list[float]:
    latencies: list[float] = []
    start = time.monotonic()

    async def one(webhook: SignedWebhook, due: float) -> None:
        await sender.post(webhook)
        latencies.append(time.monotonic() - due)

    tasks = []
    for number, webhook in enumerate(webhooks):
        due = start + number / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(webhook, due)))
    # Only those still running: gathering all (most long done) held the loop for tens of
    # milliseconds while the last webhooks were in flight, and counted against them.
    await asyncio.gather(*(task for task in tasks if not task.done()))
    for task in tasks:
        task.result()  # a webhook that failed fails the run
    return latencies


async def run_ingest(
    kind: str, webhooks: int, concurrency: int, rates: list[float], warmup: int
) -> list[list[str]]:
    async with one_server(kind) as (url, team, deployment), http_session(256) as http:
        sender = WebhookSender(deployment, team, http)
        for index in range(warmup):  # first contacts and conversations, warm caches
            await sender.send(-1 - index)
        rows = []
        runs: list[tuple[str, Callable[[list[SignedWebhook]], Awaitable[list[float]]]]] = [
            (f"{concurrency} back to back", lambda batch: back_to_back(sender, batch, concurrency))
        ]
        runs += [(f"{rate:,.0f}/s paced", partial(paced, sender, rate=rate)) for rate in rates]
        first = 0
        for label, run in runs:
            batch = [sender.sign(first + i) for i in range(webhooks)]
            first += webhooks
            before = await stored_messages(url)
            # The sender's own full collections (a heap holding the server's modules) would
            # hold up sends and count against the server's latency.
            gc.freeze()
            sampler = ProcessSampler(deployment.pids)
            sampler.start()
            started = time.monotonic()
            latencies = await run(batch)
            seconds = time.monotonic() - started
            cpu, rss = await sampler.stop()
            stored = await stored_messages(url) - before
            if stored != webhooks:
                print(f"error: {webhooks} webhooks answered 200, {stored} stored", file=sys.stderr)
            latency = Latency.of(latencies)
            rows.append(
                [
                    kind,
                    label,
                    str(webhooks),
                    str(stored),
                    f"{webhooks / seconds:,.0f}",
                    f"{latency.p50:.1f}",
                    f"{latency.p99:.1f}",
                    f"{latency.max:.1f}",
                    f"{cpu:.0f}",
                    f"{rss:.0f}",
                ]
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, databases="sqlite,postgres")
    parser.add_argument("--webhooks", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rates", default="500,1000", help="paced rates, webhooks/s")
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args(argv)
    if args.smoke:
        args.webhooks, args.concurrency, args.rates, args.warmup = 100, 4, "200", 5
    rates = [float(rate) for rate in args.rates.split(",") if rate]
    print(f"machine: {machine_line()}")
    rows = [
        row
        for kind in args.databases.split(",")
        for row in asyncio.run(
            run_ingest(kind, args.webhooks, args.concurrency, rates, args.warmup)
        )
    ]
    print_table("ingest: signed inbound webhooks on one serve process", COLUMNS, rows)
    return 0 if all(row[2] == row[3] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
