"""Fan-out benchmark: N websocket clients subscribed to one inbox channel, M events written at
a fixed rate through the real write path (`state.transaction()` + the outbox, in the server
process, as an inbound webhook would); event→delivery latency and delivered frames/s, for one
server process (in-process broker) and for two processes sharing Redis.

    python -m bench.fanout                 # 1,000 clients, 200 events at 20/s
    python -m bench.fanout --smoke         # a few seconds

The clients run in separate processes (spawned), spread over the server processes; latency is
wall clock from just before the event's commit to its frame being decoded by a client.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Only light imports up here: the client processes are spawned and re-import this module.
if TYPE_CHECKING:
    from server.settings import Settings
    from server.state import AppState

SESSIONS = 4  # the sockets share a few sign-ins, as a team's tabs would


@dataclass
class Result:
    config: str
    clients: int
    events: int
    delivered: int
    latencies: list[float]
    seconds: float

    def row(self) -> list[str]:
        ms = sorted(x * 1000 for x in self.latencies) or [0.0]
        p50 = statistics.median(ms)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        rate = self.delivered / self.seconds if self.seconds > 0 else 0.0
        return [
            self.config,
            str(self.clients),
            str(self.events),
            f"{self.delivered}/{self.clients * self.events}",
            f"{p50:.1f}",
            f"{p99:.1f}",
            f"{ms[-1]:.1f}",
            f"{rate:,.0f}",
        ]


HEADER = ["config", "clients", "events", "delivered", "p50 ms", "p99 ms", "max ms", "frames/s"]


def print_table(results: list[Result]) -> None:
    rows = [HEADER, *(r.row() for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    for n, row in enumerate(rows):
        print(
            " | ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("-+-".join("-" * w for w in widths))


# Client processes ---------------------------------------------------------------------------


def run_clients(
    url: str, tokens: list[str], count: int, channel: str, events: int, ready: Any, results: Any
) -> None:
    results.put(asyncio.run(_clients(url, tokens, count, channel, events, ready)))


async def _clients(
    url: str, tokens: list[str], count: int, channel: str, events: int, ready: Any
) -> tuple[list[float], int, float]:
    from websockets.asyncio.client import connect

    opening = asyncio.Semaphore(50)

    async def open_one(n: int) -> Any:
        async with opening:
            ws = await connect(
                url,
                subprotocols=["msgpack"],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Bearer {tokens[n % len(tokens)]}"},
                open_timeout=120,
                max_size=None,
            )
            await ws.send(msgpack.packb({"op": "subscribe", "channel": channel}))
            frame = msgpack.unpackb(await ws.recv())
            assert frame["op"] == "subscribed", frame
            return ws

    sockets = await asyncio.gather(*(open_one(n) for n in range(count)))
    ready.put(count)
    latencies: list[float] = []
    last = 0.0

    async def read(ws: Any) -> int:
        nonlocal last
        got = 0
        while got < events:
            data = await ws.recv()
            now = time.time()
            frame = msgpack.unpackb(data)
            if frame.get("op") == "event":
                got += 1
                latencies.append(now - frame["data"]["t"])
                last = max(last, now)
        return got

    try:
        counts = await asyncio.wait_for(
            asyncio.gather(*(read(ws) for ws in sockets)), timeout=120 + events
        )
        delivered = sum(counts)
    except TimeoutError:
        delivered = len(latencies)
    for ws in sockets:
        await ws.close()
    return latencies, delivered, last


# The run ----------------------------------------------------------------------------------------


async def seed(state: AppState) -> tuple[str, list[str]]:
    from server.auth import start_session
    from server.services.users import create_user
    from store.models import Inbox, InboxMember

    async with state.transaction() as session:
        inbox = Inbox(name="Bench")
        session.add(inbox)
        await session.flush()
        user = await create_user(
            session, email=f"bench-{uuid.uuid4().hex[:6]}@example.edu", password="bench-password"
        )
        session.add(InboxMember(inbox_id=inbox.id, user_id=user.id))
        tokens = [await start_session(session, user) for _ in range(SESSIONS)]
        return f"inbox:{inbox.id}", tokens


async def produce(state: AppState, channel: str, events: int, rate: float) -> float:
    from store import outbox

    loop = asyncio.get_running_loop()
    start = loop.time()
    first = time.time()
    for n in range(events):
        delay = start + n / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        async with state.transaction() as session:
            outbox.emit(
                session, channel, "message.created", {"n": n, "t": time.time(), "body": "Hi!"}
            )
    return first


async def run_config(
    name: str,
    settings: Settings,
    processes: int,
    clients: int,
    events: int,
    rate: float,
    workers: int,
) -> Result:
    from tests.support.live_server import start_live_server, start_server_process

    first_server = await start_live_server(settings)
    channel, tokens = await seed(first_server.state)
    urls = [first_server.ws_url]
    children = []
    if processes > 1:
        shared = replace(settings, public_url=first_server.settings.public_url)
        for _ in range(processes - 1):
            children.append(start_server_process(shared))
            urls.append(children[-1].ws_url)
    context = multiprocessing.get_context("spawn")
    ready, results = context.Queue(), context.Queue()
    per_worker = [clients // workers + (1 if n < clients % workers else 0) for n in range(workers)]
    procs = [
        context.Process(
            target=run_clients,
            args=(urls[n % len(urls)], tokens, count, channel, events, ready, results),
            daemon=True,
        )
        for n, count in enumerate(per_worker)
        if count
    ]
    try:
        for proc in procs:
            proc.start()
        connected = 0
        while connected < clients:
            connected += await asyncio.to_thread(ready.get, True, 300)
        first = await produce(first_server.state, channel, events, rate)
        latencies: list[float] = []
        delivered, last = 0, first
        for _ in procs:
            got, count, when = await asyncio.to_thread(results.get, True, 300 + events)
            latencies.extend(got)
            delivered += count
            last = max(last, when)
        for proc in procs:
            proc.join(10)
        return Result(name, clients, events, delivered, latencies, last - first)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
        for child in children:
            child.terminate()
        await first_server.stop()


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="events per second")
    parser.add_argument("--workers", type=int, default=4, help="client processes")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--only", choices=["1", "2"], help="run one configuration")
    parser.add_argument("--smoke", action="store_true", help="tiny run that finishes in seconds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.clients, args.events, args.rate, args.workers = 40, 20, 40.0, 2

    from server.settings import Settings
    from store.migrate import upgrade_async

    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp:
        results = []
        configs = [("1 process, in-process broker", 1), ("2 processes, Redis", 2)]
        for name, processes in configs:
            if args.only and str(processes) != args.only:
                continue
            url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench-{processes}.db"
            await upgrade_async(url)
            settings = Settings(
                database_url=url,
                secret_key="bench-secret",
                data_dir=Path(tmp) / "data",
                run_worker_in_process=False,
                redis_url=args.redis_url if processes > 1 else None,
                redis_prefix=f"sbbench:{uuid.uuid4().hex[:8]}:",
            )
            what = f"{args.clients} clients, {args.events} events at {args.rate:g}/s"
            print(f"running: {name} ({what})", file=sys.stderr)
            results.append(
                await run_config(
                    name, settings, processes, args.clients, args.events, args.rate, args.workers
                )
            )
        print_table(results)
        complete = all(r.delivered == r.clients * r.events for r in results)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
