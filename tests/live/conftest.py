"""Fixtures of the live tests: each runs on the in-process broker and on a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from server.settings import Settings
from tests.live.helpers import Team, seed_team
from tests.support.live_server import LiveServer, start_live_server

REDIS_URL = "redis://127.0.0.1:6379/0"


def with_redis(settings: Settings, url: str = REDIS_URL) -> Settings:
    """Settings on Redis, under a key/channel prefix of their own (tests run in parallel)."""
    return replace(settings, redis_url=url, redis_prefix=f"sbtest:{uuid.uuid4().hex[:12]}:")


@pytest.fixture(params=["memory", "redis"])
def live_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    return with_redis(settings) if request.param == "redis" else settings


@pytest.fixture
async def server(live_settings: Settings) -> AsyncIterator[LiveServer]:
    server = await start_live_server(live_settings)
    yield server
    await server.stop()


@pytest.fixture
async def team(server: LiveServer) -> Team:
    return await seed_team(server.state)
