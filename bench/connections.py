"""Connections: 10,000 idle authenticated websockets on one `serve` process.

Each socket authenticates with a bearer token at the handshake and subscribes to the inbox
channel (answered `subscribed`), then idles. Printed: the time to accept them all, the server's
resident memory before and after, and RSS per socket. The server's own count of open sockets
(`switchboard_ws_connections` at /metrics) must match. Clients live in worker processes; the
file-descriptor limit is raised for the server and the clients.

    python -m bench.connections            # 10,000 sockets
    python -m bench.connections --smoke    # 200 sockets, for CI
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench.common import (
    ClientFleet,
    ProcessSampler,
    bench_parser,
    machine_line,
    print_table,
    raise_fd_limit,
)
from bench.switchboard import SwitchboardClient, one_server

COLUMNS = (
    "database",
    "sockets",
    "accepted",
    "server count",
    "accept s",
    "sockets/s",
    "rss before MiB",
    "rss after MiB",
    "KiB/socket",
)


async def server_socket_count(base_url: str) -> int | None:
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/metrics") as response:
        text = await response.text()
    found = re.search(r"^switchboard_ws_connections (\S+)$", text, re.MULTILINE)
    return int(float(found.group(1))) if found else None


async def run_connections(kind: str, sockets: int, client_processes: int) -> list[str]:
    raise_fd_limit(sockets + 4096)
    async with one_server(kind) as (_url, team, deployment):
        server = deployment.servers[0]
        sampler = ProcessSampler(deployment.pids)
        await asyncio.sleep(0.5)
        before = sampler.rss()
        fleet = ClientFleet(
            SwitchboardClient((server.port,), team.token, team.channel),
            sockets,
            processes=client_processes,
            probes=0,
            concurrency=100,
        )
        accepted = await fleet.start(wait_seconds=600)
        await asyncio.sleep(1.0)  # let the server settle before reading its memory
        after = sampler.rss()
        counted = await server_socket_count(server.base_url)
        # From the first connect to the last `subscribed`, in the client workers.
        accept_seconds = (await fleet.stop()).connect_seconds
    per_socket = (after - before) / max(accepted, 1) / 1024
    return [
        kind,
        str(sockets),
        str(accepted),
        "n/a" if counted is None else str(counted),
        f"{accept_seconds:.2f}",
        f"{accepted / accept_seconds:,.0f}",
        f"{before / 2**20:.0f}",
        f"{after / 2**20:.0f}",
        f"{per_socket:.1f}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, databases="sqlite")
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--client-processes", type=int, default=2)
    args = parser.parse_args(argv)
    if args.smoke:
        args.sockets, args.client_processes = 200, 1
    print(f"machine: {machine_line()}")
    rows = [
        asyncio.run(run_connections(kind, args.sockets, args.client_processes))
        for kind in args.databases.split(",")
    ]
    print_table("connections: idle authenticated websockets on one serve process", COLUMNS, rows)
    return 0 if all(row[1] == row[2] == row[3] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
