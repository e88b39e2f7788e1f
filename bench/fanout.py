"""Fan-out, Switchboard beside the peer in the same run: N staff sockets subscribed to one
inbox, M inbound webhooks at a fixed rate, on 1 process and on 2 processes sharing Redis.

Switchboard runs as `switchboard serve` child processes on one database (PostgreSQL by
default: several processes writing one SQLite file take turns at its lock), each webhook signed
as Twilio signs it and committed with its events before they are published. The peer is
python-socketio's AsyncServer with AsyncRedisManager (`bench/peer_socketio.py`), whose webhook
stores nothing. Both are measured by `bench.common.measure_fanout` with the same clients.
Printed: each system's table (delivered frames/s, webhook→frame latency p50/p99/max, CPU, RSS)
and, per rate, the ratio of frames/s and both p99s.

    python -m bench.fanout                       # 1,000 clients, 200 events at 20, 40, 80/s
    python -m bench.fanout --rates 40 --processes 1
    python -m bench.fanout --smoke               # seconds, for CI
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    FanoutResult,
    fanout_parser,
    machine_line,
    parse_fanout_args,
    print_comparison,
    print_fanout,
    runs,
)
from bench.peer_socketio import SYSTEM as PEER
from bench.peer_socketio import run_peer
from bench.switchboard import run_switchboard_fanout


async def main_async(args: argparse.Namespace) -> tuple[list[FanoutResult], list[FanoutResult]]:
    ours: list[FanoutResult] = []
    peer: list[FanoutResult] = []
    for rate, processes in runs(args):
        options = {
            "probes": args.probes,
            "client_processes": args.client_processes,
            "redis_url": args.redis,
        }
        ours.append(
            await run_switchboard_fanout(
                processes, args.clients, args.events, rate, database=args.database, **options
            )
        )
        if not args.without_peer:
            peer.append(await run_peer(processes, args.clients, args.events, rate, **options))
    return ours, peer


def main(argv: list[str] | None = None) -> int:
    parser = fanout_parser(__doc__)
    parser.add_argument("--database", default="postgres", help="postgres | sqlite")
    parser.add_argument("--without-peer", action="store_true", help="Switchboard alone")
    args = parse_fanout_args(parser, argv)
    print(f"machine: {machine_line()}")
    ours, peer = asyncio.run(main_async(args))
    print_fanout(f"fan-out on Switchboard ({args.database})", ours)
    if peer:
        print_fanout(f"fan-out on {PEER} (AsyncServer + AsyncRedisManager)", peer)
        for rate in sorted({r.rate for r in ours}):
            print_comparison(
                [r for r in ours if r.rate == rate], [r for r in peer if r.rate == rate]
            )
    return 0 if all(r.complete for r in ours + peer) else 1


if __name__ == "__main__":
    sys.exit(main())
