"""The real app served by uvicorn on a loopback port, in this process or in a child process."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from server.app import create_app
from server.settings import Settings
from server.state import AppState
from server.websocket import UVICORN_WS_OPTIONS

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    base_url: str
    settings: Settings
    app: Starlette
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def state(self) -> AppState:
        return self.app.state.switchboard

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/ws"

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, timeout=15)


async def start_live_server(
    settings: Settings, port: int | None = None, **uvicorn_options: Any
) -> LiveServer:
    """Serve `settings` in this event loop; PUBLIC_URL is set to the port it listens on.

    `uvicorn_options` go to uvicorn's Config (e.g. `ws_ping_interval`).
    """
    port = port or free_port()
    settings = replace(settings, public_url=f"http://127.0.0.1:{port}")
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        **UVICORN_WS_OPTIONS,
        log_level="warning",
        lifespan="on",
        **uvicorn_options,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 20
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped before it started")
        if time.monotonic() > deadline:
            raise TimeoutError("server did not start")
        await asyncio.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", settings, app, server, task)


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`switchboard ARGS…` as a child process: (exit status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child `switchboard` process use `settings`."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "PUBLIC_URL": settings.public_url,
        "SECRET_KEY": settings.secret_key,
        "TWILIO_API_BASE": settings.twilio_api_base,
        "SWITCHBOARD_DATA_DIR": str(settings.data_dir),
        "SWITCHBOARD_REDIS_PREFIX": settings.redis_prefix,
        "SWITCHBOARD_LIVE_POLL_SECONDS": str(settings.live_poll_seconds),
        "SWITCHBOARD_IN_PROCESS_WORKER": "1" if settings.run_worker_in_process else "0",
        "SWITCHBOARD_TRUSTED_PROXIES": settings.trusted_proxies,
        "PYTHONPATH": str(REPO),
    }
    for name, value in (
        ("REDIS_URL", settings.redis_url),
        ("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
        ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
        ("SMTP_URL", settings.smtp_url),
    ):
        if value:
            env[name] = value
        else:
            env.pop(name, None)
    return env


@dataclass
class ServerProcess:
    base_url: str
    process: subprocess.Popen[bytes]

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/ws"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        self.process.terminate()
        return self.process.wait(timeout)


def start_server_process(settings: Settings, port: int | None = None) -> ServerProcess:
    """`switchboard serve` as a child process (PUBLIC_URL stays what `settings` says)."""
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
        cwd=REPO,
        env=settings_env(settings),
    )
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server process exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise TimeoutError("server process did not start") from None
            time.sleep(0.05)
    return ServerProcess(f"http://127.0.0.1:{port}", process)
