"""Fan-out on the peer: python-socketio's AsyncServer with AsyncRedisManager, under uvicorn.

The scenario of `bench/fanout.py`, measured the same way (`bench/common.py`): N clients in the
room `inbox:1`, M inbound webhooks at a fixed rate, each turned into one `message.created`
frame per client; on 1 process (in-memory manager) and on 2 processes sharing Redis (webhooks
round-robin over both, as a load balancer would send them; clients split over both).
Clients speak Engine.IO v4 over a raw websocket (what socket.io clients do after the upgrade),
so the client side costs the same as Switchboard's.

    python -m bench.peer_socketio                  # full run
    python -m bench.peer_socketio --smoke          # seconds, for CI

`run_peer()` is what `bench/fanout.py` calls to print the peer beside Switchboard (the way
to compare the two); this script runs the peer alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.common import (
    FanoutResult,
    MessageSocket,
    fanout_parser,
    free_port,
    http_session,
    machine_line,
    measure_fanout,
    parse_fanout_args,
    ping_reply,
    print_fanout,
    runs,
    spawn,
    wait_healthy,
)

SYSTEM = "python-socketio"
ROOM = "inbox:1"
BODY_PREFIX = "bench "


@dataclass(frozen=True)
class EngineIOClient:
    """A socket.io client reduced to what the benchmark needs, over a raw websocket."""

    ports: tuple[int, ...]
    room: str = ROOM
    event_marker: ClassVar[bytes] = b"message.created"
    text_ping: ClassVar[tuple[str, str] | None] = ("2", "3")  # Engine.IO ping -> pong

    def url(self, index: int) -> str:
        port = self.ports[index % len(self.ports)]
        return f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"

    def headers(self, index: int) -> dict[str, str]:
        return {}

    async def handshake(self, ws: MessageSocket, index: int) -> None:
        opening = await ws.recv()
        if not str(opening).startswith("0"):
            raise RuntimeError(f"not an Engine.IO open packet: {opening!r}")
        await ws.send("40")  # connect to the default namespace
        await self._until(ws, "40")
        await ws.send("421" + json.dumps(["join", self.room]))  # event with ack id 1
        await self._until(ws, "431")

    async def _until(self, ws: MessageSocket, prefix: str) -> None:
        while True:
            message = await ws.recv()
            if isinstance(message, str) and message.startswith(prefix):
                return
            reply = ping_reply(self, message)
            if reply is not None:
                await ws.send(reply)

    def event_id(self, message: str | bytes) -> int | None:
        name, data = json.loads(message[2:])
        body = data.get("body", "")
        if name != "message.created" or not body.startswith(BODY_PREFIX):
            return None
        return int(body[len(BODY_PREFIX) :])


def webhook_form(index: int) -> dict[str, str]:
    return {
        "MessageSid": f"SM{uuid.uuid4().hex}",
        "AccountSid": "AC" + "0" * 32,
        "From": f"+1555010{index % 100:04d}",
        "To": "+15550009999",
        "Body": f"{BODY_PREFIX}{index}",
        "NumMedia": "0",
        "SmsStatus": "received",
    }


async def run_peer(
    processes: int,
    clients: int,
    events: int,
    rate: float,
    *,
    probes: int = 50,
    client_processes: int = 1,
    redis_url: str = "redis://127.0.0.1:6379/0",
) -> FanoutResult:
    """One fan-out run on the peer; the servers are started and stopped here."""
    channel = f"bench-socketio-{uuid.uuid4().hex[:8]}"
    servers = []
    try:
        for _ in range(processes):
            port = free_port()
            args = [sys.executable, "-m", "bench.peers.socketio_server", "--port", str(port)]
            if processes > 1:
                args += ["--redis", redis_url, "--channel", channel]
            servers.append(spawn(args, dict(os.environ), port))
        for server in servers:
            await wait_healthy(server)
        async with http_session() as http:

            async def send(index: int) -> None:
                server = servers[index % len(servers)]
                url = f"{server.base_url}/webhook"
                async with http.post(url, data=webhook_form(index)) as response:
                    response.raise_for_status()

            return await measure_fanout(
                SYSTEM,
                [s.pid for s in servers],
                EngineIOClient(tuple(s.port for s in servers)),
                send,
                clients=clients,
                events=events,
                rate=rate,
                probes=probes,
                client_processes=client_processes,
            )
    finally:
        for server in servers:
            server.stop()


async def main_async(args: argparse.Namespace) -> list[FanoutResult]:
    return [
        await run_peer(
            processes,
            args.clients,
            args.events,
            rate,
            probes=args.probes,
            client_processes=args.client_processes,
            redis_url=args.redis,
        )
        for rate, processes in runs(args)
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_fanout_args(fanout_parser(__doc__), argv)
    print(f"machine: {machine_line()}")
    peer = asyncio.run(main_async(args))
    print_fanout(f"fan-out on {SYSTEM} (AsyncServer + AsyncRedisManager)", peer)
    return 0 if all(r.complete for r in peer) else 1


if __name__ == "__main__":
    sys.exit(main())
