"""Shared fixtures: a fresh database per test on each backend, and the app on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from server.settings import Settings
from tests.support.databases import BACKENDS, DatabaseFactory
from tests.support.live_server import LiveServer, start_live_server

pytest_plugins = ["tests.support.messaging", "tests.support.private_redis"]


@pytest.fixture(scope="session")
async def database_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[DatabaseFactory]:
    factory = DatabaseFactory(tmp_path_factory.mktemp("databases"))
    yield factory
    await factory.drop_all()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, database_factory: DatabaseFactory) -> str:
    """A freshly migrated database, once on SQLite and once on PostgreSQL."""
    return await database_factory.create(request.param)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Embedded-default settings on the test database (simulator off: no credentials yet)."""
    return Settings(
        database_url=database_url,
        secret_key="test-secret-key-" + tmp_path.name,
        data_dir=tmp_path / "data",
        run_worker_in_process=False,
    )


@pytest.fixture
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    server = await start_live_server(settings)
    yield server
    await server.stop()


@pytest.fixture
async def http(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=10) as client:
        yield client
