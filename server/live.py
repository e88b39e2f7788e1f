"""Starts and stops the realtime node for the app (filled in with realtime/)."""

from __future__ import annotations

from server.state import AppState


async def start(state: AppState) -> None:
    return None


async def stop(state: AppState) -> None:
    return None
