"""Fixtures of the browser tests: headless Chromium against the real server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from playwright.async_api import Browser, async_playwright

from server.settings import Settings
from tests.browser.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Contexts,
    ErrorWatch,
    Team,
    build_team,
)
from tests.support.live_server import LiveServer, start_live_server


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def team(live_server: LiveServer) -> Team:
    return await build_team(live_server)


@dataclass
class OwnServer:
    """A server the test itself stops and starts again (on the same port, same database)."""

    settings: Settings
    server: LiveServer
    team: Team
    running: bool = True

    async def stop(self) -> None:
        if self.running:
            self.running = False
            await self.server.stop()

    async def restart(self, port: int) -> LiveServer:
        await self.stop()
        self.server = await start_live_server(self.settings, port=port)
        self.running = True
        return self.server


@pytest.fixture
async def own_server(settings: Settings) -> AsyncIterator[OwnServer]:
    server = await start_live_server(settings)
    own = OwnServer(settings, server, await build_team(server))
    yield own
    await own.stop()


@pytest.fixture
def watch() -> Iterator[ErrorWatch]:
    """Every page's script errors, CSP violations and alerts; a test with any fails."""
    found = ErrorWatch()
    yield found
    assert not found.errors, found.errors


@pytest.fixture
async def contexts(
    browser: Browser, watch: ErrorWatch, live_server: LiveServer
) -> AsyncIterator[Contexts]:
    """Browser contexts on `live_server`, closed before it stops."""
    opened = Contexts(browser, watch)
    yield opened
    await opened.close()


@pytest.fixture
async def own_contexts(
    browser: Browser, watch: ErrorWatch, own_server: OwnServer
) -> AsyncIterator[Contexts]:
    """Browser contexts of a test that stops and starts its server itself."""
    opened = Contexts(browser, watch)
    yield opened
    await opened.close()
