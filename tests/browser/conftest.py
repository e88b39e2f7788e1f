"""Fixtures of the browser tests: headless Chromium against the real server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, async_playwright

from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, ErrorWatch, Team, build_team
from tests.support.live_server import LiveServer


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def team(live_server: LiveServer) -> Team:
    return await build_team(live_server)


@pytest.fixture
def watch() -> Iterator[ErrorWatch]:
    """Every page's script errors, CSP violations and alerts; a test with any fails."""
    found = ErrorWatch()
    yield found
    assert not found.errors, found.errors
