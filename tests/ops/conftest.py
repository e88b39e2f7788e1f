"""Fixtures for the operations tests: a private Redis that can be stopped, a logged `serve`."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from server.settings import Settings
from tests.support.databases import PG_DSN
from tests.support.live_server import REPO, free_port, settings_env


async def drop_database(database_url: str) -> None:
    """Make a test's PostgreSQL database go away under the running server."""
    name = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every log line parsed; a line that is not one JSON object fails the test."""
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"log line is not JSON: {line!r}")
        assert isinstance(record, dict), line
        records.append(record)
    return records


@dataclass
class LoggedServer:
    """`switchboard serve` as a child process whose stderr (its log) goes to a file."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        return self.log_path.read_text()


def start_logged_server(settings: Settings, log_path: Path, **env: str) -> LoggedServer:
    port = free_port()
    settings = replace(settings, public_url=f"http://127.0.0.1:{port}")
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
            cwd=REPO,
            env={**settings_env(settings), **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = LoggedServer(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}: {log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                pytest.fail("serve did not start")
            time.sleep(0.05)


class TcpRelay:
    """A TCP path to PostgreSQL that a test can cut and restore: the network to the database
    failing (and coming back) under a running server, with the real server behind it."""

    def __init__(self, target_port: int = 5432) -> None:
        self.port = free_port()
        self.target_port = target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Refuse new connections and break every open one."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.transport.abort()
            return
        self._writers.update((client_w, server_w))

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                writer.transport.abort()

        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))
        self._writers.difference_update((client_w, server_w))


@pytest.fixture
async def pg_relay() -> AsyncIterator[TcpRelay]:
    relay = TcpRelay()
    await relay.start()
    yield relay
    await relay.cut()
