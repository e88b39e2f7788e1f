"""Liveness and readiness: /healthz always, /readyz only when the database (and Redis) answer."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from server.settings import Settings
from tests.ops.conftest import drop_database
from tests.support.databases import BACKENDS
from tests.support.live_server import LiveServer, free_port, start_live_server
from tests.support.private_redis import PrivateRedis

# A database that goes away is a PostgreSQL server's failure; SQLite is a file in the process.
POSTGRES_ONLY = [backend for backend in BACKENDS if backend == "postgres"]


async def test_healthz_and_readyz_answer_when_all_is_up(http: httpx.AsyncClient) -> None:
    health = await http.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": "ok"}}


async def test_readyz_names_redis_when_it_goes_down(
    settings: Settings, private_redis: PrivateRedis
) -> None:
    server = await start_live_server(
        replace(settings, redis_url=private_redis.url, redis_prefix=f"t{free_port()}:")
    )
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=15) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}

            private_redis.stop()
            down = await http.get("/readyz")
            assert down.status_code == 503
            assert down.headers["retry-after"] == "5"
            assert down.json()["error"] == "unavailable"
            assert down.json()["down"] == ["redis"]
            assert down.json()["checks"] == {"database": "ok", "redis": "down"}
            # Still alive: a load balancer must not restart the process for this.
            assert (await http.get("/healthz")).status_code == 200

            private_redis.start()
            back = await http.get("/readyz")
            assert back.status_code == 200, back.text
    finally:
        await server.stop()


@pytest.mark.parametrize("database_url", POSTGRES_ONLY, indirect=True)
async def test_readyz_names_the_database_when_it_is_gone(
    settings: Settings, live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    assert (await http.get("/readyz")).status_code == 200
    await drop_database(settings.database_url)
    down = await http.get("/readyz")
    assert down.status_code == 503
    assert down.json()["down"] == ["database"]
    assert (await http.get("/healthz")).status_code == 200
