"""Starts and stops the background loops in-process: campaigns and notifications."""

from __future__ import annotations

from server.state import AppState


async def start(state: AppState) -> None:
    return None


async def stop(state: AppState) -> None:
    return None


async def run_forever(settings: object) -> None:
    """The `switchboard worker` process (filled in with campaigns and notifications)."""
    raise SystemExit("the worker is not built yet")
