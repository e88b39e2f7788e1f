"""Replay: a client 10,000 events behind resumes with `since`; time to caught-up, and proof.

Inbound webhooks fill the inbox channel with at least `--behind` events while no client
listens. A staff client then subscribes with `since` = the seq it last saw and is timed until
it holds the channel's head (as `subscribed` announced it). Meanwhile `--live` more webhooks
arrive, so the seam between replay and live delivery is crossed under traffic. The run then
proves, from the frames received: seqs are exactly since+1 … final head, in order, without a
gap or a duplicate, and every posted message arrived exactly once.

    python -m bench.replay                 # 10,000 events behind
    python -m bench.replay --smoke         # 200, for CI
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect

from bench.common import bench_parser, http_session, machine_line, print_table
from bench.switchboard import (
    Team,
    WebhookSender,
    body_event_id,
    decode,
    one_server,
    subscribe_frame,
)
from server.settings import Settings
from server.state import AppState
from store.models import ChannelSequence

COLUMNS = (
    "database",
    "behind",
    "live during",
    "caught up s",
    "replay events/s",
    "final seq",
    "frames",
    "order",
    "complete",
)


async def head_seq(database_url: str, channel: str) -> int:
    state = AppState(Settings(database_url=database_url, secret_key="head"))
    try:
        async with state.reading() as session:
            seq = await session.scalar(
                select(ChannelSequence.seq).where(ChannelSequence.channel == channel)
            )
            return int(seq or 0)
    finally:
        await state.close()


async def post_all(sender: WebhookSender, indexes: range, concurrency: int) -> None:
    queue = iter(indexes)

    async def worker() -> None:
        for index in queue:
            await sender.send(index)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def fill(sender: WebhookSender, url: str, team: Team, behind: int) -> int:
    """Post webhooks until the channel holds `behind` events; returns how many were posted."""
    await sender.send(0)
    per_message = max(1, await head_seq(url, team.channel))
    posted = max(1, -(-behind // per_message))
    await post_all(sender, range(1, posted), concurrency=16)
    return posted


@dataclass
class Seen:
    """What the resuming client received."""

    target: int = 0  # the head `subscribed` announced: caught up once this seq arrives
    final: int = 0  # the head once the live webhooks are all in
    seqs: list[int] = field(default_factory=list)
    ids: list[int | None] = field(default_factory=list)
    caught_up: float | None = None


async def follow(
    ws: ClientConnection,
    started: float,
    live_posts: asyncio.Task[None],
    url: str,
    channel: str,
) -> Seen:
    """Read frames until the channel's final head has arrived (after the live webhooks)."""
    seen = Seen()
    finished = False
    deadline = time.monotonic() + 600
    while not (finished and seen.seqs and seen.seqs[-1] >= seen.final):
        if time.monotonic() > deadline:
            raise TimeoutError(f"stuck at seq {seen.seqs[-1:]} of {seen.final}")
        if not finished and live_posts.done():
            await live_posts
            seen.final, finished = await head_seq(url, channel), True
        try:
            async with asyncio.timeout(0.2):
                frame = decode(await ws.recv())
        except TimeoutError:
            continue
        op = frame.get("op")
        if op == "subscribed":
            seen.target = int(frame["seq"])
        elif op == "event":
            seen.seqs.append(int(frame["seq"]))
            if frame.get("type") == "message.created":
                seen.ids.append(body_event_id(frame["data"]["body"]))
            if seen.caught_up is None and seen.seqs[-1] >= seen.target > 0:
                seen.caught_up = time.monotonic() - started
        elif op in ("resync", "error"):
            raise RuntimeError(f"replay refused: {frame}")
    return seen


async def run_replay(kind: str, behind: int, live: int) -> list[str]:
    async with one_server(kind) as (url, team, deployment), http_session(32) as http:
        sender = WebhookSender(deployment, team, http)
        since = await head_seq(url, team.channel)
        posted = await fill(sender, url, team, behind)
        behind_events = await head_seq(url, team.channel) - since
        async with connect(
            f"ws://127.0.0.1:{deployment.servers[0].port}/ws",
            subprotocols=["msgpack"],
            additional_headers={"Authorization": f"Bearer {team.token}"},
            max_size=None,
            compression=None,
        ) as ws:
            started = time.monotonic()
            await ws.send(subscribe_frame(team.channel, since))
            live_posts = asyncio.create_task(
                post_all(sender, range(posted, posted + live), concurrency=4)
            )
            seen = await follow(ws, started, live_posts, url, team.channel)
    replayed = seen.target - since  # the head at subscribe time: a few live ones may be in it
    in_order = seen.seqs == list(range(since + 1, seen.final + 1))
    complete = sorted(i for i in seen.ids if i is not None) == list(range(posted + live))
    caught_up = seen.caught_up
    return [
        kind,
        str(behind_events),
        str(live),
        f"{caught_up:.3f}" if caught_up is not None else "never",
        f"{replayed / caught_up:,.0f}" if caught_up else "n/a",
        str(seen.final),
        str(len(seen.seqs)),
        "ok" if in_order else "BROKEN",
        "ok" if complete else "BROKEN",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, databases="sqlite,postgres")
    parser.add_argument("--behind", type=int, default=10_000, help="events to replay")
    parser.add_argument("--live", type=int, default=200, help="webhooks during the replay")
    args = parser.parse_args(argv)
    if args.smoke:
        args.behind, args.live, args.databases = 200, 20, "sqlite"
    print(f"machine: {machine_line()}")
    rows = [
        asyncio.run(run_replay(kind, args.behind, args.live)) for kind in args.databases.split(",")
    ]
    print_table("replay: a client far behind resumes with since", COLUMNS, rows)
    return 0 if all(row[-1] == row[-2] == "ok" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
