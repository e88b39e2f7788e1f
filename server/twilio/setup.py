"""Starts and stops the Twilio gateway (real REST client or simulator)."""

from __future__ import annotations

from server.state import AppState


async def start(state: AppState) -> None:
    return None


async def stop(state: AppState) -> None:
    return None
