"""Fan-out benchmark: N websocket clients subscribed to one inbox, M inbound SMS webhooks
(signed as Twilio signs them) posted at a fixed rate; webhook→delivery latency and delivered
frames/s, for one `switchboard serve` process (in-process broker) and for two sharing Redis.

    python -m bench.fanout                 # 1,000 clients, 100 webhooks at 5/s
    python -m bench.fanout --smoke         # a few seconds

The servers are real `switchboard serve` child processes on one SQLite file (or
`--database-url`); webhooks go to the first, clients are spread over all of them by separate
client processes. Latency is wall clock from just before a webhook is posted to a client
decoding its `message.created` frame; each webhook also brings a `conversation.updated`, and
frames/s counts both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import secrets
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

SESSIONS = 4  # the sockets share a few sign-ins, as a team's tabs would
OUR_NUMBER = "+16175550100"
SENDERS = 20  # distinct phones texting in, so several conversations move
STAMP = "bench t="


@dataclass
class Result:
    config: str
    clients: int
    webhooks: int
    delivered: int  # message.created frames
    frames: int  # every event frame
    latencies: list[float]
    seconds: float
    answers: list[float]  # how long each webhook took to answer

    def row(self) -> list[str]:
        ms = sorted(x * 1000 for x in self.latencies) or [0.0]
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        return [
            self.config,
            str(self.clients),
            str(self.webhooks),
            f"{self.delivered}/{self.clients * self.webhooks}",
            f"{statistics.median(ms):.1f}",
            f"{p99:.1f}",
            f"{ms[-1]:.1f}",
            f"{rate:,.0f}",
            f"{statistics.median(self.answers or [0.0]) * 1000:.1f}",
        ]


HEADER = [
    "config",
    "clients",
    "webhooks",
    "delivered",
    "p50 ms",
    "p99 ms",
    "max ms",
    "frames/s",
    "webhook answer p50 ms",
]


def print_table(results: list[Result]) -> None:
    rows = [HEADER, *(r.row() for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    for n, row in enumerate(rows):
        cells = zip(row, widths, strict=True)
        print(" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells)))
        if n == 0:
            print("-+-".join("-" * w for w in widths))


# Client processes ---------------------------------------------------------------------------


def run_clients(
    url: str, tokens: list[str], count: int, channel: str, webhooks: int, ready: Any, out: Any
) -> None:
    out.put(asyncio.run(_clients(url, tokens, count, channel, webhooks, ready)))


async def _clients(
    url: str, tokens: list[str], count: int, channel: str, webhooks: int, ready: Any
) -> tuple[list[float], int, int, float]:
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
    frames = 0
    last = 0.0

    async def read(ws: Any) -> None:
        nonlocal frames, last
        created = 0
        while created < webhooks:
            data = await ws.recv()
            now = time.time()
            frame = msgpack.unpackb(data)
            if frame.get("op") != "event":
                continue
            frames += 1
            last = now
            if frame["type"] == "message.created":
                created += 1
                latencies.append(now - float(frame["data"]["body"].removeprefix(STAMP)))

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(read(ws) for ws in sockets)), 120 + webhooks)
    for ws in sockets:
        await ws.close()
    return latencies, len(latencies), frames, last


# Servers, seeding and webhooks -----------------------------------------------------------------


async def seed(settings: Settings) -> tuple[str, list[str]]:
    """An inbox with our number routed to it, and a member's sign-ins."""
    from server.auth import start_session
    from server.services.users import create_user
    from server.state import AppState
    from store.models import Inbox, InboxMember, MessagingService, PhoneNumber

    state = AppState(settings)
    try:
        async with state.transaction() as session:
            service = MessagingService(sid="MG" + secrets.token_hex(16), name="Bench 1:1")
            inbox = Inbox(name="Bench")
            session.add_all([service, inbox])
            await session.flush()
            session.add(
                PhoneNumber(
                    sid="PN" + secrets.token_hex(16),
                    number=OUR_NUMBER,
                    messaging_service_id=service.id,
                    inbox_id=inbox.id,
                )
            )
            user = await create_user(
                session, email=f"bench-{uuid.uuid4().hex[:6]}@example.edu", password="benchmark"
            )
            session.add(InboxMember(inbox_id=inbox.id, user_id=user.id))
            tokens = [await start_session(session, user) for _ in range(SESSIONS)]
            return f"inbox:{inbox.id}", tokens
    finally:
        await state.close()


async def post_webhooks(
    settings: Settings, base_url: str, count: int, rate: float
) -> tuple[float, list[float]]:
    """`count` signed inbound webhooks at `rate`/s; the time of the first, and how long each
    took to answer."""
    import httpx
    from twilio.request_validator import RequestValidator

    signer = RequestValidator(settings.webhook_auth_token)
    signed_url = settings.public_base + "/twilio/messages"
    loop = asyncio.get_running_loop()
    answers: list[float] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:

        async def post(n: int) -> None:
            form = {
                "MessageSid": "SM" + secrets.token_hex(16),
                "AccountSid": "AC" + "0" * 32,
                "From": f"+161755502{n % SENDERS:02d}",
                "To": OUR_NUMBER,
                "Body": f"{STAMP}{time.time():.6f}",
            }
            headers = {"X-Twilio-Signature": signer.compute_signature(signed_url, form)}
            sent = time.time()
            response = await http.post("/twilio/messages", data=form, headers=headers)
            response.raise_for_status()
            answers.append(time.time() - sent)

        start, first = loop.time(), time.time()
        posts = []
        for n in range(count):
            delay = start + n / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            posts.append(asyncio.create_task(post(n)))
        await asyncio.gather(*posts)
    return first, answers


async def run_config(
    name: str, settings: Settings, processes: int, args: argparse.Namespace
) -> Result:
    from tests.support.live_server import free_port, start_server_process

    channel, tokens = await seed(settings)
    port = free_port()
    settings = replace(settings, public_url=f"http://127.0.0.1:{port}")
    servers = [start_server_process(settings, port)]
    try:
        servers += [start_server_process(settings) for _ in range(processes - 1)]
        context = multiprocessing.get_context("spawn")
        ready, out = context.Queue(), context.Queue()
        shares = [
            args.clients // args.workers + (n < args.clients % args.workers)
            for n in range(args.workers)
        ]
        workers = [
            context.Process(
                target=run_clients,
                args=(
                    servers[n % processes].ws_url,
                    tokens,
                    count,
                    channel,
                    args.webhooks,
                    ready,
                    out,
                ),
                daemon=True,
            )
            for n, count in enumerate(shares)
            if count
        ]
        for worker in workers:
            worker.start()
        try:
            connected = 0
            while connected < args.clients:
                connected += await asyncio.to_thread(ready.get, True, 300)
            first, answers = await post_webhooks(
                settings, servers[0].base_url, args.webhooks, args.rate
            )
            latencies: list[float] = []
            delivered = frames = 0
            last = first
            for _ in workers:
                got, count, seen, when = await asyncio.to_thread(out.get, True, 300 + args.webhooks)
                latencies.extend(got)
                delivered += count
                frames += seen
                last = max(last, when)
        finally:
            for worker in workers:
                worker.join(10)
                if worker.is_alive():
                    worker.kill()
        return Result(
            name, args.clients, args.webhooks, delivered, frames, latencies, last - first, answers
        )
    finally:
        for server in servers:
            server.terminate()


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--webhooks", type=int, default=100)
    parser.add_argument("--rate", type=float, default=5.0, help="webhooks per second")
    parser.add_argument("--workers", type=int, default=4, help="client processes")
    parser.add_argument("--database-url", help="default: a fresh SQLite file per configuration")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--only", choices=["1", "2"], help="run one configuration")
    parser.add_argument("--smoke", action="store_true", help="a tiny run that takes seconds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.clients, args.webhooks, args.rate, args.workers = 40, 20, 40.0, 2

    from server.settings import Settings
    from store.migrate import upgrade_async

    results = []
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp:
        for name, processes in [("1 process, in-process broker", 1), ("2 processes, Redis", 2)]:
            if args.only and str(processes) != args.only:
                continue
            url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench-{processes}.db"
            await upgrade_async(url)
            settings = Settings(
                database_url=url,
                secret_key="bench-" + secrets.token_hex(8),
                data_dir=Path(tmp) / "data",
                run_worker_in_process=False,
                redis_url=args.redis_url if processes > 1 else None,
                redis_prefix=f"sbbench:{uuid.uuid4().hex[:8]}:",
            )
            what = f"{args.clients} clients, {args.webhooks} webhooks at {args.rate:g}/s"
            print(f"running: {name} ({what})", file=sys.stderr)
            results.append(await run_config(name, settings, processes, args))
    print_table(results)
    return 0 if all(r.delivered == r.clients * r.webhooks for r in results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
